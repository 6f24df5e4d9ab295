//! lalm-interact as a bin: the rate it converts to follows the perceive model, the language
//! code transcriberbin hands it is one Whisper knows, and `rules` reaches the children that
//! take it. Runs the installed Silero VAD and the tiny random Whisper (scripts/setup.sh).

use std::path::{Path, PathBuf};
use std::sync::Once;

use gst::prelude::*;

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().expect("gst init");
        gstlalm::plugin_register_static().expect("register plugin");
    });
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lalm-interact-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn child(bin: &gst::Element, name: &str) -> gst::Element {
    bin.downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name(name))
        .unwrap_or_else(|| panic!("lalm-interact has no {name}"))
}

/// The installed Silero VAD package declared at 8 kHz (which the model supports: 256-sample
/// windows, 32 of context).
fn silero_at_8k(dir: &Path) -> PathBuf {
    let installed =
        soundflow::models::package::ModelPackage::find("silero-vad").expect("silero-vad installed");
    let model = installed.file("model").expect("silero model file");
    let pkg = dir.join("silero-8k");
    std::fs::create_dir_all(&pkg).expect("package dir");
    std::fs::copy(&model, pkg.join("silero_vad.onnx")).expect("copy the model");
    std::fs::write(
        pkg.join("model.toml"),
        "family = \"silero-vad\"\nname = \"silero-vad-8k\"\nsample_rate = 8000\n\
         [files]\nmodel = \"silero_vad.onnx\"\n\
         [io]\ninput = \"input\"\nstate = \"state\"\nsr = \"sr\"\noutput = \"output\"\nstate_out = \"stateN\"\n\
         [params]\nwindow = 256\ncontext = 32\n",
    )
    .expect("write the manifest");
    pkg
}

/// Plays a second of a 48 kHz sine through `lalm-interact name=bin <props>` until EOS or an
/// error (within a minute); returns the pipeline, still playing, and that message.
fn play_48k(props: &str) -> (gst::Element, gst::Message) {
    let pipeline = gst::parse::launch(&format!(
        "audiotestsrc num-buffers=20 samplesperbuffer=4800 wave=sine \
         ! audio/x-raw,rate=48000,channels=1 ! lalm-interact name=bin {props} ! fakesink"
    ))
    .expect("pipeline");
    pipeline.set_state(gst::State::Playing).expect("play");
    let msg = pipeline
        .bus()
        .expect("bus")
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS or an error within a minute");
    (pipeline, msg)
}

#[test]
fn the_conversion_follows_the_perceive_models_rate() {
    init();
    let dir = tmpdir("rate");
    let pkg = silero_at_8k(&dir);
    let (pipeline, msg) = play_48k(&format!(
        "model={} tagger=none mode=turn-end",
        pkg.display()
    ));
    let bin = pipeline
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("bin"))
        .expect("lalm-interact");
    // The caps the chunker (and so perceive) negotiated, read before the pipeline stops.
    let caps = child(&bin, "chunker")
        .static_pad("sink")
        .and_then(|p| p.current_caps())
        .expect("negotiated caps");
    pipeline.set_state(gst::State::Null).expect("stop");
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("{} ({:?})", e.error(), e.debug());
    }
    let rate = caps
        .structure(0)
        .and_then(|s| s.get::<i32>("rate").ok())
        .expect("rate");
    assert_eq!(
        rate, 8000,
        "the bin resampled to {rate} Hz for an 8 kHz model: {caps}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_region_qualified_language_code_reaches_whisper_as_its_language() {
    init();
    let bin = gst::ElementFactory::make("lalm-interact")
        .build()
        .expect("lalm-interact");
    // transcriberbin's default, and what the gst-plugins-rs transcribers take.
    bin.set_property("language-code", "en-US");
    assert_eq!(
        child(&bin, "respond").property::<String>("language-code"),
        "en"
    );
    assert_eq!(bin.property::<String>("language-code"), "en");
    bin.set_property("language-code", "de_DE");
    assert_eq!(
        child(&bin, "respond").property::<String>("language-code"),
        "de"
    );
}

#[test]
fn rules_reach_decide_and_respond_where_respond_takes_them() {
    init();
    let dir = tmpdir("rules");
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, "").expect("rules file");
    let path = rules.display().to_string();
    let bin = gst::ElementFactory::make("lalm-interact")
        .build()
        .expect("lalm-interact");
    bin.set_property("rules", &path);
    assert_eq!(
        bin.property::<Option<String>>("rules").as_deref(),
        Some(path.as_str())
    );
    assert_eq!(
        child(&bin, "decide")
            .property::<Option<String>>("rules")
            .as_deref(),
        Some(path.as_str())
    );
    let respond = child(&bin, "respond");
    if respond.find_property("rules").is_some() {
        assert_eq!(
            respond.property::<Option<String>>("rules").as_deref(),
            Some(path.as_str())
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn whisper_refuses_audio_at_another_rate_with_a_clear_error() {
    init();
    let dir = tmpdir("rate-asr");
    let pkg = silero_at_8k(&dir);
    // An 8 kHz VAD hands 8 kHz audio to Whisper, which only hears 16 kHz: a clear error
    // instead of nonsense text.
    let (pipeline, msg) = play_48k(&format!(
        "model={} tagger=none asr-model=whisper-tiny-random",
        pkg.display()
    ));
    pipeline.set_state(gst::State::Null).expect("stop");
    let gst::MessageView::Error(e) = msg.view() else {
        panic!("8 kHz audio reached Whisper without an error");
    };
    assert!(
        e.error().to_string().contains("ASR model runs at 16000 Hz"),
        "{}",
        e.error()
    );
}

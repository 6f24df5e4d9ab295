//! Moonshine through the real ONNX Runtime on real recorded speech (the Asterisk prompts,
//! scripts/fetch-speech.sh), with the packages scripts/setup.sh builds from the pinned
//! wheels (models/moonshine/build_package.sh): the transcripts match upstream's prompt texts,
//! a decode can be called off, and bad packages are clear errors.

mod common;

use soundflow::base::cancel::CancelFlag;
use soundflow::models::package::ModelPackage;
use soundflow::models::runtime::{ExecutionProvider, Runtime, SessionOptions};
use soundflow::respond::asr::moonshine::MoonshineModel;

fn load(name: &str) -> MoonshineModel {
    let pkg = ModelPackage::find(name)
        .unwrap_or_else(|e| panic!("{name} package (run scripts/setup.sh): {e}"));
    let rt = Runtime::get(None).expect("ONNX Runtime (run scripts/setup.sh)");
    let opts = SessionOptions {
        provider: ExecutionProvider::Cpu,
        intra_threads: 2,
        ..Default::default()
    };
    MoonshineModel::load(&pkg, &rt, &opts).expect("the model loads")
}

fn word_error_rate(name: &str, n: usize) -> f64 {
    let m = load(name);
    let (mut errs, mut total) = (0, 0);
    let t = std::time::Instant::now();
    let mut secs = 0.0;
    let (audio, prompts) = common::asterisk_prompts();
    for (start, end, text) in prompts.iter().take(n) {
        let clip = &audio[*start..*end];
        let hyp = m.transcribe(clip, &CancelFlag::default()).expect("decode");
        let (e, words) = common::word_errors(text, &hyp);
        if e > 0 {
            eprintln!("{name}: {e} errors: {text:?} -> {hyp:?}");
        }
        errs += e;
        total += words;
        secs += clip.len() as f64 / 16000.0;
    }
    let wer = 100.0 * errs as f64 / total as f64;
    eprintln!(
        "{name}: WER {wer:.1} % over {n} prompts ({total} words), RTF {:.3}",
        t.elapsed().as_secs_f64() / secs
    );
    wer
}

#[test]
fn base_transcribes_real_speech() {
    assert!(word_error_rate("moonshine-base", 12) <= 6.0);
}

#[test]
fn tiny_transcribes_real_speech() {
    assert!(word_error_rate("moonshine-tiny", 12) <= 10.0);
}

#[test]
fn a_cancelled_decode_stops_and_short_input_is_padded() {
    let m = load("moonshine-base");
    let (audio, prompts) = common::asterisk_prompts();
    let audio = &audio[prompts[0].0..prompts[0].1];
    let cancel = CancelFlag::default();
    cancel.cancel();
    assert!(matches!(
        m.transcribe(audio, &cancel),
        Err(soundflow::Error::Cancelled)
    ));
    cancel.clear();
    // 10 ms of silence: too short for the encoder as it is, padded to its minimum.
    let t = m
        .transcribe(&[0.0; 160], &cancel)
        .expect("a short input decodes");
    assert!(t.trim().is_empty(), "10 ms of silence gave {t:?}");
}

/// One second of digital silence and two seconds of a low noise floor (about -50 dBFS).
fn no_speech() -> [(&'static str, Vec<f32>); 2] {
    let mut rng = common::Lcg(7);
    let noise: Vec<f32> = (0..32000).map(|_| 0.003 * rng.gauss()).collect();
    [
        ("1 s of silence", vec![0.0f32; 16000]),
        ("2 s of low noise", noise),
    ]
}

/// moonshine-base, the default, says nothing where nobody speaks.
#[test]
fn base_gives_no_words_on_silence_and_low_noise() {
    let cancel = CancelFlag::default();
    let m = load("moonshine-base");
    for (what, audio) in no_speech() {
        let t = m.transcribe(&audio, &cancel).expect("decode");
        assert!(t.trim().is_empty(), "moonshine-base: {what} gave {t:?}");
    }
}

/// moonshine-tiny does hallucinate on silence (it reads 1 s of digital silence as "You"), so
/// the contract is the loop's: only audio the VAD and the decider take for an utterance is
/// ever decoded (lalm-respond decodes the spans lalm-decide reports). The same silence and
/// noise through Silero VAD and the default decider open no utterance at all, where the same
/// decider finds a real prompt.
#[test]
fn silence_and_low_noise_never_reach_the_asr() {
    use soundflow::decide::decision::{Decider, DecisionConfig, Event};
    use soundflow::perceive::vad::SileroVad;
    let cancel = CancelFlag::default();
    let tiny = load("moonshine-tiny");
    let pkg = ModelPackage::find("silero-vad").expect("silero-vad package (run scripts/setup.sh)");
    let rt = Runtime::get(None).expect("ONNX Runtime (run scripts/setup.sh)");
    let opts = SessionOptions {
        provider: ExecutionProvider::Cpu,
        ..Default::default()
    };
    let events = |audio: &[f32]| -> Vec<Event> {
        let mut vad = SileroVad::load(&pkg, &rt, &opts).expect("VAD loads");
        let mut d = Decider::new(DecisionConfig::default(), 16000, 512).expect("decider");
        let mut out: Vec<Event> = vad
            .process(0, audio)
            .expect("VAD inference")
            .into_iter()
            .filter_map(|w| d.push(w))
            .collect();
        out.extend(d.finish());
        out
    };
    for (what, audio) in no_speech() {
        let said = tiny.transcribe(&audio, &cancel).expect("decode");
        eprintln!("moonshine-tiny on {what}, were it asked: {said:?}");
        let ev = events(&audio);
        assert!(ev.is_empty(), "{what} opened an utterance: {ev:?}");
    }
    let (speech, prompts) = common::asterisk_prompts();
    let (a, b, _) = &prompts[0];
    let mut prompt = vec![0.0f32; 8000];
    prompt.extend_from_slice(&speech[*a..*b]);
    prompt.extend(vec![0.0f32; 16000]);
    let ev = events(&prompt);
    assert!(
        ev.iter().any(|e| matches!(e, Event::TurnEnd { .. })),
        "the decider finds no utterance in a real prompt either: {ev:?}"
    );
}

#[test]
fn a_package_without_its_files_or_of_another_family_is_refused() {
    let rt = Runtime::get(None).expect("ONNX Runtime (run scripts/setup.sh)");
    let opts = SessionOptions::default();
    let vad = ModelPackage::find("silero-vad").expect("silero-vad package");
    let e = MoonshineModel::load(&vad, &rt, &opts).expect_err("a VAD is no ASR model");
    assert!(e.to_string().contains("moonshine"), "{e}");
    let dir = std::env::temp_dir().join(format!("lalm-moonshine-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    std::fs::write(
        dir.join("model.toml"),
        "family = \"moonshine\"\nsample_rate = 16000\n[files]\nencoder = \"e.onnx\"\n\
         decoder = \"d.onnx\"\ntokenizer = \"t.json\"\n[params]\nlayers = 8\nheads = 8\n\
         head_dim = 52\nbos = 1\neos = 2\ntokens_per_second = 13\n",
    )
    .expect("manifest");
    let pkg = ModelPackage::load(&dir).expect("manifest reads");
    let e = MoonshineModel::load(&pkg, &rt, &opts).expect_err("no files");
    assert!(
        e.to_string().contains("e.onnx") || e.to_string().contains("t.json"),
        "{e}"
    );
    std::fs::write(
        dir.join("model.toml"),
        "family = \"moonshine\"\nsample_rate = 16000\n[files]\n",
    )
    .expect("manifest");
    let pkg = ModelPackage::load(&dir).expect("manifest reads");
    let e = MoonshineModel::load(&pkg, &rt, &opts).expect_err("no params");
    assert!(e.to_string().contains("params.layers"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

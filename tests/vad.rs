//! Silero VAD through the real ONNX Runtime on speech the test makes with espeak-ng.
//! Needs the setup command's ONNX Runtime and model package.

mod common;

use soundflow::decision::{Decider, DecisionConfig, Event};
use soundflow::model::ModelPackage;
use soundflow::runtime::{ExecutionProvider, Runtime, SessionOptions};
use soundflow::vad::SileroVad;

fn load() -> SileroVad {
    let pkg = ModelPackage::find("silero-vad").expect("silero-vad package (run scripts/setup.sh)");
    let rt = Runtime::get(None).expect("ONNX Runtime (run scripts/setup.sh)");
    SileroVad::load(
        &pkg,
        &rt,
        &SessionOptions {
            provider: ExecutionProvider::Cpu,
            ..Default::default()
        },
    )
    .expect("VAD loads")
}

#[test]
fn speech_and_silence_are_told_apart() {
    let dir = common::tmpdir("vad");
    let speech = common::speak(
        &dir,
        "Good morning everyone, let us begin the meeting.",
        "en-us",
        160,
    );
    let mut audio = vec![0.0f32; 16000];
    audio.extend_from_slice(&speech);
    audio.extend(std::iter::repeat_n(0.0, 16000));
    let mut vad = load();
    let probs = vad.process(0, &audio).expect("inference");
    assert_eq!(probs.len(), audio.len() / 512);
    let (a, b) = common::active_span(&speech);
    let (a, b) = (a + 16000, b + 16000);
    let inside: Vec<f32> = probs
        .iter()
        .filter(|w| w.start as usize > a + 2000 && (w.start as usize) + 512 < b - 2000)
        .map(|w| w.prob)
        .collect();
    let outside: Vec<f32> = probs
        .iter()
        .filter(|w| (w.start as usize) + 512 < a - 3000 || w.start as usize > b + 6000)
        .map(|w| w.prob)
        .collect();
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!(mean(&inside) > 0.7, "speech mean {}", mean(&inside));
    assert!(mean(&outside) < 0.1, "silence mean {}", mean(&outside));

    // Any split of the same samples gives the same windows: the state is carried across calls.
    let mut vad2 = load();
    let mut split = Vec::new();
    let mut pos = 0usize;
    for (i, part) in audio.chunks(1000 + 37).enumerate() {
        split.extend(vad2.process(pos as u64, part).expect("inference"));
        pos += part.len();
        let _ = i;
    }
    assert_eq!(split.len(), probs.len());
    for (x, y) in split.iter().zip(&probs) {
        assert_eq!(x.start, y.start);
        assert!((x.prob - y.prob).abs() < 1e-5);
    }

    // After a reset the same audio gives the same probabilities again.
    vad.reset();
    let again = vad.process(0, &audio).expect("inference");
    assert!(
        again
            .iter()
            .zip(&probs)
            .all(|(x, y)| (x.prob - y.prob).abs() < 1e-5)
    );

    // The decision state machine finds exactly this utterance.
    let mut d = Decider::new(DecisionConfig::default(), 16000, 512).expect("decider");
    let events: Vec<Event> = probs.iter().filter_map(|w| d.push(*w)).collect();
    let turns: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::TurnEnd { start, end } => Some((*start, *end)),
            _ => None,
        })
        .collect();
    assert_eq!(turns.len(), 1, "{events:?}");
    assert!(
        (turns[0].0 as i64 - a as i64).abs() < 2400,
        "start {} vs {a}",
        turns[0].0
    );
    assert!(
        (turns[0].1 as i64 - b as i64).abs() < 2400,
        "end {} vs {b}",
        turns[0].1
    );
}

#[test]
fn a_model_with_other_inputs_is_refused_by_name() {
    let seq = std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/lalm/silero_vad_16k_sequence.onnx");
    let seq = std::env::var_os("LALM_CACHE_DIR")
        .map(|d| std::path::PathBuf::from(d).join("silero_vad_16k_sequence.onnx"))
        .filter(|p| p.is_file())
        .unwrap_or(seq);
    assert!(
        seq.is_file(),
        "{} missing: run scripts/setup.sh",
        seq.display()
    );
    let dir = common::tmpdir("vad-mismatch");
    std::fs::copy(&seq, dir.join("m.onnx")).expect("copy");
    std::fs::write(
        dir.join("model.toml"),
        "family = \"silero-vad\"\nsample_rate = 16000\n[files]\nmodel = \"m.onnx\"\n",
    )
    .expect("manifest");
    let pkg = ModelPackage::load(&dir).expect("manifest loads");
    let rt = Runtime::get(None).expect("runtime");
    let err = SileroVad::load(&pkg, &rt, &SessionOptions::default())
        .expect_err("must be refused")
        .to_string();
    assert!(
        err.contains("no input 'state'") && err.contains("m.onnx"),
        "{err}"
    );
}

#[test]
fn cuda_request_falls_back_to_cpu_and_says_why() {
    let pkg = ModelPackage::find("silero-vad").expect("package");
    let rt = Runtime::get(None).expect("runtime");
    let vad = SileroVad::load(
        &pkg,
        &rt,
        &SessionOptions {
            provider: ExecutionProvider::Cuda,
            ..Default::default()
        },
    )
    .expect("loads on CPU");
    let info = vad.session_info();
    assert_eq!(info.requested, ExecutionProvider::Cuda);
    if info.active == ExecutionProvider::Cpu {
        let why = info.fallback_reason.clone().unwrap_or_default();
        assert!(why.contains("cuda"), "{why}");
    }
}

//! Whisper through the real ONNX Runtime: the base package the setup builds transcribes
//! espeak-ng speech, and the tiny random package loads and decodes within its guards.

mod common;

use soundflow::models::package::ModelPackage;
use soundflow::models::runtime::{ExecutionProvider, Runtime, SessionOptions};
use soundflow::respond::asr::whisper::decode::DecodeOptions;
use soundflow::respond::asr::whisper::{Transcriber, Window};

fn load(name: &str) -> Transcriber {
    let pkg = ModelPackage::find(name).unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh)"));
    let rt = Runtime::get(None).expect("ONNX Runtime (run scripts/setup.sh)");
    let opts = SessionOptions {
        provider: ExecutionProvider::Cpu,
        intra_threads: 2,
        ..Default::default()
    };
    Transcriber::load(&pkg, &rt, &opts).expect("whisper package loads")
}

fn transcribes_spoken_sentences(window: Window) {
    let dir = common::tmpdir("whisper-base");
    let mut t = load("whisper-base");
    t.set_window(window);
    let opts = DecodeOptions::default();
    let (mut errors, mut total) = (0, 0);
    for (i, sentence) in common::SENTENCES.iter().enumerate() {
        let audio = common::speak(&dir, sentence, "en-us", 150 + 10 * (i as u32 % 3));
        let started = std::time::Instant::now();
        let tr = t.transcribe(&audio, &opts).expect("transcribes");
        let (e, n) = common::word_errors(sentence, &tr.text);
        eprintln!(
            "{:>5} ms  {e}/{n}  {:?}  pieces {:?}",
            started.elapsed().as_millis(),
            tr.text,
            tr.pieces
                .iter()
                .map(|p| (p.start, p.end))
                .collect::<Vec<_>>()
        );
        assert!(tr.guard.is_none(), "no guard fires on clear speech: {tr:?}");
        assert!(!tr.pieces.is_empty(), "timestamps give timed pieces");
        let dur = audio.len() as f32 / 16000.0;
        assert!(
            tr.pieces
                .iter()
                .all(|p| p.start <= p.end && p.end <= dur + 0.5),
            "{:?} within {dur} s",
            tr.pieces
        );
        errors += e;
        total += n;
    }
    let rate = errors as f32 / total as f32;
    eprintln!("{window:?}: WER {:.1} % ({errors}/{total})", 100.0 * rate);
    assert!(rate <= 0.15, "WER {rate}");
}

#[test]
fn base_model_transcribes_spoken_sentences_in_a_fitted_window() {
    transcribes_spoken_sentences(Window::default());
}

#[test]
fn base_model_transcribes_spoken_sentences_in_the_full_window() {
    transcribes_spoken_sentences(Window::Full);
}

#[test]
fn silence_is_not_transcribed() {
    let mut t = load("whisper-base");
    let silence = vec![0.0f32; 16000 * 3];
    let tr = t
        .transcribe(&silence, &DecodeOptions::default())
        .expect("runs");
    assert_eq!(
        tr.guard,
        Some(soundflow::respond::asr::whisper::decode::Guard::NoSpeech),
        "{tr:?}"
    );
    assert!(tr.text.is_empty());
}

#[test]
fn tiny_random_package_loads_and_stays_within_its_guards() {
    let mut t = load("whisper-tiny-random");
    let dir = common::tmpdir("whisper-tiny");
    let audio = common::speak(&dir, "Testing the tiny model.", "en-us", 160);
    let opts = DecodeOptions {
        max_tokens: 20,
        ..Default::default()
    };
    let tr = t.transcribe(&audio, &opts).expect("runs");
    // Random weights say nothing sensible, but decoding must end within the cap.
    assert!(tr.text.split_whitespace().count() <= 40, "{tr:?}");
}

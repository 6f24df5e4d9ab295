//! End-to-end tests: real pipelines through gst-launch-1.0 on audio the tests make with
//! espeak-ng and sox, checked against the truth they know. Needs scripts/setup.sh's
//! ONNX Runtime and model packages, and the plugin built in this profile.

mod common;

use std::path::Path;

use common::RATE;

const TOLERANCE_NS: i64 = 150_000_000;

fn turn_ends(wav: &Path, extra: &[&str]) -> Vec<(u64, u64)> {
    let loc = format!("location={}", wav.display());
    let mut args = vec![
        "-m",
        "filesrc",
        &loc,
        "!",
        "wavparse",
        "!",
        "lalm-interact",
        "mode=turn-end",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["!", "fakesink"]);
    let out = common::gst_launch(&args, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gst-launch failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decisions = common::messages(&stdout, "lalm-decision");
    let responses = common::messages(&stdout, "lalm-response");
    let turns: Vec<(u64, u64)> = decisions
        .iter()
        .filter(|(k, _, _)| k == "turn-end")
        .map(|(_, s, e)| (*s, *e))
        .collect();
    let answered: Vec<(u64, u64)> = responses.iter().map(|(_, s, e)| (*s, *e)).collect();
    assert_eq!(
        turns, answered,
        "every turn end gets exactly one response with its times"
    );
    turns
}

fn check_segments(found: &[(u64, u64)], truth: &[(usize, usize)]) {
    let ns = |s: usize| (s as u64 * 1_000_000_000 / RATE as u64) as i64;
    assert_eq!(
        found.len(),
        truth.len(),
        "one segment per sentence: found {found:?}, truth {truth:?}"
    );
    for (i, ((fs, fe), (ts, te))) in found.iter().zip(truth).enumerate() {
        let ds = *fs as i64 - ns(*ts);
        let de = *fe as i64 - ns(*te);
        eprintln!(
            "sentence {i}: start {:+} ms, end {:+} ms",
            ds / 1_000_000,
            de / 1_000_000
        );
        assert!(
            ds.abs() <= TOLERANCE_NS && de.abs() <= TOLERANCE_NS,
            "sentence {i}: found {fs}..{fe}, truth {}..{} (start off by {} ms, end by {} ms)",
            ns(*ts),
            ns(*te),
            ds / 1_000_000,
            de / 1_000_000
        );
    }
}

#[test]
fn one_segment_per_sentence_within_150_ms() {
    let dir = common::tmpdir("e2e-clean");
    let (audio, truth) = common::conversation(&dir, 16, 11);
    let wav = dir.join("talk.wav");
    common::write_wav(&wav, &audio);
    check_segments(&turn_ends(&wav, &[]), &truth);
}

#[test]
fn one_segment_per_sentence_in_noise_at_10_db_snr() {
    let dir = common::tmpdir("e2e-noise");
    let (mut audio, truth) = common::conversation(&dir, 16, 23);
    common::add_noise(&mut audio, &truth, 10.0, 5);
    let wav = dir.join("noisy.wav");
    common::write_wav(&wav, &audio);
    check_segments(&turn_ends(&wav, &[]), &truth);
}

fn run_failing(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = common::gst_launch(args, env);
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("panicked"), "no panic: {all}");
    assert!(!out.status.success(), "gst-launch fails: {all}");
    assert!(
        all.contains("ERROR") || all.contains("erroneous pipeline"),
        "an error is reported: {all}"
    );
    all
}

fn speech_file(dir: &Path) -> String {
    let wav = dir.join("short.wav");
    let mut a = common::speak(dir, "A short test sentence.", "en-us", 160);
    a.extend(vec![0.0; 8000]);
    common::write_wav(&wav, &a);
    format!("location={}", wav.display())
}

#[test]
fn missing_model_file_names_the_file() {
    let dir = common::tmpdir("e2e-missing-model");
    std::fs::write(
        dir.join("model.toml"),
        "family = \"silero-vad\"\nsample_rate = 16000\n[files]\nmodel = \"absent.onnx\"\n",
    )
    .expect("manifest");
    let loc = speech_file(&dir);
    let model = format!("model={}", dir.display());
    let all = run_failing(
        &[
            "filesrc",
            &loc,
            "!",
            "wavparse",
            "!",
            "lalm-interact",
            &model,
            "!",
            "fakesink",
        ],
        &[],
    );
    assert!(
        all.contains("model file missing") && all.contains("absent.onnx"),
        "{all}"
    );
}

#[test]
fn a_model_with_other_inputs_names_them() {
    let dir = common::tmpdir("e2e-mismatch");
    let cache = std::env::var_os("LALM_CACHE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/lalm")
        });
    std::fs::copy(
        cache.join("silero_vad_16k_sequence.onnx"),
        dir.join("seq.onnx"),
    )
    .expect("sequence model from setup");
    std::fs::write(
        dir.join("model.toml"),
        "family = \"silero-vad\"\nsample_rate = 16000\n[files]\nmodel = \"seq.onnx\"\n",
    )
    .expect("manifest");
    let loc = speech_file(&dir);
    let model = format!("model={}", dir.display());
    let all = run_failing(
        &[
            "filesrc",
            &loc,
            "!",
            "wavparse",
            "!",
            "lalm-interact",
            &model,
            "!",
            "fakesink",
        ],
        &[],
    );
    assert!(
        all.contains("cannot be used as silero-vad") && all.contains("no input 'state'"),
        "{all}"
    );
}

#[test]
fn missing_onnx_runtime_names_the_library() {
    let dir = common::tmpdir("e2e-no-ort");
    let loc = speech_file(&dir);
    let all = run_failing(
        &[
            "filesrc",
            &loc,
            "!",
            "wavparse",
            "!",
            "lalm-interact",
            "!",
            "fakesink",
        ],
        &[("LALM_ORT_LIBRARY", "/nonexistent/libonnxruntime.so.1.31.1")],
    );
    assert!(
        all.contains("ONNX Runtime library not found or not loadable")
            && all.contains("/nonexistent/libonnxruntime.so.1.31.1"),
        "{all}"
    );
}

#[test]
fn non_audio_caps_are_refused() {
    let all = run_failing(
        &[
            "videotestsrc",
            "num-buffers=3",
            "!",
            "lalm-interact",
            "!",
            "fakesink",
        ],
        &[],
    );
    assert!(
        all.contains("could not link videotestsrc0 to lalminteract0"),
        "{all}"
    );
    let all = run_failing(
        &[
            "audiotestsrc",
            "num-buffers=3",
            "!",
            "audio/x-raw,channels=2",
            "!",
            "lalm-chunker",
            "!",
            "fakesink",
        ],
        &[],
    );
    assert!(all.contains("could not link"), "{all}");
}

#[test]
fn an_empty_recording_is_a_clear_error() {
    let dir = common::tmpdir("e2e-empty");
    let wav = dir.join("empty.wav");
    let st = std::process::Command::new("sox")
        .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
        .arg(&wav)
        .args(["trim", "0", "0"])
        .status()
        .expect("sox");
    assert!(st.success());
    let loc = format!("location={}", wav.display());
    let all = run_failing(
        &[
            "filesrc",
            &loc,
            "!",
            "wavparse",
            "!",
            "lalm-interact",
            "!",
            "fakesink",
        ],
        &[],
    );
    assert!(
        all.contains("No audio: the stream ended before any sample arrived"),
        "{all}"
    );
}

#[test]
fn resampled_stereo_input_works_through_the_bin() {
    let dir = common::tmpdir("e2e-stereo");
    let (audio, truth) = common::conversation(&dir, 2, 3);
    let wav = dir.join("mono.wav");
    common::write_wav(&wav, &audio);
    let stereo = dir.join("stereo44.wav");
    let st = std::process::Command::new("sox")
        .arg(&wav)
        .args(["-r", "44100", "-c", "2"])
        .arg(&stereo)
        .status()
        .expect("sox");
    assert!(st.success());
    check_segments(&turn_ends(&stereo, &[]), &truth);
}

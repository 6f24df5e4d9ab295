//! lalm-interact with its perception models and its ASR on a real Triton server (the nvidia-pytriton
//! wheel's tritonserver, scripts/triton-server.sh) over KServe v2 gRPC, through
//! gst-launch-1.0, on real speech with a real siren: the same subtitles and alerts as local
//! inference, and a server killed and restarted under a running pipeline.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Real speech (the Asterisk prompts) from `from` to `to` seconds, a real siren, then the
/// next stretch of speech, as a WAV in `dir`.
fn real_mix(dir: &Path, seconds: usize) -> PathBuf {
    let (speech, _) = common::asterisk_prompts();
    let r = common::RATE as usize;
    let half = (seconds * r / 2).min(speech.len() / 2);
    let mut audio = speech[..half].to_vec();
    audio.extend(common::real_clip(dir, "siren-scorched-policecar"));
    audio.extend_from_slice(&speech[half..2 * half]);
    let path = dir.join("mix.wav");
    common::write_wav(&path, &audio);
    path
}

/// Runs the loop on `wav` and returns (success, the subtitles on the text pad, the final
/// transcripts and alerts in the bus messages (sorted: the bus order of an alert against a
/// transcript depends on timing), the whole output).
fn run(
    wav: &Path,
    text_out: &Path,
    props: &[&str],
    paced: bool,
) -> (bool, String, Vec<String>, String) {
    let (ok, text, finals, all, _) = run_stamped(wav, text_out, props, paced);
    (ok, text, finals, all)
}

/// Stdout lines stamped with when they came (since the launch).
type Stamped = Vec<(Duration, String)>;

/// [`run`], with gst-launch's stdout lines stamped as they came.
fn run_stamped(
    wav: &Path,
    text_out: &Path,
    props: &[&str],
    paced: bool,
) -> (bool, String, Vec<String>, String, Stamped) {
    let location = format!("location={}", wav.display());
    let sink = format!("location={}", text_out.display());
    let mut args = vec!["-m", "filesrc", &location, "!", "wavparse", "!"];
    if paced {
        // As fast as a microphone: the server can be killed while the stream runs.
        args.extend(["identity", "sync=true", "!"]);
    }
    // Without partials every final is decoded from its whole utterance, and with a blocking
    // perceive no chunk is dropped when the machine is loaded (the paced stream is live, and
    // a live perceive drops by default): two runs give the same text whatever the timing.
    args.extend([
        "lalm-interact",
        "partial-interval-ms=60000",
        "finals-only=true",
        "perceive::overload=block",
    ]);
    args.extend_from_slice(props);
    args.extend(["!", "filesink", sink.as_str()]);
    let (lines, stderr, ok) = common::gst_launch_timed(&args, &[]);
    let mut all: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    all.push_str(&stderr);
    let mut finals: Vec<String> = all
        .lines()
        .filter(|l| {
            l.contains("(element): lalm-alert,")
                || (l.contains("(element): lalm-transcript,") && l.contains("final=(boolean)true"))
        })
        .map(|l| {
            let l = &l[l.find("(element): ").unwrap_or(0)..];
            // Confidences are floats printed to the last digit; the words repeat the text.
            let l = l.split(", words=").next().unwrap_or(l);
            l.split(", ")
                .filter(|f| !f.starts_with("confidence="))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    finals.sort();
    let text = std::fs::read_to_string(text_out).unwrap_or_default();
    (ok, text, finals, all, lines)
}

fn metric(url: &str, name: &str, model: &str) -> f64 {
    let out = std::process::Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys,urllib.request;print(urllib.request.urlopen(sys.argv[1],timeout=5).read().decode())",
            url,
        ])
        .output()
        .expect("python3 fetches the metrics");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(&format!("model=\"{model}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn the_server_gives_the_same_subtitles_and_alerts_as_local_inference() {
    let dir = common::tmpdir("remote-same");
    let triton = common::Triton::start(18310, &["silero-vad", "ced-tiny", "moonshine-base"]);
    let wav = real_mix(&dir, 40);
    let (ok, local_text, local, out) = run(&wav, &dir.join("local.txt"), &[], false);
    assert!(ok, "{out}");
    let server = format!("server={}", triton.grpc());
    let (ok, remote_text, remote, out) = run(
        &wav,
        &dir.join("remote.txt"),
        &[&server, "server-fallback=error"],
        false,
    );
    assert!(ok, "{out}");
    assert!(
        local
            .iter()
            .any(|l| l.contains("lalm-alert") && l.contains("siren")),
        "{local:#?}"
    );
    assert!(
        local
            .iter()
            .filter(|l| l.contains("lalm-transcript"))
            .count()
            >= 4,
        "{local:#?}"
    );
    assert_eq!(local, remote, "bus messages differ");
    assert_eq!(local_text, remote_text, "subtitles differ");
    // The VAD and the tagger of lalm-perceive, and lalm-respond's ASR: Moonshine's decode loop.
    for model in [
        "silero-vad",
        "ced-tiny",
        "moonshine-base",
        "moonshine-base.decoder",
    ] {
        let n = metric(&triton.metrics_url(), "nv_inference_request_success", model);
        println!("{model}: {n} requests served");
        assert!(n >= 4.0, "{model} got {n} requests");
    }
    println!("{local_text}");
}

/// Kills the server `kill_at` into the run and, when `restart_at` is given, starts it again
/// then; returns the run's outcome, its stamped stdout and the stream's length.
fn run_with_faults(
    name: &str,
    base: u16,
    props: &[&str],
    kill_at: Duration,
    restart_at: Option<Duration>,
) -> (bool, String, Vec<String>, String, Stamped, Duration) {
    let dir = common::tmpdir(name);
    let mut triton = common::Triton::start(base, &["silero-vad", "ced-tiny", "moonshine-base"]);
    let wav = real_mix(&dir, 24);
    let server = format!("server={}", triton.grpc());
    let mut all = vec![server.as_str()];
    all.extend_from_slice(props);
    let faults = std::thread::spawn(move || {
        std::thread::sleep(kill_at);
        triton.kill();
        if let Some(at) = restart_at {
            std::thread::sleep(at - kill_at);
            triton.restart();
        }
        triton
    });
    // 16-bit mono at 16 kHz after a 44-byte header (common::write_wav).
    let bytes = std::fs::metadata(&wav).expect("the WAV").len();
    let length = Duration::from_secs_f64(bytes.saturating_sub(44) as f64 / 32000.0);
    let (ok, text, finals, out, lines) = run_stamped(&wav, &dir.join("out.txt"), &all, true);
    drop(faults.join());
    (ok, text, finals, out, lines, length)
}

#[test]
fn a_killed_server_is_replaced_by_local_inference_and_used_again_once_back() {
    let dir = common::tmpdir("remote-kill-local");
    let wav = real_mix(&dir, 24);
    // Paced like the run with faults: a final decoded while its pause is being confirmed
    // is one of the live path's timings, so the baseline runs live too.
    let (ok, local_text, local, out) = run(&wav, &dir.join("local.txt"), &[], true);
    assert!(ok, "{out}");
    let (ok, text, finals, out, _, _) = run_with_faults(
        "remote-kill-local",
        18320,
        &["server-fallback=local", "server-timeout-ms=1000"],
        Duration::from_secs(5),
        Some(Duration::from_secs(12)),
    );
    assert!(ok, "the pipeline failed: {out}");
    // Utterances end while the server is down: the ASR falls back as the VAD does.
    for what in ["the VAD", "the ASR model"] {
        let warned = out.lines().find(|l| {
            l.contains(&format!("{what}: inference server"))
                && l.contains("unreachable, running on local ONNX Runtime")
        });
        assert!(warned.is_some(), "no warning for {what}:\n{out}");
        println!("{}", warned.unwrap_or_default());
        assert!(
            out.contains(&format!("{what} runs on the inference server")),
            "no message that {what} uses the server again:\n{out}"
        );
    }
    // The VAD's state travels with every request, so no chunk was lost or analysed
    // differently: the same alerts and the same utterance spans, exactly. The words are
    // compared loosely: the paced stream is live, and which decode a final takes (its
    // pause's speculative one, or its own) is a live timing, so on a loaded machine one
    // final read "Log in in correct" here and "Login incorrect" in the baseline.
    let alerts = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter(|l| l.contains("lalm-alert"))
            .cloned()
            .collect()
    };
    assert_eq!(
        alerts(&finals),
        alerts(&local),
        "alerts differ from local inference"
    );
    assert_eq!(
        finals.len(),
        local.len(),
        "as many alerts and final cues as local inference: {finals:#?} vs {local:#?}"
    );
    // Sorted by span: the lines were sorted by their text, which may differ.
    let spans = |v: &[String]| {
        let mut spans: Vec<String> = v
            .iter()
            .map(|l| {
                l.split(", ")
                    .filter(|f| f.starts_with("start=") || f.starts_with("end="))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
        spans.sort();
        spans
    };
    assert_eq!(spans(&finals), spans(&local), "utterance spans differ");
    let (errors, words) = common::word_errors(&local_text, &text);
    assert!(
        errors * 5 <= words,
        "{errors} of {words} words differ from local inference:\n{text}\nvs\n{local_text}"
    );
}

#[test]
fn a_killed_server_with_fallback_error_fails_the_pipeline_cleanly() {
    let (ok, _, _, out, lines, length) = run_with_faults(
        "remote-kill-error",
        18330,
        &["server-fallback=error", "server-timeout-ms=1000"],
        Duration::from_secs(4),
        None,
    );
    assert!(!ok, "the pipeline succeeded without its server:\n{out}");
    assert!(out.contains("unreachable"), "{out}");
    assert!(
        !out.contains("Got EOS from element"),
        "the stream ran to its end:\n{out}"
    );
    // The error ends the stream: nothing waits for the rest. The stream is paced
    // (identity sync=true), so a run that waited for the rest would post its error no sooner
    // than the stream's length after PLAYING; how long loading the models took does not count.
    let at = |what: &str| {
        lines
            .iter()
            .find(|(_, l)| l.contains(what))
            .map(|(t, _)| *t)
    };
    // gst-launch prints the error itself on stderr, and "Execution ended after" on stdout
    // as the error stops it.
    let error = at("Execution ended after").expect("gst-launch says when the run ended");
    let playing = at("Setting pipeline to PLAYING").unwrap_or(error);
    let after = error.saturating_sub(playing);
    println!(
        "the error {after:?} after PLAYING, in a stream of {length:?}: {}",
        out.lines()
            .find(|l| l.contains("ERROR"))
            .unwrap_or_default()
    );
    assert!(
        after < length,
        "the error came {after:?} after PLAYING: the {length:?} stream ran to its end first"
    );
}

#[test]
fn bad_server_settings_are_clear_errors() {
    let dir = common::tmpdir("remote-bad");
    let wav = real_mix(&dir, 4);
    let triton = common::Triton::start(18340, &["silero-vad", "ced-tiny", "moonshine-base"]);
    let server = format!("server={}", triton.grpc());
    let cases: [(&[&str], &str); 4] = [
        (&["server=127.0.0.1"], "no port"),
        (
            &["server=127.0.0.1:18349", "server-fallback=error"],
            "unreachable",
        ),
        (
            &[&server, "server-models=vad=no-such-model"],
            "'no-such-model' is not found",
        ),
        (&[&server, "server-models=vad=ced-tiny"], "no input named"),
    ];
    for (props, want) in cases {
        let (ok, _, _, out) = run(&wav, &dir.join("out.txt"), props, false);
        assert!(!ok, "{props:?} ran:\n{out}");
        let err = out.lines().find(|l| l.contains(want));
        assert!(err.is_some(), "{props:?}: no {want:?} in\n{out}");
        println!("{props:?}: {}", err.unwrap_or_default().trim());
    }
}

//! Sound alerts on real recordings, through the default loop (`lalm-interact`, ced-tiny,
//! the built-in classes): `lalm-sound-eval` over the test split of `tests/data/real-sounds.tsv`
//! (clips from pinned Debian packages, extracted by `scripts/fetch-sounds.sh`; the classes'
//! values were chosen on the separate calibration split). Needs the setup command's ONNX
//! Runtime and model packages.
//!
//! - 20 minutes of real speech alone (five voices, four languages): no sound alert.
//! - Real music, applause, footsteps and laughter, alone and between speech: no sound alert;
//!   the music is reported as an everyday sound (`lalm-sound`).
//! - The respond clips, each between stretches of real speech: an alert of the clip's class
//!   within ±1 s of its onset for most of them (recall and precision bars below; the misses
//!   are printed, and the README lists them with the reason), and the alert starts within
//!   1 s of the onset for 95 % of the found ones.

use std::process::Command;

/// Everyday classes on which the issue forbids any sound alert.
const QUIET_ON: &[&str] = &["music", "applause", "footsteps", "laughter"];

/// `lalm-sound-eval --split test --speech-minutes 20` with `extra` arguments: its JSON report.
fn sound_eval(extra: &[&str]) -> serde_json::Value {
    let out = std::env::temp_dir().join(format!(
        "lalm-sound-eval-{}-{}.json",
        std::process::id(),
        extra.join("_").replace(['/', '='], "-")
    ));
    let run = Command::new(env!("CARGO_BIN_EXE_lalm-sound-eval"))
        .args(["--split", "test", "--speech-minutes", "20", "--json"])
        .arg(&out)
        .args(extra)
        .output()
        .expect("lalm-sound-eval runs");
    eprintln!("{}", String::from_utf8_lossy(&run.stdout));
    assert!(
        run.status.success(),
        "lalm-sound-eval failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("the JSON report"))
            .expect("JSON");
    let _ = std::fs::remove_file(&out);
    doc
}

/// The report's list `key`, each value through `f`, sorted.
fn sorted(doc: &serde_json::Value, key: &str, f: fn(f64) -> f64) -> Vec<f64> {
    let mut v: Vec<f64> = doc[key]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|v| v.as_f64().map(f))
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

#[test]
fn real_recordings_raise_the_right_alerts_and_no_false_ones() {
    let doc = sound_eval(&[]);

    assert!(doc["speech_minutes"].as_f64().unwrap_or(0.0) >= 20.0);
    let speech_false = doc["speech_false_alerts"].as_array().expect("list");
    assert!(
        speech_false.is_empty(),
        "false alerts on real speech: {speech_false:?}"
    );

    let everyday = doc["everyday_false_alerts"].as_array().expect("list");
    for a in everyday {
        let during = a["during"].as_str().unwrap_or_default();
        assert!(
            !QUIET_ON.contains(&during),
            "sound alert on real {during} alone: {a}"
        );
    }
    for during in doc["false_in_events_during"].as_array().expect("list") {
        let during = during.as_str().unwrap_or_default();
        assert!(
            during != "speech" && !QUIET_ON.contains(&during),
            "sound alert on real {during} between speech"
        );
    }

    // Everyday sounds are not lost either: the music between speech is reported quietly.
    let reported = doc["sounds_reported"].as_array().expect("list");
    assert!(
        reported.iter().any(|c| c == "music"),
        "no lalm-sound message for the music clips: {reported:?}"
    );

    let recall = doc["recall"].as_f64().unwrap_or(0.0);
    let precision = doc["precision"].as_f64().unwrap_or(0.0);
    assert!(recall >= 0.55, "recall {recall:.2} on the test split");
    assert!(
        precision >= 0.75,
        "precision {precision:.2} on the test split"
    );
    let errors = sorted(&doc, "start_error_s", f64::abs);
    let p95 = errors[((errors.len() - 1) as f64 * 0.95).round() as usize];
    assert!(p95 <= 1.0, "alert start error p95 {p95:.2} s");
}

/// The learned decision head in the loop (`decision-model=decision-head`, the package the
/// setup command installs from `models/decision-head`) on the same test split: it decides on
/// real sounds without a false response on the 20 minutes of real speech, finds more of the
/// events than the rules (21 of 31 when added, against 18) at a lower precision (0.62 against
/// 0.82, which is why the rules stay the default), dates its alerts at the sound's onset like
/// the rules, and decides sooner after the onset (p50 0.46 s against 1.19 s when added).
#[test]
fn the_decision_head_responds_to_real_sounds_and_not_to_real_speech() {
    let head = sound_eval(&["--set", "decision-model=decision-head"]);
    let speech_false = head["speech_false_alerts"].as_array().expect("list");
    assert!(
        speech_false.is_empty(),
        "the head responded to real speech: {speech_false:?}"
    );
    let found: u64 = head["classes"]
        .as_object()
        .expect("classes")
        .values()
        .map(|c| c["found"].as_u64().unwrap_or(0))
        .sum();
    assert!(found >= 19, "the head found {found} of 31 sounds");
    let precision = head["precision"].as_f64().unwrap_or(0.0);
    assert!(precision >= 0.55, "the head's precision {precision:.2}");
    let errors = sorted(&head, "start_error_s", f64::abs);
    assert!(
        errors[errors.len() / 2] <= 0.5,
        "alerts not dated at the onset: {errors:?}"
    );
    let p50 = |doc: &serde_json::Value| {
        let v = sorted(doc, "latency_s", |x| x);
        v[v.len() / 2]
    };
    // Only the events stream matters here: the rules over a minute of speech.
    let rules = sound_eval(&["--speech-minutes", "1"]);
    assert!(
        p50(&head) < p50(&rules),
        "the head decides no sooner than the rules: {:.2} s against {:.2} s",
        p50(&head),
        p50(&rules)
    );
}

//! The picture of a session (`lalm-listen --report`, `--labels`) on real recordings, opened
//! in a real headless browser (Debian's `chromium`, which `scripts/test.sh` installs): real
//! speech of two voices (the Asterisk prompts, Allison then Carlo) with a real siren between
//! them. The page must load without a console error, run its script to the end and show as
//! many cues, sound events and alerts as the Audacity label track holds, and the speakers.

#[path = "common/mod.rs"]
mod common;

use std::process::Command;

#[test]
fn the_report_page_shows_what_was_heard_in_a_real_browser() {
    let dir = common::tmpdir("report");
    let (speech, prompts) = common::asterisk_prompts();
    let rate = common::RATE as usize;
    let mut audio = speech[prompts[0].0..prompts[3].1].to_vec();
    audio.extend(vec![0.0; rate]);
    audio.extend(common::real_clip(&dir, "siren-scorched-firetruck"));
    audio.extend(vec![0.0; rate]);
    let carlo = common::cache_path("sounds/speech/it_IT_m_Carlo.wav");
    let copy = dir.join("carlo.wav");
    std::fs::copy(&carlo, &copy).expect("the Italian voice: run bash scripts/fetch-sounds.sh");
    audio.extend(&common::read_audio(&copy)[30 * rate..38 * rate]);
    audio.extend(vec![0.0; rate]);
    let wav = dir.join("session.wav");
    common::write_wav(&wav, &audio);
    let (html, labels) = (dir.join("report.html"), dir.join("labels.txt"));

    let out = Command::new(env!("CARGO_BIN_EXE_lalm-listen"))
        .args(["--speaker-model", "pyannote-community-1", "--report"])
        .arg(&html)
        .arg("--labels")
        .arg(&labels)
        .arg(&wav)
        .output()
        .expect("lalm-listen runs");
    assert!(
        out.status.success(),
        "lalm-listen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let track = std::fs::read_to_string(&labels).expect("the label track");
    eprintln!("{track}");
    let rows: Vec<Vec<&str>> = track.lines().map(|l| l.split('\t').collect()).collect();
    assert!(
        rows.iter().all(|r| r.len() == 3),
        "start, end, label per line"
    );
    let sounds = rows.iter().filter(|r| r[2].starts_with('[')).count();
    let alerts = rows.iter().filter(|r| r[2].starts_with("ALERT ")).count();
    let cues = rows.len() - sounds - alerts;
    // An utterance under 0.8 s gets no speaker label.
    let labelled = rows
        .iter()
        .filter(|r| r[2].starts_with('S') && r[2].get(2..4) == Some(": "))
        .count();
    assert!(
        cues >= 4,
        "the prompts and the Italian turn are transcribed: {track}"
    );
    assert!(
        rows.iter().any(|r| r[2] == "[siren] Siren"),
        "the siren is a sound event: {track}"
    );
    assert!(
        rows.iter().any(|r| r[2].starts_with("S2: ")),
        "the second voice is a second speaker: {track}"
    );

    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
        .expect("chromium (Debian's package; scripts/test.sh installs it)");
    let page = format!("file://{}", html.display());
    let profile = dir.join("chromium-profile");
    let dom = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", &page])
        .output()
        .expect("chromium runs");
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    let log = String::from_utf8_lossy(&dom.stderr);
    assert!(dom.status.success(), "chromium failed: {log}");
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(
        dom_text.contains("data-ready=\"1\""),
        "the page's script ran to its end: {dom_text}"
    );
    let count = |class: &str| dom_text.matches(&format!("class=\"item {class}\"")).count();
    assert_eq!(count("cue"), cues, "cues on the page");
    assert_eq!(count("sound"), sounds, "sound events on the page");
    assert_eq!(count("alert"), alerts, "alerts on the page");
    assert_eq!(count("speaker"), labelled, "each labelled cue's speaker");
    assert!(dom_text.contains("<canvas"), "the waveform");
}

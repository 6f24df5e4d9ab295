//! The assistant (`assistant-model`) through `gst-launch-1.0`: a spoken "hey assistant, …"
//! question gets an answer grounded in what was said before, as growing `lalm-response`
//! messages (`kind=answer`) and as text on the pad; a stream that ends right after the
//! question still gets its answer; a bad package is a clear error.
//! The speech is espeak-ng (mechanics), transcribed with whisper-base, which hears espeak
//! better than Moonshine (see tests/alerts.rs); the answering model is the real
//! qwen2.5-0.5b package scripts/setup.sh builds from the pinned wheels, or the converter's
//! tiny-random one where only the plumbing is under test.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

/// Silence, then each sentence followed by `gap` seconds of silence; written to `name`.
fn speech(dir: &Path, name: &str, sentences: &[&str], gap: f32) -> PathBuf {
    let mut audio = vec![0.0f32; 16000];
    for (i, s) in sentences.iter().enumerate() {
        audio.extend(common::speak(dir, s, ["en-us", "en-gb"][i % 2], 150));
        audio.extend(vec![0.0f32; (gap * 16000.0) as usize]);
    }
    let path = dir.join(name);
    common::write_wav(&path, &audio);
    path
}

/// The `text` and `final` fields of the `lalm-response` messages of `kind`.
fn responses(out: &str, kind: &str) -> Vec<(String, bool)> {
    out.lines()
        .filter(|l| {
            l.contains("(element): lalm-response,") && l.contains(&format!("kind=(string){kind},"))
        })
        .map(|l| {
            let text = l
                .split("text=(string)")
                .nth(1)
                .map(|r| {
                    let r = r.strip_prefix('"').unwrap_or(r);
                    let end = r.find([',', '"']).unwrap_or(r.len());
                    r[..end].replace('\\', "")
                })
                .unwrap_or_default();
            (text, l.contains("final=(boolean)true"))
        })
        .collect()
}

fn run(wav: &Path, model: &str, text_out: &Path) -> (bool, String) {
    let out = common::gst_launch(
        &[
            "-m",
            "filesrc",
            &format!("location={}", wav.display()),
            "!",
            "wavparse",
            "!",
            "lalm-interact",
            "asr-model=whisper-base",
            &format!("assistant-model={model}"),
            "!",
            "filesink",
            &format!("location={}", text_out.display()),
        ],
        &[],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn a_spoken_question_gets_an_answer_from_what_was_said() {
    let dir = common::tmpdir("assistant-question");
    let wav = speech(
        &dir,
        "meeting.wav",
        &[
            "Good morning everyone.",
            "The release date moves to the fourteenth of March because the lab results are late.",
            "Hey assistant, when is the release?",
        ],
        1.5,
    );
    let text_out = dir.join("text.txt");
    let (ok, out) = run(&wav, "qwen2.5-0.5b", &text_out);
    assert!(ok, "gst-launch failed:\n{out}");
    let answers = responses(&out, "answer");
    let finals: Vec<&String> = answers.iter().filter(|(_, f)| *f).map(|(t, _)| t).collect();
    assert_eq!(finals.len(), 1, "one answer: {answers:?}\n{out}");
    let answer = finals[0].to_lowercase();
    assert!(
        (answer.contains("14") || answer.contains("fourteen")) && answer.contains("march"),
        "the answer uses what was said: {answer:?}"
    );
    // Tokens stream out first: growing partial answers, each a prefix of the final one.
    let partials: Vec<&String> = answers
        .iter()
        .filter(|(_, f)| !*f)
        .map(|(t, _)| t)
        .collect();
    assert!(partials.len() >= 3, "partial answers: {partials:?}");
    assert!(
        partials.iter().all(|p| finals[0].starts_with(p.trim_end())),
        "{partials:?} vs {finals:?}"
    );
    let pad = std::fs::read_to_string(&text_out).expect("text output");
    assert!(
        pad.contains(finals[0].as_str()),
        "the answer is on the text pad: {pad:?}"
    );
}

#[test]
fn a_stream_that_ends_right_after_the_question_still_gets_the_answer() {
    let dir = common::tmpdir("assistant-eos");
    let wav = speech(
        &dir,
        "question.wav",
        &["Hey assistant, what did we decide?"],
        0.4,
    );
    let text_out = dir.join("text.txt");
    let (ok, out) = run(&wav, "tiny-random", &text_out);
    assert!(ok, "gst-launch failed:\n{out}");
    let finals: Vec<String> = responses(&out, "answer")
        .into_iter()
        .filter(|(_, f)| *f)
        .map(|(t, _)| t)
        .collect();
    assert_eq!(finals.len(), 1, "one answer before EOS:\n{out}");
    let pad = std::fs::read(&text_out).expect("text output");
    assert!(
        pad.len() > "Hey assistant, what did we decide?".len(),
        "answer text on the pad"
    );
}

#[test]
fn an_unknown_assistant_model_is_a_clear_error() {
    let dir = common::tmpdir("assistant-bad");
    let wav = speech(&dir, "short.wav", &["Hello."], 0.5);
    let (ok, out) = run(&wav, "no-such-language-model", &dir.join("text.txt"));
    assert!(!ok, "the pipeline must fail");
    assert!(
        out.contains("assistant-model") && out.contains("no-such-language-model"),
        "the error names the property and the package:\n{out}"
    );
}

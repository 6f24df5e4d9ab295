//! The assistant (`assistant-model`) through `gst-launch-1.0`: a spoken "hey assistant, …"
//! question gets an answer grounded in what was said before, as growing `lalm-response`
//! messages (`kind=answer`) and as text on the pad; a stream that ends right after the
//! question still gets its answer; a bad package is a clear error.
//! The speech is espeak-ng (mechanics), transcribed with whisper-base, which hears espeak
//! better than Moonshine (see tests/alerts.rs); the answering model is the real
//! qwen2.5-0.5b package scripts/setup.sh builds from the pinned wheels, or the converter's
//! tiny-random one where only the plumbing is under test.
//! Sounds are real recordings between real speech (`scripts/fetch-sounds.sh`): a siren gets
//! a remark from the model, music does not, and a rule with `assistant = "silent"` keeps the
//! model quiet about a siren while the alert still goes out.

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
            (
                string_field(l, "text").unwrap_or_default(),
                l.contains("final=(boolean)true"),
            )
        })
        .collect()
}

/// The final `lalm-transcript` texts (the subtitles) in gst-launch -m output.
fn final_transcripts(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains("(element): lalm-transcript,") && l.contains("final=(boolean)true"))
        .filter_map(|l| string_field(l, "text"))
        .collect()
}

/// The string field `name` of a structure as gst-launch -m prints it: `name=(string)` then
/// either a bare word or a quoted string in which a backslash escapes the next character
/// (`\,`, `\ `, `\"`, ...) and `\ooo` (three octal digits) stands for a byte (GStreamer
/// writes every byte outside printable ASCII so, UTF-8 included). A field name only occurs
/// unescaped outside values: inside a quoted one `, ` and `=` are escaped.
fn string_field(line: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=(string)");
    let rest = &line.as_bytes()[line.find(&key)? + key.len()..];
    let mut out = Vec::new();
    if rest.first() != Some(&b'"') {
        out.extend(rest.iter().take_while(|&&b| b != b',' && b != b';'));
        return Some(String::from_utf8_lossy(&out).into_owned());
    }
    let mut i = 1;
    loop {
        match *rest.get(i)? {
            b'"' => return Some(String::from_utf8_lossy(&out).into_owned()),
            b'\\' => {
                let octal = rest
                    .get(i + 1..i + 4)
                    .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
                match octal {
                    Some(d) => {
                        out.push(d.iter().fold(0u8, |v, c| (v << 3) | (c - b'0')));
                        i += 4;
                    }
                    None => {
                        out.push(*rest.get(i + 1)?);
                        i += 2;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
}

#[test]
fn gstreamer_strings_are_read_whole() {
    let line = "Got message #12 from element \"respond\" (element): lalm-response, \
                kind=(string)answer, text=(string)\"On\\ the\\ 14th\\,\\ I\\ think\\ \\\"soon\\\"\\ \\303\\251t\\303\\251\\.\", \
                final=(boolean)true, start=(guint64)0;";
    assert_eq!(
        string_field(line, "text").as_deref(),
        Some("On the 14th, I think \"soon\" \u{e9}t\u{e9}.")
    );
    assert_eq!(string_field(line, "kind").as_deref(), Some("answer"));
    assert_eq!(string_field(line, "prompt"), None);
    assert_eq!(
        responses(line, "answer"),
        vec![(
            "On the 14th, I think \"soon\" \u{e9}t\u{e9}.".to_string(),
            true
        )]
    );
}

fn run(wav: &Path, model: &str, text_out: &Path) -> (bool, String) {
    run_with(wav, model, text_out, &["asr-model=whisper-base"])
}

fn run_with(wav: &Path, model: &str, text_out: &Path, props: &[&str]) -> (bool, String) {
    let location = format!("location={}", wav.display());
    let model = format!("assistant-model={model}");
    let sink = format!("location={}", text_out.display());
    let mut args = vec![
        "-m",
        "filesrc",
        &location,
        "!",
        "wavparse",
        "!",
        "lalm-interact",
    ];
    args.extend_from_slice(props);
    args.extend([model.as_str(), "!", "filesink", sink.as_str()]);
    let out = common::gst_launch(&args, &[]);
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
            "Hey assistant, what is the new release date?",
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
        "the answer uses what was said: {answer:?}; heard: {:?}",
        out.lines()
            .filter(|l| l.contains("lalm-transcript") && l.contains("final=(boolean)true"))
            .filter_map(|l| string_field(l, "text"))
            .collect::<Vec<_>>()
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
    assert!(!finals[0].trim().is_empty(), "an empty answer:\n{out}");
    let pad = String::from_utf8_lossy(&std::fs::read(&text_out).expect("text output")).into_owned();
    // The pad carries the subtitles and, after them, the answer posted on the bus.
    let subtitles = final_transcripts(&out);
    assert!(
        !subtitles.is_empty() && subtitles.iter().all(|t| !t.trim().is_empty()),
        "the question is transcribed: {subtitles:?}\n{out}"
    );
    for t in &subtitles {
        assert!(
            pad.contains(t.as_str()),
            "the subtitle {t:?} is not on the text pad: {pad:?}"
        );
    }
    let at = pad.find(finals[0].as_str());
    assert!(
        at.is_some(),
        "the answer {:?} is not on the text pad: {pad:?}",
        finals[0]
    );
    let last = subtitles.last().and_then(|t| pad.rfind(t.as_str()));
    assert!(
        at >= last,
        "the answer comes after the question's subtitle: {pad:?}"
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

/// Two real prompts, the recording `clip`, one more prompt: real speech around a real sound.
fn sound_in_speech(dir: &Path, clip: &str) -> PathBuf {
    let (speech, prompts) = common::asterisk_prompts();
    let prompt = |i: usize| &speech[prompts[i].0..prompts[i].1];
    let mut audio = Vec::new();
    for i in 0..2 {
        audio.extend_from_slice(prompt(i));
        audio.extend(vec![0.0f32; 8000]);
    }
    audio.extend(common::real_clip(dir, clip));
    audio.extend(vec![0.0f32; 8000]);
    audio.extend_from_slice(prompt(2));
    let path = dir.join(format!("{clip}.wav"));
    common::write_wav(&path, &audio);
    path
}

/// The `lalm-alert` messages' `rule` fields.
fn alert_rules(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains("(element): lalm-alert,"))
        .filter_map(|l| l.split("rule=(string)").nth(1))
        .map(|r| r.split(',').next().unwrap_or("").to_string())
        .collect()
}

/// The `lalm-response` messages that answer a request about an alert (`interjection` or
/// `silent`): one per time the model was asked.
fn requests(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.contains("(element): lalm-response,"))
        .filter(|l| l.contains("kind=(string)interjection") || l.contains("kind=(string)silent"))
        .collect()
}

/// Writes `text` as the test's rules file; returns the `rules=` property for it.
fn rules_file(dir: &Path, text: &str) -> String {
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, text).expect("rules file");
    format!("rules={}", rules.display())
}

#[test]
fn a_siren_gets_a_remark_and_music_does_not() {
    let dir = common::tmpdir("assistant-sounds");
    let siren = sound_in_speech(&dir, "siren-scorched-policecar");
    let (ok, out) = run_with(&siren, "qwen2.5-0.5b", &dir.join("siren.txt"), &[]);
    assert!(ok, "gst-launch failed:\n{out}");
    assert!(
        alert_rules(&out).iter().any(|r| r == "siren"),
        "a siren alert:\n{out}"
    );
    let remarks: Vec<String> = responses(&out, "interjection")
        .into_iter()
        .filter(|(t, f)| *f && t.split_whitespace().count() >= 3)
        .map(|(t, _)| t)
        .collect();
    assert_eq!(remarks.len(), 1, "one remark about the siren:\n{out}");
    let pad = std::fs::read_to_string(dir.join("siren.txt")).expect("text output");
    assert!(
        pad.contains(remarks[0].as_str()),
        "the remark is on the text pad: {pad:?}"
    );

    let music = sound_in_speech(&dir, "music-moh-manolo-b");
    let (ok, out) = run_with(&music, "qwen2.5-0.5b", &dir.join("music.txt"), &[]);
    assert!(ok, "gst-launch failed:\n{out}");
    assert!(
        out.contains("lalm-sound,") && out.contains("class=(string)music"),
        "the music is heard (lalm-sound):\n{out}"
    );
    assert!(alert_rules(&out).is_empty(), "no alert for music:\n{out}");
    assert!(
        requests(&out).is_empty(),
        "the model is not asked about music:\n{out}"
    );
}

#[test]
fn a_rule_can_forbid_the_model_to_speak() {
    let dir = common::tmpdir("assistant-forbid");
    let rules_prop = rules_file(
        &dir,
        "include-defaults = true\n[[rule]]\nname = \"siren\"\nkind = \"sound-event\"\n\
         label = \"siren\"\nassistant = \"silent\"\n",
    );
    let siren = sound_in_speech(&dir, "siren-scorched-policecar");
    let (ok, out) = run_with(
        &siren,
        "qwen2.5-0.5b",
        &dir.join("text.txt"),
        &[rules_prop.as_str()],
    );
    assert!(ok, "gst-launch failed:\n{out}");
    assert!(
        alert_rules(&out).iter().any(|r| r == "siren"),
        "the alert still goes out:\n{out}"
    );
    assert!(requests(&out).is_empty(), "the model is not asked:\n{out}");
}

#[test]
fn a_keyword_rule_can_put_what_was_said_to_the_model() {
    let dir = common::tmpdir("assistant-keyword");
    let rules_prop = rules_file(
        &dir,
        "[[rule]]\nname = \"money\"\nkind = \"keyword\"\nwords = [\"budget\"]\nassistant = \"respond\"\n\
         [[rule]]\nname = \"legal\"\nkind = \"keyword\"\nwords = [\"contract\"]\n",
    );
    let wav = speech(
        &dir,
        "said.wav",
        &["The budget and the contract are ready."],
        1.0,
    );
    let (ok, out) = run_with(
        &wav,
        "tiny-random",
        &dir.join("text.txt"),
        &["asr-model=whisper-base", rules_prop.as_str()],
    );
    assert!(ok, "gst-launch failed:\n{out}");
    let fired = alert_rules(&out);
    assert!(
        fired.contains(&"money".to_string()) && fired.contains(&"legal".to_string()),
        "both keywords fire: {fired:?}\n{out}"
    );
    // Only the rule that says so asks the model; the mechanics, not the (random) words.
    // Remarks and silent decisions are posted once, finished (only answers grow).
    let asked = requests(&out);
    assert_eq!(asked.len(), 1, "one request: {asked:?}\n{out}");
    assert!(asked[0].contains("prompt=(string)budget"), "{}", asked[0]);
}

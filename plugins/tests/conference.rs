//! The conferencing-server example (`pipelines/conference.sh`): sixteen participants, each a
//! different stretch of real recorded speech (the Asterisk prompts, `scripts/fetch-speech.sh`)
//! played at real pace, in one process. Every participant's final cues arrive on time (within
//! the text latency after the speech they carry), on the right participant, with the words
//! said, and every participant gets its subtitle file and alert stream.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Once};

use gst::prelude::*;

const PARTICIPANTS: usize = 16;
/// Seconds of the recording each participant plays, at least: whole prompts.
const PIECE_S: usize = 10;
/// lalm-respond's default `latency`: text is on time when it arrives within it.
const LATENCY_S: f64 = 8.0;

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().expect("gst init");
        gstlalm::plugin_register_static().expect("register plugin");
    });
}

/// A final cue as the bus said it: participant, end of its speech (s), when it was posted
/// (running time, s), its text.
#[derive(Debug, Clone)]
struct Heard {
    participant: usize,
    end: f64,
    posted: f64,
    text: String,
}

#[test]
fn sixteen_participants_in_one_process_get_their_text_on_time() {
    init();
    let dir = common::tmpdir("conference");
    let (audio, prompts) = common::asterisk_prompts();
    let rate = common::RATE as usize;
    // Whole prompts for each participant, at least PIECE_S seconds of them, cut in the pauses.
    let mut files = Vec::new();
    let mut said = Vec::new();
    let mut next = 0;
    let mut from = 0;
    for k in 0..PARTICIPANTS {
        let mut texts = Vec::new();
        let mut to = from;
        while let Some((_, e, t)) = prompts.get(next) {
            texts.push(t.as_str());
            next += 1;
            to = prompts
                .get(next)
                .map_or(audio.len(), |(s, _, _)| (e + s) / 2);
            if to - from >= PIECE_S * rate {
                break;
            }
        }
        assert!(
            to - from >= PIECE_S * rate,
            "the recording ran out at participant {k}"
        );
        let path = dir.join(format!("participant{k}.wav"));
        common::write_wav(&path, &audio[from..to]);
        files.push(path);
        said.push(texts.join(" "));
        from = to;
    }
    assert!(said.iter().all(|s| !s.is_empty()), "{said:?}");

    let out = dir.join("out");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/conference.sh");
    let printed = std::process::Command::new("bash")
        .arg(&script)
        .arg("--print")
        .arg(&out)
        .args(&files)
        .output()
        .expect("bash runs");
    assert!(printed.status.success(), "{printed:?}");
    let desc = String::from_utf8(printed.stdout).expect("utf-8");
    let pipeline = gst::parse::launch(&desc)
        .expect("the example's pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");

    let heard: Arc<Mutex<Vec<Heard>>> = Arc::default();
    let bus = pipeline.bus().expect("bus");
    {
        let heard = heard.clone();
        let weak = pipeline.downgrade();
        bus.set_sync_handler(move |_, msg| {
            if let gst::MessageView::Element(el) = msg.view()
                && let Some(s) = el.structure()
                && s.name() == "lalm-transcript"
                && s.get::<bool>("final").unwrap_or(false)
            {
                let posted = weak
                    .upgrade()
                    .and_then(|p| p.current_running_time())
                    .map_or(f64::NAN, |t| t.nseconds() as f64 / 1e9);
                let participant = msg
                    .src()
                    .map(|o| o.path_string().to_string())
                    .and_then(|p| {
                        let i = p.find("lalm-p")? + 6;
                        p[i..]
                            .split(|c: char| !c.is_ascii_digit())
                            .next()?
                            .parse()
                            .ok()
                    })
                    .unwrap_or(usize::MAX);
                heard.lock().expect("lock").push(Heard {
                    participant,
                    end: s.get::<u64>("end").unwrap_or(0) as f64 / 1e9,
                    posted,
                    text: s.get::<String>("text").unwrap_or_default(),
                });
            }
            gst::BusSyncReply::Pass
        });
    }
    pipeline.set_state(gst::State::Playing).expect("playing");
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(600)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}: {:?}", e.error(), e.debug()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).expect("null");

    let heard = heard.lock().expect("lock").clone();
    let mut by: BTreeMap<usize, Vec<&Heard>> = BTreeMap::new();
    for h in &heard {
        by.entry(h.participant).or_default().push(h);
    }
    assert_eq!(
        by.keys().copied().collect::<Vec<_>>(),
        (0..PARTICIPANTS).collect::<Vec<_>>(),
        "every participant, and only they, got final cues"
    );
    let mut late: Vec<f64> = heard.iter().map(|h| h.posted - h.end).collect();
    late.sort_by(f64::total_cmp);
    let p50 = late[late.len() / 2];
    let worst = late[late.len() - 1];
    eprintln!(
        "{} final cues; arrival after the speech: p50 {p50:.2} s, worst {worst:.2} s",
        heard.len()
    );
    assert!(
        worst <= LATENCY_S,
        "a final cue arrived {worst:.2} s after its speech, past the {LATENCY_S} s latency"
    );
    let (mut errors, mut words) = (0, 0);
    for (k, cues) in &by {
        let text: Vec<&str> = cues.iter().map(|h| h.text.as_str()).collect();
        let (e, n) = common::word_errors(&said[*k], &text.join(" "));
        eprintln!("participant {k}: {e}/{n} word errors: {}", text.join(" | "));
        errors += e;
        words += n;
        let srt = std::fs::read_to_string(out.join(format!("p{k}.srt"))).expect("subtitles");
        assert!(
            srt.contains("-->"),
            "participant {k}'s subtitle file: {srt:?}"
        );
        assert!(
            out.join(format!("p{k}.alerts")).exists(),
            "alert stream {k}"
        );
    }
    let wer = errors as f64 / words.max(1) as f64;
    assert!(wer <= 0.10, "WER {wer:.3} over the participants");
}

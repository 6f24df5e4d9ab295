//! The custom metas the elements attach to chunks. They are GstStructure-based
//! (`GstCustomMeta`), so C and Python applications read them with
//! `gst_buffer_get_custom_meta(buf, NAME)` and the structure API.
//!
//! * `LalmChunkMeta` (from `lalm-chunker`): `index` (u64), `start-sample` (u64, stream
//!   position of the first sample), `valid-samples` (u32), `overlap-samples` (u32),
//!   `padded` (bool), `rate` (i32).
//! * `LalmPerceptionMeta` (from `lalm-perceive`): `rate` (i32), `window-samples` (u32),
//!   `window-start` (array of u64 stream sample positions), `speech-prob` (array of f32),
//!   `level-db` (array of f32, each window's RMS level in dBFS), `clipped` (array of u32,
//!   samples at full scale per window), `reset` (bool: the model state was cleared before
//!   this chunk); with a sound-event tagger also `labels` (array of strings; on the
//!   stream's first chunk, the one marked `reset`, and on each chunk with tag frames), `tag-start`
//!   and `tag-end` (arrays of u64 stream sample positions, one per tagger window) and
//!   `tag-scores` (array of f32, row-major: one row of `labels` scores per tagger window).
//! * `LalmDecisionMeta` (from `lalm-decide`): `rate` (i32), `speaking` (bool),
//!   `settled-until` (u64), `pause-since` (u64: while the utterance under way pauses, where
//!   its silence began), and when they happened in this chunk `speech-start` (u64) and
//!   `turn-start`/`turn-end` (u64), all stream sample positions; `alerts` (array of
//!   `alert` structures: `kind`, `rule`, `label`, `text` strings, `confidence` f64,
//!   `start`/`end` u64 stream sample positions) when audio rules fired in this chunk.
//! * `LalmCueMeta` (on `lalm-respond`'s text buffers): `final` (bool: a final cue, or a
//!   partial one whose words are committed but not complete), `kind` (`transcript`,
//!   `turn-end`), `confidence` (f64).

use gst::prelude::*;
use soundflow::base::framing::Chunk;

/// The custom query `lalm-perceive` sends downstream when a stream starts, to learn which
/// tagger outputs the decisions act on: `labels` (array of strings, the tagger's) in; the
/// answer sets `indices` (array of u32) and `near` (array of f32, from which score a frame
/// may matter to that label's rules). `lalm-decide` answers it; unanswered, the tagger looks
/// at its full rate.
pub const TAGGER_WATCH: &str = "lalm-tagger-watch";

pub fn tagger_watch_query(labels: &[String]) -> gst::query::Custom<gst::Query> {
    gst::query::Custom::new(
        gst::Structure::builder(TAGGER_WATCH)
            .field(
                "labels",
                gst::Array::new(labels.iter().map(|l| l.to_send_value())),
            )
            .build(),
    )
}

/// The labels a watch query asks about.
pub fn tagger_watch_labels(s: &gst::StructureRef) -> Option<Vec<String>> {
    s.get::<gst::Array>("labels")
        .ok()?
        .iter()
        .map(|v| v.get::<String>().ok())
        .collect()
}

pub fn set_tagger_watch_answer(s: &mut gst::StructureRef, watched: &[(usize, f32)]) {
    s.set(
        "indices",
        gst::Array::new(watched.iter().map(|w| (w.0 as u32).to_send_value())),
    );
    s.set(
        "near",
        gst::Array::new(watched.iter().map(|w| w.1.to_send_value())),
    );
}

/// The answer of a watch query, if it was answered.
pub fn tagger_watch_answer(s: &gst::StructureRef) -> Option<Vec<(usize, f32)>> {
    let indices = s.get::<gst::Array>("indices").ok()?;
    let near = s.get::<gst::Array>("near").ok()?;
    if indices.len() != near.len() {
        return None;
    }
    indices
        .iter()
        .zip(near.iter())
        .map(|(i, n)| Some((i.get::<u32>().ok()? as usize, n.get::<f32>().ok()?)))
        .collect()
}
use soundflow::decide::alerts::{Alert, AlertKind, AssistantMode};
use soundflow::decide::decision::Decision;
use soundflow::decide::decision::Event;
use soundflow::perceive::perception::{Perception, TagFrame};
use soundflow::perceive::vad::WindowProb;

pub const CHUNK_META: &str = "LalmChunkMeta";
pub const PERCEPTION_META: &str = "LalmPerceptionMeta";
pub const DECISION_META: &str = "LalmDecisionMeta";
pub const CUE_META: &str = "LalmCueMeta";
/// Structure name of the serialized downstream event `lalm-decide` sends at EOS for an
/// utterance still open, with the decision meta's fields.
pub const DECISION_EVENT: &str = "lalm-decision";

pub fn register() {
    for name in [CHUNK_META, PERCEPTION_META, DECISION_META, CUE_META] {
        if !gst::meta::CustomMeta::is_registered(name) {
            gst::meta::CustomMeta::register(name, &[]);
        }
    }
}

/// What the chunk meta carries, read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkInfo {
    pub index: u64,
    pub start: u64,
    pub valid: u32,
    pub overlap: u32,
    pub padded: bool,
    pub rate: i32,
}

pub fn chunk_structure(c: &Chunk, rate: u32) -> gst::Structure {
    gst::Structure::builder(CHUNK_META)
        .field("index", c.index)
        .field("start-sample", c.start)
        .field("valid-samples", c.valid as u32)
        .field("overlap-samples", c.overlap as u32)
        .field("padded", c.padded)
        .field("rate", rate as i32)
        .build()
}

pub fn add_structure(
    buf: &mut gst::BufferRef,
    name: &str,
    s: gst::Structure,
) -> Result<(), glib::BoolError> {
    let mut m = gst::meta::CustomMeta::add(buf, name)?;
    let st = m.mut_structure();
    for (k, v) in s.iter() {
        st.set_value(k, v.clone());
    }
    Ok(())
}

pub fn get_structure(buf: &gst::BufferRef, name: &str) -> Option<gst::Structure> {
    gst::meta::CustomMeta::from_buffer(buf, name)
        .ok()
        .map(|m| m.structure().to_owned())
}

pub fn chunk_info(buf: &gst::BufferRef) -> Option<ChunkInfo> {
    let s = get_structure(buf, CHUNK_META)?;
    Some(ChunkInfo {
        index: s.get("index").ok()?,
        start: s.get("start-sample").ok()?,
        valid: s.get("valid-samples").ok()?,
        overlap: s.get("overlap-samples").ok()?,
        padded: s.get("padded").ok()?,
        rate: s.get("rate").ok()?,
    })
}

pub fn perception_structure(p: &Perception) -> gst::Structure {
    let starts = gst::Array::new(p.windows.iter().map(|w| w.start.to_send_value()));
    let probs = gst::Array::new(p.windows.iter().map(|w| w.prob.to_send_value()));
    let levels = gst::Array::new(p.windows.iter().map(|w| w.level_db.to_send_value()));
    let clipped = gst::Array::new(p.windows.iter().map(|w| w.clipped.to_send_value()));
    let mut b = gst::Structure::builder(PERCEPTION_META)
        .field("rate", p.rate as i32)
        .field("window-samples", p.window)
        .field("window-start", starts)
        .field("speech-prob", probs)
        .field("level-db", levels)
        .field("clipped", clipped)
        .field("reset", p.reset);
    if !p.labels.is_empty() {
        b = b
            .field(
                "labels",
                gst::Array::new(p.labels.iter().map(|l| l.to_send_value())),
            )
            .field(
                "tag-start",
                gst::Array::new(p.tags.iter().map(|t| t.start.to_send_value())),
            )
            .field(
                "tag-end",
                gst::Array::new(p.tags.iter().map(|t| t.end.to_send_value())),
            )
            .field(
                "tag-scores",
                gst::Array::new(
                    p.tags
                        .iter()
                        .flat_map(|t| t.scores.iter().map(|v| v.to_send_value())),
                ),
            );
    }
    b.build()
}

/// The tagger part of the perception meta; absent fields mean no tagger ran.
fn tags_from(s: &gst::StructureRef) -> Option<(Vec<String>, Vec<TagFrame>)> {
    let Ok(labels) = s.get::<gst::Array>("labels") else {
        return Some((Vec::new(), Vec::new()));
    };
    let labels = labels
        .iter()
        .map(|v| v.get::<String>().ok())
        .collect::<Option<Vec<_>>>()?;
    let starts = s.get::<gst::Array>("tag-start").ok()?;
    let ends = s.get::<gst::Array>("tag-end").ok()?;
    let scores = s.get::<gst::Array>("tag-scores").ok()?;
    let n = labels.len();
    if starts.len() != ends.len() || scores.len() != starts.len() * n {
        return None;
    }
    let scores = scores
        .iter()
        .map(|v| v.get::<f32>().ok())
        .collect::<Option<Vec<_>>>()?;
    let tags = starts
        .iter()
        .zip(ends.iter())
        .enumerate()
        .map(|(i, (a, b))| {
            Some(TagFrame {
                start: a.get::<u64>().ok()?,
                end: b.get::<u64>().ok()?,
                scores: scores[i * n..(i + 1) * n].to_vec(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some((labels, tags))
}

pub fn perception_from(s: &gst::StructureRef) -> Option<Perception> {
    let starts = s.get::<gst::Array>("window-start").ok()?;
    let probs = s.get::<gst::Array>("speech-prob").ok()?;
    // Levels are optional, so a producer that only knows probabilities still fits.
    let levels = s.get::<gst::Array>("level-db").ok();
    let clipped = s.get::<gst::Array>("clipped").ok();
    if starts.len() != probs.len()
        || levels.as_ref().is_some_and(|l| l.len() != starts.len())
        || clipped.as_ref().is_some_and(|l| l.len() != starts.len())
    {
        return None;
    }
    let windows = starts
        .iter()
        .zip(probs.iter())
        .enumerate()
        .map(|(i, (a, b))| {
            Some(WindowProb {
                start: a.get::<u64>().ok()?,
                prob: b.get::<f32>().ok()?,
                level_db: match &levels {
                    Some(l) => l.get(i)?.get::<f32>().ok()?,
                    None => 0.0,
                },
                clipped: match &clipped {
                    Some(c) => c.get(i)?.get::<u32>().ok()?,
                    None => 0,
                },
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let (labels, tags) = tags_from(s)?;
    Some(Perception {
        rate: s.get::<i32>("rate").ok()?.max(0) as u32,
        window: s.get("window-samples").ok()?,
        windows,
        reset: s.get("reset").unwrap_or(false),
        labels,
        tags,
    })
}

pub fn decision_structure(d: &Decision, name: &str) -> gst::Structure {
    let mut b = gst::Structure::builder(name)
        .field("rate", d.rate as i32)
        .field("speaking", d.speaking)
        .field("settled-until", d.settled_until);
    if let Some(p) = d.pause_since {
        b = b.field("pause-since", p);
    }
    if !d.events.is_empty() {
        b = b.field(
            "events",
            gst::Array::new(d.events.iter().map(|ev| {
                let (kind, start, end) = match *ev {
                    Event::SpeechStart { start } => ("speech-start", start, start),
                    Event::TurnEnd { start, end } => ("turn-end", start, end),
                };
                gst::Structure::builder("event")
                    .field("kind", kind)
                    .field("start", start)
                    .field("end", end)
                    .build()
                    .to_send_value()
            })),
        );
    }
    if !d.alerts.is_empty() {
        b = b.field(
            "alerts",
            gst::Array::new(d.alerts.iter().map(|a| {
                gst::Structure::builder("alert")
                    .field("kind", a.kind.as_str())
                    .field("rule", a.rule.as_str())
                    .field("label", a.label.as_str())
                    .field("text", a.text.as_str())
                    .field("confidence", a.confidence as f64)
                    .field("start", a.start)
                    .field("end", a.end)
                    .field("assistant", a.assistant.as_str())
                    .build()
                    .to_send_value()
            })),
        );
    }
    b.build()
}

fn alert_kind(name: &str) -> Option<AlertKind> {
    [
        AlertKind::SoundEvent,
        AlertKind::Sound,
        AlertKind::Keyword,
        AlertKind::Respond,
        AlertKind::DeadAir,
        AlertKind::Level,
    ]
    .into_iter()
    .find(|k| k.as_str() == name)
}

fn alert_from(s: &gst::StructureRef, rate: u32) -> Option<Alert> {
    let kind = alert_kind(s.get::<&str>("kind").ok()?)?;
    Some(Alert {
        rule: s.get::<String>("rule").ok()?,
        label: s.get::<String>("label").ok()?,
        text: s.get::<String>("text").ok()?,
        confidence: s.get::<f64>("confidence").ok()? as f32,
        start: s.get("start").ok()?,
        end: s.get("end").ok()?,
        rate,
        // Absent from meta written before the key existed: the kind's usual mode.
        assistant: s
            .get::<&str>("assistant")
            .ok()
            .and_then(AssistantMode::parse)
            .unwrap_or(match kind {
                AlertKind::SoundEvent => AssistantMode::SOUND_DEFAULT,
                AlertKind::Respond => AssistantMode::Respond,
                _ => AssistantMode::Silent,
            }),
        kind,
    })
}

fn event_from(s: &gst::StructureRef) -> Option<Event> {
    let start = s.get::<u64>("start").ok()?;
    match s.get::<&str>("kind").ok()? {
        "speech-start" => Some(Event::SpeechStart { start }),
        "turn-end" => Some(Event::TurnEnd {
            start,
            end: s.get::<u64>("end").ok()?,
        }),
        _ => None,
    }
}

pub fn decision_from(s: &gst::StructureRef) -> Option<Decision> {
    let events = match s.get::<gst::Array>("events") {
        Ok(a) => a
            .iter()
            .map(|v| event_from(v.get::<&gst::StructureRef>().ok()?))
            .collect::<Option<Vec<_>>>()?,
        Err(_) => Vec::new(),
    };
    let rate = s.get::<i32>("rate").ok()?.max(0) as u32;
    let alerts = match s.get::<gst::Array>("alerts") {
        Ok(a) => a
            .iter()
            .map(|v| alert_from(v.get::<&gst::StructureRef>().ok()?, rate))
            .collect::<Option<Vec<_>>>()?,
        Err(_) => Vec::new(),
    };
    Some(Decision {
        rate,
        alerts,
        speaking: s.get("speaking").ok()?,
        pause_since: s.get("pause-since").ok(),
        events,
        settled_until: s.get("settled-until").ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metas_round_trip_through_a_buffer() {
        gst::init().unwrap();
        register();
        let mut buf = gst::Buffer::with_size(16).unwrap();
        let p = Perception {
            rate: 16000,
            window: 512,
            windows: vec![
                WindowProb {
                    start: 0,
                    prob: 0.25,
                    ..Default::default()
                },
                WindowProb {
                    start: 512,
                    prob: 0.75,
                    clipped: 3,
                    ..Default::default()
                },
            ],
            reset: true,
            labels: vec!["alarm".into(), "siren".into()],
            tags: vec![
                TagFrame {
                    start: 0,
                    end: 15360,
                    scores: vec![0.9, 0.1],
                },
                TagFrame {
                    start: 3200,
                    end: 18560,
                    scores: vec![0.8, 0.2],
                },
            ],
        };
        let d = Decision {
            rate: 16000,
            speaking: true,
            pause_since: Some(1200),
            events: vec![
                Event::TurnEnd {
                    start: 100,
                    end: 900,
                },
                Event::SpeechStart { start: 480 },
                Event::TurnEnd {
                    start: 480,
                    end: 1200,
                },
            ],
            settled_until: 480,
            alerts: vec![Alert {
                kind: AlertKind::SoundEvent,
                rule: "alarm".into(),
                label: "alarm".into(),
                confidence: 0.75,
                start: 100,
                end: 3300,
                rate: 16000,
                text: "alarm detected".into(),
                // Not the sound-event default, so that the round trip shows it travels.
                assistant: AssistantMode::Silent,
            }],
        };
        let c = Chunk {
            start: 6400,
            data: vec![],
            valid: 6400,
            overlap: 0,
            discont: false,
            padded: true,
            index: 1,
        };
        {
            let b = buf.get_mut().unwrap();
            add_structure(b, CHUNK_META, chunk_structure(&c, 16000)).unwrap();
            add_structure(b, PERCEPTION_META, perception_structure(&p)).unwrap();
            add_structure(b, DECISION_META, decision_structure(&d, DECISION_META)).unwrap();
        }
        // A copy (as made by make_writable) keeps the metas.
        let copy = buf.copy();
        let ci = chunk_info(&copy).unwrap();
        assert_eq!(
            (ci.start, ci.valid, ci.padded, ci.index),
            (6400, 6400, true, 1)
        );
        let p2 = perception_from(&get_structure(&copy, PERCEPTION_META).unwrap()).unwrap();
        assert_eq!(p2, p);
        let d2 = decision_from(&get_structure(&copy, DECISION_META).unwrap()).unwrap();
        assert_eq!(d2, d);
    }
}

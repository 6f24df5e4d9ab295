//! A picture of what the loop heard: one self-contained HTML page (no network, no files
//! beside it) with the waveform, the speech segments, the speakers, the cues, the sound events
//! and the alerts on one timeline that zooms and pans; and the same as an Audacity label
//! track.
//!
//! [`Report`] collects from the bus messages of `lalm-interact` (and the `level` element's
//! for the waveform); [`Report::html`] and [`Report::audacity_labels`] write it out.

use std::fmt::Write;

/// One span on a track, in seconds of stream time.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// The speaker (cues), the rule (alerts) or the class (sounds).
    pub tag: String,
}

#[derive(Debug, Default, Clone)]
pub struct Report {
    pub title: String,
    /// Peak level per step of `level_step` seconds from 0, in dBFS.
    pub levels: Vec<f32>,
    pub level_step: f64,
    pub speech: Vec<Span>,
    pub cues: Vec<Span>,
    pub sounds: Vec<Span>,
    pub alerts: Vec<Span>,
    /// Where an open utterance began (between speech-start and turn-end).
    open: Option<f64>,
}

fn secs(s: &gst::StructureRef, key: &str) -> f64 {
    s.get::<u64>(key).map_or(0.0, |ns| ns as f64 / 1e9)
}

impl Report {
    pub fn new(title: &str) -> Self {
        Self {
            title: title.to_string(),
            level_step: 0.05,
            ..Default::default()
        }
    }

    /// Takes what matters from one element message.
    pub fn add(&mut self, s: &gst::StructureRef) {
        let text = |k: &str| s.get::<String>(k).unwrap_or_default();
        match s.name().as_str() {
            "level" => {
                let at = s
                    .get::<u64>("stream-time")
                    .or_else(|_| s.get::<u64>("timestamp"))
                    .map_or(0.0, |ns| ns as f64 / 1e9);
                let peak = s
                    .get::<glib::ValueArray>("peak")
                    .ok()
                    .and_then(|a| {
                        a.iter()
                            .filter_map(|v| v.get::<f64>().ok())
                            .reduce(f64::max)
                    })
                    .unwrap_or(-100.0);
                let i = (at / self.level_step).round() as usize;
                if self.levels.len() <= i {
                    self.levels.resize(i + 1, -100.0);
                }
                self.levels[i] = self.levels[i].max(peak.max(-100.0) as f32);
            }
            "lalm-decision" => match text("kind").as_str() {
                "speech-start" => self.open = Some(secs(s, "start")),
                "turn-end" => {
                    self.open = None;
                    self.speech.push(Span {
                        start: secs(s, "start"),
                        end: secs(s, "end"),
                        text: String::new(),
                        tag: String::new(),
                    });
                }
                _ => {}
            },
            "lalm-transcript" if s.get::<bool>("final").unwrap_or(false) => self.cues.push(Span {
                start: secs(s, "start"),
                end: secs(s, "end"),
                text: text("text"),
                tag: text("speaker"),
            }),
            "lalm-sound" => self.sounds.push(Span {
                start: secs(s, "start"),
                end: secs(s, "end"),
                text: text("label"),
                tag: text("class"),
            }),
            "lalm-alert" => {
                let span = Span {
                    start: secs(s, "start"),
                    end: secs(s, "end"),
                    text: text("text"),
                    tag: text("rule"),
                };
                // A sound rule's alert is a sound event too.
                if text("kind") == "sound-event" {
                    self.sounds.push(Span {
                        text: text("label"),
                        ..span.clone()
                    });
                }
                self.alerts.push(span);
            }
            _ => {}
        }
    }

    /// Closes an utterance still open at the end (`end` s).
    pub fn finish(&mut self, end: f64) {
        if let Some(start) = self.open.take() {
            self.speech.push(Span {
                start,
                end,
                text: String::new(),
                tag: String::new(),
            });
        }
    }

    /// The length of the timeline: the latest time anything reaches.
    pub fn duration(&self) -> f64 {
        let spans = [&self.speech, &self.cues, &self.sounds, &self.alerts];
        let last = spans
            .iter()
            .flat_map(|v| v.iter().map(|s| s.end))
            .fold(0.0, f64::max);
        last.max(self.levels.len() as f64 * self.level_step)
    }

    /// An Audacity label track: `start<TAB>end<TAB>label` per line, in seconds; cues as
    /// `S1: text`, sounds as `[class] label`, alerts as `ALERT rule: text`.
    pub fn audacity_labels(&self) -> String {
        let mut rows: Vec<(f64, f64, String)> = Vec::new();
        for c in &self.cues {
            let who = if c.tag.is_empty() {
                String::new()
            } else {
                format!("{}: ", c.tag)
            };
            rows.push((c.start, c.end, format!("{who}{}", c.text)));
        }
        for s in &self.sounds {
            rows.push((s.start, s.end, format!("[{}] {}", s.tag, s.text)));
        }
        for a in &self.alerts {
            rows.push((a.start, a.end, format!("ALERT {}: {}", a.tag, a.text)));
        }
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut out = String::new();
        for (a, b, label) in rows {
            // A label is one line: tabs and line breaks would split it.
            let label: String = label
                .chars()
                .map(|c| {
                    if c == '\t' || c == '\n' || c == '\r' {
                        ' '
                    } else {
                        c
                    }
                })
                .collect();
            let _ = writeln!(out, "{a:.6}\t{b:.6}\t{label}");
        }
        out
    }

    /// The page: the data as JSON in a script element (every `<` escaped, so no text can
    /// close it), drawn by the script below it.
    pub fn html(&self) -> String {
        let spans = |v: &[Span]| {
            serde_json::Value::Array(
                v.iter()
                    .map(|s| {
                        serde_json::json!({
                            "start": s.start, "end": s.end, "text": s.text, "tag": s.tag,
                        })
                    })
                    .collect(),
            )
        };
        let data = serde_json::json!({
            "title": self.title,
            "levels": self.levels,
            "level_step": self.level_step,
            "duration": self.duration(),
            "speech": spans(&self.speech),
            "cues": spans(&self.cues),
            "sounds": spans(&self.sounds),
            "alerts": spans(&self.alerts),
        });
        let json = data.to_string().replace('<', "\\u003c");
        let title = self
            .title
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>gst-lalm: {title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
             <h1>gst-lalm: {title}</h1>\n<div id=\"bar\"><button id=\"zin\">+</button>\
             <button id=\"zout\">&minus;</button><button id=\"all\">all</button>\
             <span id=\"where\"></span></div>\n<div id=\"view\"><div id=\"tracks\"></div></div>\n\
             <div id=\"legend\"></div>\n\
             <script id=\"data\" type=\"application/json\">{json}</script>\n\
             <script>\n{SCRIPT}</script>\n</body>\n</html>\n"
        )
    }
}

use gst::glib;

const STYLE: &str = r##"body { font: 13px sans-serif; margin: 12px; color: #222; }
h1 { font-size: 16px; margin: 0 0 8px; }
#bar button { width: 2.2em; margin-right: 4px; }
#where { margin-left: 8px; color: #555; }
#view { overflow-x: auto; border: 1px solid #bbb; margin-top: 6px; }
#tracks { position: relative; }
.track { position: relative; height: 34px; border-bottom: 1px solid #eee; }
.track.wave { height: 70px; }
.track .name { position: sticky; left: 0; z-index: 2; background: #fffd; padding: 1px 4px;
  font-size: 11px; color: #555; display: inline-block; }
.item { position: absolute; top: 14px; height: 18px; overflow: hidden; white-space: nowrap;
  font-size: 11px; line-height: 18px; padding: 0 2px; box-sizing: border-box;
  border-radius: 3px; }
.speech { background: #9bd3a6; }
.cue { background: #cfe0ff; border: 1px solid #7aa0e0; }
.sound { background: #ffe2a8; border: 1px solid #d9a441; }
.alert { background: #ffb3b3; border: 1px solid #d04545; }
.speaker { color: #fff; }
canvas { position: absolute; left: 0; top: 0; }
#legend { margin-top: 6px; color: #555; font-size: 11px; }
"##;

const SCRIPT: &str = r##""use strict";
(function () {
  const d = JSON.parse(document.getElementById("data").textContent);
  const view = document.getElementById("view");
  const tracks = document.getElementById("tracks");
  const colors = ["#3b7dd8", "#d8553b", "#3bb06a", "#9a4fd0", "#d0a23b", "#3bb0b0", "#d03b8c", "#777"];
  const speakers = [];
  for (const c of d.cues) { if (c.tag && !speakers.includes(c.tag)) speakers.push(c.tag); }
  const color = (s) => colors[speakers.indexOf(s) % colors.length];
  let pps = Math.max(20, Math.min(200, (view.clientWidth - 20) / Math.max(1, d.duration)));
  function track(name, cls) {
    const t = document.createElement("div");
    t.className = "track " + (cls || "");
    const n = document.createElement("span");
    n.className = "name";
    n.textContent = name;
    t.appendChild(n);
    tracks.appendChild(t);
    return t;
  }
  function span(t, s, cls, text, title, bg) {
    const e = document.createElement("div");
    e.className = "item " + cls;
    e.style.left = (s.start * pps) + "px";
    e.style.width = Math.max(2, (s.end - s.start) * pps) + "px";
    e.textContent = text;
    e.title = title;
    if (bg) e.style.background = bg;
    t.appendChild(e);
  }
  const fmt = (x) => x.toFixed(2) + " s";
  function draw() {
    tracks.innerHTML = "";
    const width = Math.ceil(d.duration * pps) + 40;
    tracks.style.width = width + "px";
    const w = track("waveform", "wave");
    const cv = document.createElement("canvas");
    cv.width = width; cv.height = 70;
    w.appendChild(cv);
    const g = cv.getContext("2d");
    g.fillStyle = "#6a8fb5";
    d.levels.forEach((db, i) => {
      const a = Math.max(0, (db + 60) / 60) * 32;
      g.fillRect(i * d.level_step * pps, 35 - a, Math.max(1, d.level_step * pps), 2 * a);
    });
    const sp = track("speech");
    for (const s of d.speech) span(sp, s, "speech", "", "speech " + fmt(s.start) + " to " + fmt(s.end));
    if (speakers.length) {
      const st = track("speaker");
      for (const c of d.cues) if (c.tag) span(st, c, "speaker", c.tag, c.tag, color(c.tag));
    }
    const ct = track("cues");
    for (const c of d.cues) span(ct, c, "cue", c.text, fmt(c.start) + " " + (c.tag ? c.tag + ": " : "") + c.text);
    const so = track("sound events");
    for (const s of d.sounds) span(so, s, "sound", "[" + s.tag + "]", fmt(s.start) + " " + s.tag + " (" + s.text + ")");
    const al = track("alerts");
    for (const a of d.alerts) span(al, a, "alert", a.tag, fmt(a.start) + " " + a.tag + ": " + a.text);
    document.getElementById("where").textContent =
      d.duration.toFixed(1) + " s, " + d.cues.length + " cues, " + d.sounds.length +
      " sound events, " + d.alerts.length + " alerts, " + speakers.length + " speakers; " +
      pps.toFixed(0) + " px per second";
  }
  function zoom(f, at) {
    const x = (at === undefined ? view.clientWidth / 2 : at);
    const t = (view.scrollLeft + x) / pps;
    pps = Math.max(2, Math.min(2000, pps * f));
    draw();
    view.scrollLeft = t * pps - x;
  }
  document.getElementById("zin").onclick = () => zoom(2);
  document.getElementById("zout").onclick = () => zoom(0.5);
  document.getElementById("all").onclick = () => {
    pps = Math.max(2, (view.clientWidth - 20) / Math.max(1, d.duration));
    draw();
  };
  view.addEventListener("wheel", (e) => {
    if (!e.ctrlKey && !e.metaKey) return;
    e.preventDefault();
    zoom(e.deltaY < 0 ? 1.25 : 0.8, e.clientX - view.getBoundingClientRect().left);
  }, { passive: false });
  document.getElementById("legend").textContent =
    "Ctrl + wheel or the buttons zoom, the scroll bar pans; hover an item for its times and text.";
  draw();
  document.body.dataset.ready = "1";
})();
"##;

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(name: &str, fields: &[(&str, glib::SendValue)]) -> gst::Structure {
        let mut b = gst::Structure::builder(name);
        for (k, v) in fields {
            b = b.field(*k, v.clone());
        }
        b.build()
    }

    fn ns(s: f64) -> glib::SendValue {
        use gst::prelude::ToSendValue;
        ((s * 1e9) as u64).to_send_value()
    }

    fn text(s: &str) -> glib::SendValue {
        use gst::prelude::ToSendValue;
        s.to_send_value()
    }

    #[test]
    fn messages_become_tracks_and_labels() {
        use gst::prelude::ToSendValue;
        gst::init().expect("gst");
        let mut r = Report::new("t <x>");
        r.add(&msg(
            "lalm-decision",
            &[
                ("kind", text("speech-start")),
                ("start", ns(1.0)),
                ("end", ns(1.0)),
            ],
        ));
        r.add(&msg(
            "lalm-decision",
            &[
                ("kind", text("turn-end")),
                ("start", ns(1.0)),
                ("end", ns(2.5)),
            ],
        ));
        r.add(&msg(
            "lalm-transcript",
            &[
                ("text", text("Hello\tthere </script>")),
                ("start", ns(1.0)),
                ("end", ns(2.5)),
                ("final", true.to_send_value()),
                ("speaker", text("S1")),
            ],
        ));
        r.add(&msg(
            "lalm-transcript",
            &[("text", text("Hel")), ("final", false.to_send_value())],
        ));
        r.add(&msg(
            "lalm-alert",
            &[
                ("kind", text("sound-event")),
                ("rule", text("siren")),
                ("label", text("Siren")),
                ("text", text("Siren detected")),
                ("start", ns(3.0)),
                ("end", ns(4.0)),
            ],
        ));
        r.add(&msg(
            "lalm-decision",
            &[("kind", text("speech-start")), ("start", ns(5.0))],
        ));
        r.finish(6.0);
        assert_eq!(r.speech.len(), 2);
        assert_eq!(r.cues.len(), 1, "partials are left out");
        assert_eq!((r.sounds.len(), r.alerts.len()), (1, 1));
        assert!((r.duration() - 6.0).abs() < 1e-9);
        let labels = r.audacity_labels();
        assert_eq!(
            labels,
            "1.000000\t2.500000\tS1: Hello there </script>\n\
             3.000000\t4.000000\t[siren] Siren\n\
             3.000000\t4.000000\tALERT siren: Siren detected\n"
        );
        let html = r.html();
        assert!(html.contains("gst-lalm: t &lt;x&gt;"));
        assert_eq!(
            html.matches("</script>").count(),
            2,
            "the text cannot close the data"
        );
    }
}

//! Subtitle files: SRT and WebVTT cues from timed text.

use std::fmt::Write;

/// One cue: text shown from `start` to `end` (nanoseconds of stream time).
#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    pub start: u64,
    pub end: u64,
    pub text: String,
}

fn clock(ns: u64, sep: char) -> String {
    let ms = ns / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Cue bodies may not contain blank lines (they end a cue in both formats).
fn body(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `index`th SRT cue (1-based), ending with a blank line.
pub fn srt_cue(index: usize, cue: &Cue) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{index}\n{} --> {}\n{}\n\n",
        clock(cue.start, ','),
        clock(cue.end.max(cue.start), ','),
        body(&cue.text)
    );
    s
}

pub const VTT_HEADER: &str = "WEBVTT\n\n";

/// One WebVTT cue, ending with a blank line; "-->" in the text is escaped.
pub fn vtt_cue(cue: &Cue) -> String {
    format!(
        "{} --> {}\n{}\n\n",
        clock(cue.start, '.'),
        clock(cue.end.max(cue.start), '.'),
        body(&cue.text).replace("-->", "--&gt;")
    )
}

/// A subtitle file being written: SRT, or WebVTT when its name ends in `.vtt`.
pub struct SubtitleWriter<W: std::io::Write> {
    out: W,
    vtt: bool,
    written: usize,
}

impl SubtitleWriter<std::fs::File> {
    /// Creates the file (and writes the WebVTT header for a `.vtt` name).
    pub fn create(path: &str) -> std::io::Result<Self> {
        let vtt = path.to_ascii_lowercase().ends_with(".vtt");
        Self::new(std::fs::File::create(path)?, vtt)
    }
}

impl<W: std::io::Write> SubtitleWriter<W> {
    pub fn new(mut out: W, vtt: bool) -> std::io::Result<Self> {
        if vtt {
            out.write_all(VTT_HEADER.as_bytes())?;
        }
        Ok(Self {
            out,
            vtt,
            written: 0,
        })
    }

    /// Appends a cue and flushes, so a reader of a live file sees it at once.
    pub fn write(&mut self, cue: &Cue) -> std::io::Result<()> {
        let text = if self.vtt {
            vtt_cue(cue)
        } else {
            srt_cue(self.written + 1, cue)
        };
        self.out.write_all(text.as_bytes())?;
        self.out.flush()?;
        self.written += 1;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srt_and_vtt_formats() {
        let c = Cue {
            start: 3_723_456_000_000,
            end: 3_725_000_000_000,
            text: "Hello there.\n\nSecond line".into(),
        };
        assert_eq!(
            srt_cue(7, &c),
            "7\n01:02:03,456 --> 01:02:05,000\nHello there.\nSecond line\n\n"
        );
        assert_eq!(
            vtt_cue(&c),
            "01:02:03.456 --> 01:02:05.000\nHello there.\nSecond line\n\n"
        );
        let arrow = Cue {
            start: 0,
            end: 1,
            text: "a --> b".into(),
        };
        assert!(vtt_cue(&arrow).contains("a --&gt; b"));
    }

    #[test]
    fn writer_numbers_srt_cues_and_heads_vtt() {
        let c = Cue {
            start: 0,
            end: 1_000_000_000,
            text: "hi".into(),
        };
        let mut w = SubtitleWriter::new(Vec::new(), false).unwrap();
        w.write(&c).unwrap();
        w.write(&c).unwrap();
        let srt = String::from_utf8(w.into_inner()).unwrap();
        assert!(srt.starts_with("1\n") && srt.contains("\n2\n"), "{srt}");
        let mut w = SubtitleWriter::new(Vec::new(), true).unwrap();
        w.write(&c).unwrap();
        let vtt = String::from_utf8(w.into_inner()).unwrap();
        assert!(vtt.starts_with(VTT_HEADER), "{vtt}");
    }
}

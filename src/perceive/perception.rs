//! What was perceived, as it travels between the elements with each chunk: VAD windows,
//! tagger frames, the audio kept for responders and the words heard. The plugin carries
//! these as GStreamer custom metas; here they are plain data.

use crate::perceive::vad::WindowProb;

/// Sound-event scores of one tagger window `[start, end)` (stream samples), one score per
/// label of the tagger, in the tagger's label order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TagFrame {
    pub start: u64,
    pub end: u64,
    pub scores: Vec<f32>,
}

/// Per-chunk perception: the VAD windows that completed in this chunk, and the sound-event
/// tagger's windows when a tagger runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Perception {
    pub rate: u32,
    pub window: u32,
    /// Windows in stream order; their starts are stream sample positions.
    pub windows: Vec<WindowProb>,
    /// The recurrent state was cleared before this chunk (start, flush, discontinuity).
    pub reset: bool,
    /// The tagger's labels (empty when no tagger runs).
    pub labels: Vec<String>,
    /// Tagger windows completed in this chunk, in stream order.
    pub tags: Vec<TagFrame>,
}

impl TagFrame {
    /// The score of label index `i`, 0 when the frame has none.
    pub fn score(&self, i: usize) -> f32 {
        self.scores.get(i).copied().unwrap_or(0.0)
    }
}

impl Perception {
    pub fn max_prob(&self) -> f32 {
        self.windows.iter().map(|w| w.prob).fold(0.0, f32::max)
    }
}

/// A word heard (of an ASR hypothesis or transcript), with times in stream samples when
/// known.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub text: String,
    pub start: u64,
    pub end: u64,
}

/// Audio kept for responders: a window of recent samples addressed by stream position.
#[derive(Debug, Clone, Default)]
pub struct AudioHistory {
    start: u64,
    samples: Vec<f32>,
}

impl AudioHistory {
    pub fn clear(&mut self) {
        self.samples.clear();
    }

    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.samples.len() as u64)
    }

    /// Appends samples starting at `pos`; a run that does not continue the history replaces it.
    pub fn push(&mut self, pos: u64, samples: &[f32]) {
        if self.samples.is_empty() || pos != self.end() {
            if pos < self.end() && pos >= self.start && !self.samples.is_empty() {
                // Overlapping chunk: keep only what is new.
                let skip = (self.end() - pos) as usize;
                if skip < samples.len() {
                    self.samples.extend_from_slice(&samples[skip..]);
                }
                return;
            }
            self.samples.clear();
            self.start = pos;
        }
        self.samples.extend_from_slice(samples);
    }

    /// Drops everything before `pos`.
    pub fn trim_before(&mut self, pos: u64) {
        if pos <= self.start {
            return;
        }
        let n = ((pos - self.start) as usize).min(self.samples.len());
        self.samples.drain(..n);
        self.start += n as u64;
    }

    /// The samples of `[from, to)` that are still held.
    pub fn range(&self, from: u64, to: u64) -> &[f32] {
        let a = from.clamp(self.start, self.end());
        let b = to.clamp(a, self.end());
        &self.samples[(a - self.start) as usize..(b - self.start) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_positions() {
        let mut h = AudioHistory::default();
        h.push(100, &[1.0, 2.0, 3.0]);
        h.push(103, &[4.0, 5.0]);
        assert_eq!(h.range(101, 104), &[2.0, 3.0, 4.0]);
        h.push(104, &[5.0, 6.0]);
        assert_eq!(h.end(), 106);
        h.trim_before(102);
        assert_eq!(h.range(0, 1000), &[3.0, 4.0, 5.0, 6.0]);
        h.push(500, &[9.0]);
        assert_eq!(h.range(0, 1000), &[9.0]);
    }

    #[test]
    fn max_prob() {
        let p = Perception {
            windows: vec![
                WindowProb {
                    start: 0,
                    prob: 0.2,
                    ..Default::default()
                },
                WindowProb {
                    start: 512,
                    prob: 0.7,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(p.max_prob(), 0.7);
    }
}

//! The learned decision head (family `decision-head`): instead of one hand-set threshold per
//! sound class, a small model gives, for each half-second chunk, the probability that the
//! loop should respond, from what the tagger heard in the chunk, the chunk before, and the
//! half minute before that (the same sound earlier). It is trained on `lalm-streamaudio`'s
//! streams by `models/decision-head/train.py`, which fixes the features computed here.
//!
//! Features per chunk ([`ChunkFeatures`]): each built-in class's best label score and the
//! tagger's `Speech` score, in the tagger window that ends with the chunk. The head's input
//! ([`HeadStream`]): that row, the previous chunk's row, and each class's highest score over
//! the chunks from 30 s to 2.5 s before.

use std::collections::VecDeque;
use std::sync::Arc;

use ort::value::TensorRef;

use crate::decide::alerts::classes::{CLASSES, SoundClass};
use crate::decide::alerts::types::SoundRole;
use crate::models::contract::{ModelFamily, Signature, TensorSig};
use crate::models::package::ModelPackage;
use crate::models::runtime::{Runtime, SessionOptions, SharedSession};
use crate::perceive::perception::TagFrame;
use crate::{Error, Result};

/// The family name in a decision head's `model.toml`.
pub const FAMILY: &str = crate::models::family::DECISION_HEAD;
/// The chunk the head decides on, in milliseconds (train.py's `CHUNK_S`).
pub const CHUNK_MS: u32 = 500;
/// The "earlier" span: this many chunks back (30 s) ...
const EARLIER_CHUNKS: usize = 60;
/// ... not counting the last ones (2.5 s), which are the sound under way.
const RECENT_CHUNKS: usize = 5;
/// A response about a class is not made again for this long (train.py's decisions).
pub const RESPOND_SPACING_MS: u32 = 10_000;

/// Columns of one chunk's row: every built-in class, then Speech.
pub fn row_len() -> usize {
    CLASSES.len() + 1
}

/// Inputs of the head per chunk: the row, the previous row, the classes' earlier maxima.
pub fn input_len() -> usize {
    2 * row_len() + CLASSES.len()
}

/// Where each built-in class's labels and `Speech` sit among a tagger's labels, matched whole
/// and ignoring ASCII case, as the head was trained.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkFeatures {
    classes: Vec<Vec<usize>>,
    speech: Option<usize>,
}

impl ChunkFeatures {
    pub fn bind(labels: &[String]) -> Self {
        let index = |name: &str| labels.iter().position(|l| l.eq_ignore_ascii_case(name));
        Self {
            classes: CLASSES
                .iter()
                .map(|c| c.labels.iter().filter_map(|l| index(l)).collect())
                .collect(),
            speech: index("Speech"),
        }
    }

    /// Whether the tagger has `Speech` and at least one label of a respond class: without
    /// them every row the head sees is zero there.
    pub fn usable(&self) -> bool {
        self.speech.is_some()
            && CLASSES
                .iter()
                .zip(&self.classes)
                .any(|(c, idx)| c.role == SoundRole::Respond && !idx.is_empty())
    }

    /// The respond class scoring highest in a window, its best label's index and score.
    pub fn top_respond(&self, scores: &[f32]) -> Option<(usize, usize, f32)> {
        let at = |i: usize| scores.get(i).copied().unwrap_or(0.0);
        CLASSES
            .iter()
            .zip(&self.classes)
            .enumerate()
            .filter(|(_, (c, _))| c.role == SoundRole::Respond)
            .filter_map(|(k, (_, idx))| {
                idx.iter()
                    .map(|&i| (i, at(i)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(i, v)| (k, i, v))
            })
            .max_by(|a, b| a.2.total_cmp(&b.2))
    }

    /// One chunk's row from the scores of the tagger window that ends with it.
    pub fn row(&self, scores: &[f32]) -> Vec<f32> {
        let at = |i: usize| scores.get(i).copied().unwrap_or(0.0);
        let mut row: Vec<f32> = self
            .classes
            .iter()
            .map(|idx| idx.iter().map(|&i| at(i)).fold(0.0, f32::max))
            .collect();
        row.push(self.speech.map_or(0.0, at));
        row
    }
}

/// A loaded decision head.
pub struct DecisionHead {
    session: Arc<SharedSession>,
    threshold: f32,
    input: String,
    output: String,
    name: String,
}

impl ModelFamily for DecisionHead {
    const NAME: &'static str = FAMILY;
}

impl std::fmt::Debug for DecisionHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionHead")
            .field("name", &self.name)
            .field("threshold", &self.threshold)
            .finish()
    }
}

impl DecisionHead {
    pub fn load(pkg: &ModelPackage, rt: &Runtime, opts: &SessionOptions) -> Result<Self> {
        Self::open(pkg)?;
        let threshold = match pkg.manifest.params.get("threshold") {
            None => 0.5,
            Some(v) => match v.as_float() {
                Some(t) if (0.0..=1.0).contains(&t) => t as f32,
                _ => {
                    return Err(Error::Manifest {
                        path: pkg.manifest_path.clone(),
                        reason: "params.threshold must be a number between 0 and 1".into(),
                    });
                }
            },
        };
        let model_path = pkg.file("model")?;
        let input = pkg.io_name("input", "features").to_string();
        let output = pkg.io_name("output", "respond").to_string();
        let n = input_len() as i64;
        let sig = Signature::new()
            .input(TensorSig::f32(&input).rank(2).dim_of(
                -1,
                n,
                "features per chunk",
                format!(
                    "the head takes {} class scores and Speech for the chunk and the one \
                     before, and {} earlier class maxima",
                    CLASSES.len(),
                    CLASSES.len()
                ),
            ))
            .output(TensorSig::f32(&output));
        let (session, _) = Self::session(rt, pkg, "model", opts, &sig)?;
        let head = Self {
            session,
            threshold,
            input,
            output,
            name: pkg.display_name(),
        };
        // A quiet chunk proves the contract (names, shapes, a probability out) at load.
        let p = head.respond(&[vec![0.0; input_len()]]).map_err(|e| {
            Self::contract_error(
                &model_path,
                format!("{} does not run as a decision head: {e}", head.name),
            )
        })?;
        if !p.first().is_some_and(|p| (0.0..=1.0).contains(p)) {
            return Err(Self::contract_error(
                &model_path,
                format!("it gave {p:?} for a quiet chunk; a probability was expected"),
            ));
        }
        Ok(head)
    }

    /// The probability from which a chunk gets a response (the manifest's `params.threshold`,
    /// chosen on the calibration split).
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The probability of responding for each chunk's inputs ([`input_len`] values each).
    pub fn respond(&self, chunks: &[Vec<f32>]) -> Result<Vec<f32>> {
        let n = input_len();
        if chunks.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(bad) = chunks.iter().find(|c| c.len() != n) {
            return Err(Error::InvalidArgument(format!(
                "decision head inputs of {} values; {n} expected",
                bad.len()
            )));
        }
        let flat: Vec<f32> = chunks.iter().flatten().copied().collect();
        let tensor = TensorRef::from_array_view(([chunks.len(), n], &flat[..]))
            .map_err(|e| Error::Inference(e.to_string()))?;
        let mut session = self.session.lock();
        let outputs = session
            .run(ort::inputs![self.input.as_str() => tensor])
            .map_err(|e| Error::Inference(e.to_string()))?;
        let out = outputs
            .get(self.output.as_str())
            .ok_or_else(|| Error::Inference(format!("no output named {}", self.output)))?;
        let (_, p) = out
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::Inference(e.to_string()))?;
        if p.len() != chunks.len() {
            return Err(Error::Inference(format!(
                "the decision head gave {} values for {} chunks",
                p.len(),
                chunks.len()
            )));
        }
        Ok(p.to_vec())
    }
}

/// What the head decided for one chunk that called for a response.
#[derive(Debug, Clone)]
pub struct HeadResponse {
    /// Where the sound began (dated as a rule dates it) to the end of the chunk decided on,
    /// stream sample positions.
    pub start: u64,
    pub end: u64,
    pub probability: f32,
    /// The respond class that scored highest in the chunk (what the response is about).
    pub class: &'static SoundClass,
    /// Its best tagger label there, and that label's score.
    pub label: String,
    pub score: f32,
}

/// One stream's chunks for the head: rows built from the tagger windows as they come, the
/// inputs of each completed chunk, and the spacing between responses.
#[derive(Debug, Clone)]
pub struct HeadStream {
    chunk: u64,
    spacing: u64,
    features: ChunkFeatures,
    bound: Vec<String>,
    /// End of the next chunk to complete.
    next_end: Option<u64>,
    /// The row of the newest tagger window and its top respond class (see
    /// [`ChunkFeatures::top_respond`]).
    latest: Option<(Vec<f32>, Option<Top>)>,
    /// Rows of the completed chunks, newest last (the earlier span and the previous chunk).
    rows: VecDeque<Vec<f32>>,
    /// Per class, where its current run of chunks at half its threshold or more began.
    onsets: Vec<Option<u64>>,
    /// Per class, the end of the chunk of its last response.
    responded: Vec<Option<u64>>,
}

impl HeadStream {
    pub fn new(rate: u32) -> Self {
        let ms = |v: u32| crate::base::time::ms_to_samples(v, rate.max(1));
        Self {
            chunk: ms(CHUNK_MS).max(1),
            spacing: ms(RESPOND_SPACING_MS),
            features: ChunkFeatures::default(),
            bound: Vec::new(),
            next_end: None,
            latest: None,
            rows: VecDeque::new(),
            onsets: vec![None; CLASSES.len()],
            responded: vec![None; CLASSES.len()],
        }
    }

    /// Forgets the stream (flush, discontinuity): what came before does not carry over.
    pub fn reset(&mut self) {
        self.next_end = None;
        self.latest = None;
        self.rows.clear();
        self.onsets.fill(None);
        self.responded.fill(None);
    }

    /// Whether the tagger's labels give the head anything to go on (see
    /// [`ChunkFeatures::usable`]); `None` before the first labels.
    pub fn usable(&self) -> Option<bool> {
        (!self.bound.is_empty()).then(|| self.features.usable())
    }

    /// The inputs of every chunk the tagger windows in `tags` complete, with each chunk's
    /// `[start, end)` and row. A chunk is complete once a window ends at or past its end;
    /// it takes the newest window that ends within it (the windows of an idle tagger are
    /// sparser than the chunks: a chunk without one of its own keeps the last one's row).
    pub fn push(&mut self, labels: &[String], tags: &[TagFrame]) -> Vec<PendingChunk> {
        if !labels.is_empty() && labels != self.bound {
            self.bound = labels.to_vec();
            self.features = ChunkFeatures::bind(labels);
        }
        let mut out = Vec::new();
        for f in tags {
            let row = self.features.row(&f.scores);
            let top = self
                .features
                .top_respond(&f.scores)
                .map(|(class, label, score)| Top {
                    class,
                    label: self.bound.get(label).cloned().unwrap_or_default(),
                    score,
                });
            let first_end = *self
                .next_end
                .get_or_insert_with(|| f.end.div_ceil(self.chunk).max(1) * self.chunk);
            let mut end = first_end;
            while end <= f.end {
                let (row, top) = if f.end == end {
                    (row.clone(), top.clone())
                } else {
                    self.latest
                        .clone()
                        .unwrap_or_else(|| (vec![0.0; row_len()], None))
                };
                out.push(self.complete(end, row, top));
                end += self.chunk;
            }
            self.next_end = Some(end);
            self.latest = Some((row, top));
        }
        out
    }

    fn complete(&mut self, end: u64, row: Vec<f32>, top: Option<Top>) -> PendingChunk {
        let classes = CLASSES.len();
        let prev = self
            .rows
            .back()
            .cloned()
            .unwrap_or_else(|| vec![0.0; row_len()]);
        let mut earlier = vec![0.0f32; classes];
        let n = self.rows.len();
        // Chunk t's earlier span is chunks t-60 to t-6 (train.py's [t-60, t-5)); rows holds
        // t-1, t-2, ... from the back, at most 60 of them.
        for r in self
            .rows
            .iter()
            .take(n.saturating_sub(RECENT_CHUNKS))
            .skip(n.saturating_sub(EARLIER_CHUNKS))
        {
            for (e, v) in earlier.iter_mut().zip(r) {
                *e = e.max(*v);
            }
        }
        // As a rule dates its episodes: the sound began about one hop before the end of the
        // first window of the run scoring half the class's threshold.
        for ((onset, c), v) in self.onsets.iter_mut().zip(CLASSES).zip(&row) {
            if *v >= c.threshold / 2.0 {
                onset.get_or_insert(end.saturating_sub(self.chunk));
            } else {
                *onset = None;
            }
        }
        let onset = top
            .as_ref()
            .and_then(|t| self.onsets.get(t.class).copied().flatten());
        let sounding = self.onsets.iter().map(Option::is_some).collect();
        let mut inputs = row.clone();
        inputs.extend_from_slice(&prev);
        inputs.extend_from_slice(&earlier);
        self.rows.push_back(row.clone());
        while self.rows.len() > EARLIER_CHUNKS {
            self.rows.pop_front();
        }
        PendingChunk {
            start: end.saturating_sub(self.chunk),
            end,
            row,
            inputs,
            top,
            onset,
            sounding,
        }
    }

    /// The head's probability for a chunk from [`HeadStream::push`]: a response if it reaches
    /// `threshold` and the respond class scoring highest in the chunk comes near its threshold
    /// (the response must be about something) and got no response in the last
    /// [`RESPOND_SPACING_MS`] (what was already reported, as a rule's cooldown), and no class
    /// responded to in that time still sounds (one sound, one response).
    pub fn decide(
        &mut self,
        chunk: &PendingChunk,
        probability: f32,
        threshold: f32,
    ) -> Option<HeadResponse> {
        if probability < threshold {
            return None;
        }
        let top = chunk.top.as_ref()?;
        let class = CLASSES.get(top.class)?;
        // A response is about a sound: one that comes near its class's threshold (a quarter of
        // it, where lalm-perceive's tagger leaves its calm pace), not the faint trace of a
        // class in speech.
        if top.score < class.threshold / 4.0 {
            return None;
        }
        let recent =
            |t: &Option<u64>| t.is_some_and(|t| chunk.end.saturating_sub(t) < self.spacing);
        if recent(self.responded.get(top.class)?) {
            return None;
        }
        // One sound, one response: a ringing phone is also heard as an alarm clock, a siren
        // and an alarm; while a class responded to keeps sounding, the others give way.
        let same_sound = self
            .responded
            .iter()
            .zip(&chunk.sounding)
            .any(|(t, on)| *on && recent(t));
        if same_sound {
            return None;
        }
        self.responded[top.class] = Some(chunk.end);
        Some(HeadResponse {
            start: chunk.onset.unwrap_or(chunk.start).min(chunk.start),
            end: chunk.end,
            probability,
            class,
            label: top.label.clone(),
            score: top.score,
        })
    }
}

/// A completed chunk waiting for the head's probability.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingChunk {
    pub start: u64,
    pub end: u64,
    /// The chunk's own row (class scores, then Speech).
    pub row: Vec<f32>,
    /// The head's inputs ([`input_len`] values).
    pub inputs: Vec<f32>,
    /// The respond class scoring highest in the chunk's window.
    pub top: Option<Top>,
    /// Where that class's sound began, if it scores half its threshold in this chunk.
    pub onset: Option<u64>,
    /// Per class, whether it scores half its threshold in this chunk (its sound goes on).
    pub sounding: Vec<bool>,
}

/// A respond class in a window: its index in [`CLASSES`], its best label, that label's score.
#[derive(Debug, Clone, PartialEq)]
pub struct Top {
    pub class: usize,
    pub label: String,
    pub score: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 16000;
    const CHUNK: u64 = 8000;

    fn labels() -> Vec<String> {
        let mut l: Vec<String> = CLASSES.iter().map(|c| c.labels[0].to_string()).collect();
        l.push("Speech".into());
        l
    }

    fn frame(end: u64, class: usize, score: f32) -> TagFrame {
        let mut scores = vec![0.0; CLASSES.len() + 1];
        scores[class] = score;
        TagFrame {
            start: end.saturating_sub(4 * CHUNK),
            end,
            scores,
        }
    }

    #[test]
    fn rows_follow_the_training_layout() {
        let f = ChunkFeatures::bind(&labels());
        assert!(f.usable());
        let mut scores = vec![0.0; CLASSES.len() + 1];
        scores[2] = 0.7;
        scores[CLASSES.len()] = 0.9;
        let row = f.row(&scores);
        assert_eq!(row.len(), row_len());
        assert_eq!(row[2], 0.7);
        assert_eq!(row[CLASSES.len()], 0.9);
        // A tagger with none of the classes' labels gives the head nothing to go on.
        assert!(!ChunkFeatures::bind(&["Speech".to_string()]).usable());
    }

    #[test]
    fn each_window_completes_its_chunk_and_sparse_windows_fill_the_gaps() {
        let mut s = HeadStream::new(RATE);
        let l = labels();
        let got = s.push(&l, &[frame(4 * CHUNK, 0, 0.5)]);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].start, got[0].end), (3 * CHUNK, 4 * CHUNK));
        assert_eq!(got[0].inputs.len(), input_len());
        assert_eq!(got[0].row[0], 0.5);
        // The previous chunk's row is zero for the first chunk.
        assert!(
            got[0].inputs[row_len()..2 * row_len()]
                .iter()
                .all(|v| *v == 0.0)
        );
        // A calm tagger's next window 2 s later: the three chunks between keep the old row,
        // the fourth takes the new window.
        let got = s.push(&l, &[frame(8 * CHUNK, 1, 0.6)]);
        let ends: Vec<u64> = got.iter().map(|c| c.end).collect();
        assert_eq!(ends, vec![5 * CHUNK, 6 * CHUNK, 7 * CHUNK, 8 * CHUNK]);
        assert_eq!(got[0].row[0], 0.5);
        assert_eq!(got[3].row[1], 0.6);
        assert_eq!(got[3].inputs[row_len()], 0.5, "previous chunk's class 0");
    }

    #[test]
    fn the_earlier_span_holds_the_same_sound_from_before_but_not_the_last_chunks() {
        let mut s = HeadStream::new(RATE);
        let l = labels();
        let earlier = |c: &PendingChunk| c.inputs[2 * row_len()];
        let mut all = s.push(&l, &[frame(CHUNK, 0, 0.8)]);
        for k in 2..=70 {
            all.extend(s.push(&l, &[frame(k * CHUNK, 0, 0.0)]));
        }
        // Chunk 0 sounded; it is "earlier" from chunk 6 to chunk 60.
        assert_eq!(earlier(&all[5]), 0.0);
        assert_eq!(earlier(&all[6]), 0.8);
        assert_eq!(earlier(&all[60]), 0.8);
        assert_eq!(earlier(&all[61]), 0.0);
    }

    #[test]
    fn responses_are_spaced_and_about_a_respond_class() {
        let mut s = HeadStream::new(RATE);
        let l = labels();
        let c = s.push(&l, &[frame(CHUNK, 3, 0.6)]).remove(0);
        assert!(s.decide(&c, 0.4, 0.5).is_none(), "below the threshold");
        let r = s.decide(&c, 0.9, 0.5).expect("a response");
        assert_eq!(r.class.name, CLASSES[3].name);
        assert_eq!(
            (r.start, r.end),
            (0, CHUNK),
            "dated from its run's first chunk"
        );
        assert_eq!(r.label, CLASSES[3].labels[0]);
        assert_eq!(r.score, 0.6);
        let c2 = s.push(&l, &[frame(2 * CHUNK, 3, 0.6)]).remove(0);
        assert!(s.decide(&c2, 0.9, 0.5).is_none(), "within the spacing");
        // Another class while the first still sounds: the same sound, heard two ways.
        let mut both = frame(3 * CHUNK, 4, 0.9);
        both.scores[3] = 0.6;
        let c3 = s.push(&l, &[both]).remove(0);
        assert!(s.decide(&c3, 0.9, 0.5).is_none(), "the same sound");
        // Once the first has stopped, another class is another sound.
        let c4 = s.push(&l, &[frame(4 * CHUNK, 4, 0.6)]).remove(0);
        assert!(s.decide(&c4, 0.9, 0.5).is_some(), "another sound");
        // Nothing of a respond class near its threshold: nothing to respond about.
        let mut s = HeadStream::new(RATE);
        let c = s.push(&l, &[frame(CHUNK, CLASSES.len(), 0.9)]).remove(0);
        assert!(s.decide(&c, 0.99, 0.5).is_none());
        let faint = CLASSES[3].threshold / 5.0;
        let c = s.push(&l, &[frame(2 * CHUNK, 3, faint)]).remove(0);
        assert!(s.decide(&c, 0.99, 0.5).is_none());
    }

    #[test]
    fn a_response_starts_where_its_sound_began() {
        let mut s = HeadStream::new(RATE);
        let l = labels();
        let thr = CLASSES[0].threshold;
        let mut chunks = Vec::new();
        for (k, v) in [0.0, thr * 0.6, thr * 0.8, thr * 1.5].iter().enumerate() {
            chunks.extend(s.push(&l, &[frame((k as u64 + 1) * CHUNK, 0, *v)]));
        }
        let r = s.decide(&chunks[3], 0.9, 0.5).expect("a response");
        // Chunk 1 is the first at half the threshold: the sound began a hop before its end.
        assert_eq!((r.start, r.end), (CHUNK, 4 * CHUNK));
    }
}

//! Re-framing of an audio stream into fixed-size chunks.
//!
//! The framer is fed runs of interleaved samples (mono here, but any frame size works) with
//! the stream position of their first sample, and hands back whole chunks. Positions are
//! sample counts: a chunk's start is the stream origin plus the number of samples that came
//! before it, so time never drifts however long the stream runs. A position that jumps by
//! more than the tolerance starts a new run: what was pending is drained as a padded chunk
//! and the next chunk is marked as a discontinuity.
//!
//! Memory stays bounded by one chunk: the framer never holds more than a chunk of pending
//! samples, and silence (a GAP) is framed one chunk at a time, on demand, however long it is.
//! Positions saturate at `u64::MAX` instead of overflowing.

/// One fixed-size chunk, ready to be sent downstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Stream position of the first sample, in samples.
    pub start: u64,
    /// Exactly `chunk_samples * frame_bytes` bytes; a padded chunk is zero-filled past `valid`.
    pub data: Vec<u8>,
    /// How many samples (frames) at the start of `data` are real audio.
    pub valid: usize,
    /// How many samples at the start repeat the end of the previous chunk.
    pub overlap: usize,
    /// First chunk after a start, a flush or a jump in the stream position.
    pub discont: bool,
    /// Zero-padded because the run ended (EOS or a discontinuity) before the chunk was full.
    pub padded: bool,
    /// Index of the chunk since the framer was created or reset.
    pub index: u64,
}

impl Chunk {
    /// Samples of the chunk that were not already in the previous chunk.
    pub fn new_samples(&self) -> usize {
        self.valid.saturating_sub(self.overlap)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramerConfig {
    /// Samples per chunk.
    pub chunk: usize,
    /// Samples each chunk shares with the one before it; less than `chunk`.
    pub overlap: usize,
    /// Bytes per sample frame (4 for mono F32, 2 for mono S16).
    pub frame_bytes: usize,
    /// A position mismatch up to this many samples is treated as jitter, not as a jump.
    pub tolerance: u64,
}

impl FramerConfig {
    pub fn validate(&self) -> crate::Result<()> {
        if self.chunk == 0 {
            return Err(crate::Error::InvalidArgument(
                "chunk size must be > 0".into(),
            ));
        }
        if self.overlap >= self.chunk {
            return Err(crate::Error::InvalidArgument(format!(
                "overlap ({} samples) must be smaller than the chunk ({} samples)",
                self.overlap, self.chunk
            )));
        }
        if self.frame_bytes == 0 {
            return Err(crate::Error::InvalidArgument(
                "frame size must be > 0".into(),
            ));
        }
        Ok(())
    }

    fn hop(&self) -> usize {
        self.chunk - self.overlap
    }
}

#[derive(Debug)]
pub struct Framer {
    cfg: FramerConfig,
    /// Stream position of `pending[0]`, or `None` before the first sample of a run.
    pending_start: Option<u64>,
    pending: Vec<u8>,
    /// Stream position up to which samples were already sent in a chunk.
    covered_until: u64,
    next_discont: bool,
    next_index: u64,
    /// Partial frame bytes left over from a run whose length was not a multiple of the frame.
    stray: Vec<u8>,
    total_samples: u64,
}

impl Framer {
    pub fn new(cfg: FramerConfig) -> crate::Result<Self> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            pending_start: None,
            pending: Vec::new(),
            covered_until: 0,
            next_discont: true,
            next_index: 0,
            stray: Vec::new(),
            total_samples: 0,
        })
    }

    pub fn config(&self) -> FramerConfig {
        self.cfg
    }

    /// Where the next sample is expected, if a run is under way.
    pub fn expected_position(&self) -> Option<u64> {
        self.pending_start
            .map(|s| after(s, self.pending.len() / self.cfg.frame_bytes))
    }

    /// Bytes of audio the framer holds: never more than one chunk.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len() + self.stray.len()
    }

    /// Samples accepted since creation or the last reset.
    pub fn total_samples(&self) -> u64 {
        self.total_samples
    }

    /// Samples accepted and not yet sent in any chunk.
    pub fn pending_samples(&self) -> usize {
        let Some(start) = self.pending_start else {
            return 0;
        };
        let end = after(start, self.pending.len() / self.cfg.frame_bytes);
        end.saturating_sub(self.covered_until.max(start)) as usize
    }

    /// Forgets everything: used on flush, where nothing pending may leak into the new segment.
    pub fn reset(&mut self) {
        self.pending_start = None;
        self.pending.clear();
        self.stray.clear();
        self.covered_until = 0;
        self.next_discont = true;
        self.next_index = 0;
        self.total_samples = 0;
    }

    /// Adds `data` whose first sample sits at stream position `pos` (when known); returns the
    /// chunks that became complete, in order.
    pub fn push(&mut self, pos: Option<u64>, data: &[u8]) -> Vec<Chunk> {
        let mut out: Vec<Chunk> = self.resync(pos).into_iter().collect();
        let fb = self.cfg.frame_bytes;
        if !self.stray.is_empty() {
            let need = fb - self.stray.len();
            if data.len() < need {
                self.stray.extend_from_slice(data);
                return out;
            }
            let mut frame = std::mem::take(&mut self.stray);
            frame.extend_from_slice(&data[..need]);
            self.append(&frame, &mut out);
            self.append_aligned(&data[need..], &mut out);
        } else {
            self.append_aligned(data, &mut out);
        }
        out
    }

    /// Adds `samples` of silence at `pos` (a GAP is audio in which nothing was heard) and
    /// returns its chunks lazily: each is framed when the iterator is asked for it, so an hour
    /// of silence never sits in memory at once. Dropping the iterator early abandons the rest
    /// of the silence, as a flush would.
    pub fn push_silence(&mut self, pos: Option<u64>, samples: u64) -> SilenceChunks<'_> {
        SilenceChunks {
            framer: self,
            fill: SilenceFill::new(pos, samples),
        }
    }

    /// Frames the next piece of `fill`: at most one chunk. `None` once the fill is done (the
    /// silence after the last whole chunk stays pending, as pushed samples do). For callers
    /// that cannot keep the framer borrowed between chunks, e.g. an element that pushes each
    /// chunk downstream without holding its state lock.
    pub fn fill_silence(&mut self, fill: &mut SilenceFill) -> Option<Chunk> {
        if !fill.started {
            fill.started = true;
            let drained = self.resync(fill.pos);
            // Silence starts a frame: a partial frame left before it belongs to other audio.
            self.stray.clear();
            if drained.is_some() {
                return drained;
            }
        }
        let fb = self.cfg.frame_bytes;
        while fill.left > 0 {
            let n = fill.left.min(self.room() as u64) as usize;
            fill.left -= n as u64;
            self.total_samples += n as u64;
            self.pending.resize(self.pending.len() + n * fb, 0);
            if let Some(c) = self.take_chunk() {
                return Some(c);
            }
        }
        None
    }

    /// Ends the run: returns the last, zero-padded chunk if any sample has not yet been sent.
    pub fn drain(&mut self) -> Option<Chunk> {
        self.stray.clear();
        let start = self.pending_start?;
        let fb = self.cfg.frame_bytes;
        let have = self.pending.len() / fb;
        let end = after(start, have);
        let chunk = if end > self.covered_until.max(start) && have > 0 {
            let mut data = std::mem::take(&mut self.pending);
            data.resize(self.cfg.chunk * fb, 0);
            let overlap = self.covered_until.saturating_sub(start) as usize;
            Some(self.make_chunk(start, data, have, overlap.min(have), true))
        } else {
            None
        };
        self.pending.clear();
        self.pending_start = None;
        chunk
    }

    /// Places the next samples at `pos`; returns the chunk drained by a jump, if any.
    fn resync(&mut self, pos: Option<u64>) -> Option<Chunk> {
        let Some(pos) = pos else {
            if self.pending_start.is_none() {
                self.pending_start = Some(self.covered_until);
            }
            return None;
        };
        match self.expected_position() {
            None => {
                self.pending_start = Some(pos);
                self.covered_until = pos;
                None
            }
            Some(expected) if expected.abs_diff(pos) > self.cfg.tolerance => {
                let drained = self.drain();
                self.pending_start = Some(pos);
                self.covered_until = pos;
                self.next_discont = true;
                drained
            }
            Some(_) => None,
        }
    }

    fn append_aligned(&mut self, data: &[u8], out: &mut Vec<Chunk>) {
        let fb = self.cfg.frame_bytes;
        let whole = data.len() / fb * fb;
        self.append(&data[..whole], out);
        self.stray.extend_from_slice(&data[whole..]);
    }

    /// Frames that fit before the pending samples make a whole chunk; never zero, since a
    /// whole chunk is taken out as soon as it is complete.
    fn room(&self) -> usize {
        self.cfg.chunk - self.pending.len() / self.cfg.frame_bytes
    }

    /// Appends frame-aligned `data`, a chunk's worth at a time, so the pending buffer never
    /// grows past one chunk whatever the size of `data`.
    fn append(&mut self, mut data: &[u8], out: &mut Vec<Chunk>) {
        let fb = self.cfg.frame_bytes;
        while !data.is_empty() {
            let take = (self.room() * fb).min(data.len());
            self.total_samples += (take / fb) as u64;
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            out.extend(self.take_chunk());
        }
    }

    /// The chunk the pending samples complete, if they do; keeps its overlap pending.
    fn take_chunk(&mut self) -> Option<Chunk> {
        let fb = self.cfg.frame_bytes;
        let chunk_bytes = self.cfg.chunk * fb;
        if self.pending.len() < chunk_bytes {
            return None;
        }
        let start = self.pending_start.unwrap_or(0);
        let data = self.pending[..chunk_bytes].to_vec();
        let overlap = self.covered_until.saturating_sub(start) as usize;
        let chunk = self.make_chunk(start, data, self.cfg.chunk, overlap, false);
        self.covered_until = after(start, self.cfg.chunk);
        self.pending.drain(..self.cfg.hop() * fb);
        self.pending_start = Some(after(start, self.cfg.hop()));
        Some(chunk)
    }

    fn make_chunk(
        &mut self,
        start: u64,
        data: Vec<u8>,
        valid: usize,
        overlap: usize,
        padded: bool,
    ) -> Chunk {
        let c = Chunk {
            start,
            data,
            valid,
            overlap,
            discont: self.next_discont,
            padded,
            index: self.next_index,
        };
        self.next_discont = false;
        self.next_index += 1;
        if padded {
            self.covered_until = after(start, valid);
        }
        c
    }
}

/// The position `n` samples after `start`, saturating: a position read from a corrupt
/// timestamp must not overflow.
fn after(start: u64, n: usize) -> u64 {
    start.saturating_add(n as u64)
}

/// Silence waiting to be framed: see [`Framer::fill_silence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SilenceFill {
    pos: Option<u64>,
    left: u64,
    /// Whether `pos` was applied (which may have drained the run before it).
    started: bool,
}

impl SilenceFill {
    /// `samples` of silence whose first sample sits at `pos` (when known).
    pub fn new(pos: Option<u64>, samples: u64) -> Self {
        Self {
            pos,
            left: samples,
            started: false,
        }
    }

    /// Samples of silence not yet handed to the framer.
    pub fn remaining(&self) -> u64 {
        self.left
    }
}

/// The chunks of a silence, framed one at a time: see [`Framer::push_silence`].
#[derive(Debug)]
#[must_use = "the silence is framed only as its chunks are taken"]
pub struct SilenceChunks<'a> {
    framer: &'a mut Framer,
    fill: SilenceFill,
}

impl Iterator for SilenceChunks<'_> {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        self.framer.fill_silence(&mut self.fill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(chunk: usize, overlap: usize) -> FramerConfig {
        FramerConfig {
            chunk,
            overlap,
            frame_bytes: 2,
            tolerance: 0,
        }
    }

    fn samples(from: u16, n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| (from.wrapping_add(i as u16)).to_le_bytes())
            .collect()
    }

    fn first_sample(c: &Chunk) -> u16 {
        u16::from_le_bytes([c.data[0], c.data[1]])
    }

    #[test]
    fn any_buffer_sizes_give_the_same_chunks() {
        let all = samples(0, 1000);
        for step in [1usize, 3, 7, 64, 99, 100, 101, 999, 1000] {
            let mut f = Framer::new(cfg(100, 0)).unwrap();
            let mut chunks = Vec::new();
            let mut pos = 0u64;
            for part in all.chunks(step * 2) {
                chunks.extend(f.push(Some(pos), part));
                pos += (part.len() / 2) as u64;
            }
            assert_eq!(chunks.len(), 10, "step {step}");
            for (i, c) in chunks.iter().enumerate() {
                assert_eq!(c.start, i as u64 * 100);
                assert_eq!(first_sample(c), (i * 100) as u16);
                assert_eq!(c.index, i as u64);
                assert_eq!(c.discont, i == 0);
                assert!(!c.padded);
            }
            assert!(f.drain().is_none());
        }
    }

    #[test]
    fn odd_byte_counts_are_carried_over() {
        let all = samples(0, 300);
        let mut f = Framer::new(cfg(100, 0)).unwrap();
        let mut chunks = Vec::new();
        for part in all.chunks(3) {
            chunks.extend(f.push(None, part));
        }
        assert_eq!(chunks.len(), 3);
        assert_eq!(first_sample(&chunks[2]), 200);
    }

    #[test]
    fn eos_drains_a_padded_chunk_with_exact_length() {
        let mut f = Framer::new(cfg(100, 0)).unwrap();
        let mut chunks = f.push(Some(0), &samples(0, 250));
        let last = f.drain().expect("last chunk");
        assert_eq!(chunks.len(), 2);
        assert_eq!(last.start, 200);
        assert_eq!(last.valid, 50);
        assert!(last.padded);
        assert_eq!(last.data.len(), 200);
        assert!(last.data[100..].iter().all(|&b| b == 0));
        chunks.push(last);
        let end = chunks.last().map(|c| c.start + c.valid as u64);
        assert_eq!(end, Some(250));
        assert!(f.drain().is_none());
    }

    #[test]
    fn overlap_repeats_the_tail() {
        let mut f = Framer::new(cfg(100, 25)).unwrap();
        let chunks = f.push(Some(0), &samples(0, 400));
        let starts: Vec<u64> = chunks.iter().map(|c| c.start).collect();
        assert_eq!(starts, vec![0, 75, 150, 225, 300]);
        assert_eq!(chunks[0].overlap, 0);
        assert_eq!(chunks[1].overlap, 25);
        assert_eq!(first_sample(&chunks[1]), 75);
        // 300..400 was sent in the last chunk: nothing new is left.
        assert!(f.drain().is_none());
        let mut f = Framer::new(cfg(100, 25)).unwrap();
        f.push(Some(0), &samples(0, 110));
        let last = f.drain().expect("tail");
        assert_eq!((last.start, last.valid, last.overlap), (75, 35, 25));
        assert_eq!(last.new_samples(), 10);
    }

    #[test]
    fn a_jump_drains_and_marks_discont() {
        let mut f = Framer::new(cfg(100, 0)).unwrap();
        let a = f.push(Some(1000), &samples(0, 150));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].start, 1000);
        let b = f.push(Some(5000), &samples(0, 100));
        assert_eq!(b.len(), 2);
        assert!(b[0].padded && b[0].start == 1100 && b[0].valid == 50);
        assert!(b[1].discont && b[1].start == 5000 && !b[1].padded);
    }

    #[test]
    fn jitter_within_tolerance_keeps_counting() {
        let mut f = Framer::new(FramerConfig {
            tolerance: 10,
            ..cfg(100, 0)
        })
        .unwrap();
        let mut chunks = f.push(Some(0), &samples(0, 60));
        chunks.extend(f.push(Some(65), &samples(60, 60)));
        assert_eq!(chunks.len(), 1);
        assert_eq!(f.expected_position(), Some(120));
    }

    #[test]
    fn silence_fills_gaps() {
        let mut f = Framer::new(cfg(100, 0)).unwrap();
        let mut chunks = f.push(Some(0), &samples(1, 50));
        chunks.extend(f.push_silence(Some(50), 1_000_000));
        assert_eq!(chunks.len(), 10_000);
        assert_eq!(chunks[9_999].start, 999_900);
        assert!(chunks[1].data.iter().all(|&b| b == 0));
    }

    #[test]
    fn silence_is_framed_lazily() {
        // Two years of silence at 16 kHz: framed at once it would take terabytes.
        let mut f = Framer::new(cfg(100, 0)).unwrap();
        let first: Vec<Chunk> = f.push_silence(Some(500), 1 << 40).take(3).collect();
        let starts: Vec<u64> = first.iter().map(|c| c.start).collect();
        assert_eq!(starts, vec![500, 600, 700]);
        assert!(first[0].discont && !first[1].discont);
        // Only what was taken was framed; the rest of the silence was abandoned.
        assert_eq!(f.total_samples(), 300);
        assert_eq!(f.expected_position(), Some(800));
    }

    #[test]
    fn an_hour_of_silence_never_holds_more_than_a_chunk() {
        // 16 kHz F32 in 400 ms chunks with overlap: an hour is 9600 chunks, 246 MB at once.
        let cfg = FramerConfig {
            chunk: 6400,
            overlap: 400,
            frame_bytes: 4,
            tolerance: 0,
        };
        let hour = 16000 * 3600;
        let mut f = Framer::new(cfg).unwrap();
        // Audio pending before the gap, and a partial frame the gap must discard.
        assert!(f.push(Some(0), &[1u8; 100 * 4 + 3]).is_empty());
        let mut fill = SilenceFill::new(Some(100), hour);
        let mut next_start = 0;
        let mut chunks = 0;
        while let Some(c) = f.fill_silence(&mut fill) {
            assert_eq!(c.start, next_start);
            assert_eq!(c.data.len(), 6400 * 4);
            assert_eq!(
                (c.valid, c.overlap),
                (6400, if chunks == 0 { 0 } else { 400 })
            );
            next_start += 6000;
            chunks += 1;
            // Framed so far is exactly what came out: the rest of the hour waits in `fill`.
            assert!(f.pending_bytes() < 6400 * 4, "{}", f.pending_bytes());
            assert_eq!(f.total_samples() + fill.remaining(), 100 + hour);
        }
        assert_eq!(fill.remaining(), 0);
        assert_eq!(f.total_samples(), 100 + hour);
        // Whole chunks while they fit in the 57 600 100 samples; the rest drains as one padded
        // chunk that ends exactly where the gap ends.
        let last = f.drain().expect("the tail of the gap");
        assert!(last.padded);
        assert_eq!(last.start, next_start);
        assert_eq!(last.start + last.valid as u64, 100 + hour);
        assert_eq!(chunks, (100 + hour - 400) / 6000);
        assert_eq!(f.pending_bytes(), 0);
    }

    #[test]
    fn a_jump_before_silence_drains_first() {
        let mut f = Framer::new(cfg(100, 0)).unwrap();
        assert!(f.push(Some(0), &samples(1, 30)).is_empty());
        let mut fill = SilenceFill::new(Some(10_000), 150);
        let drained = f.fill_silence(&mut fill).expect("the run before the jump");
        assert!(drained.padded && drained.start == 0 && drained.valid == 30);
        // Nothing of the silence was framed yet.
        assert_eq!(fill.remaining(), 150);
        let c = f.fill_silence(&mut fill).expect("a whole chunk of silence");
        assert!(c.discont && c.start == 10_000 && c.data.iter().all(|&b| b == 0));
        assert!(f.fill_silence(&mut fill).is_none());
        assert_eq!(f.pending_samples(), 50);
    }

    #[test]
    fn one_big_buffer_is_framed_without_holding_it_twice() {
        let mut f = Framer::new(cfg(100, 10)).unwrap();
        let chunks = f.push(Some(0), &samples(0, 10_000));
        assert_eq!(chunks.len(), (10_000 - 10) / 90);
        assert!(f.pending_bytes() < 200);
    }

    #[test]
    fn positions_near_the_end_of_the_range_saturate() {
        let mut f = Framer::new(cfg(100, 0)).unwrap();
        let top = u64::MAX - 150;
        let mut chunks = f.push(Some(top), &samples(0, 250));
        chunks.extend(f.push_silence(None, 300));
        chunks.extend(f.drain());
        assert_eq!(chunks[0].start, top);
        assert_eq!(chunks[1].start, u64::MAX - 50);
        assert!(chunks.iter().skip(2).all(|c| c.start == u64::MAX));
        assert_eq!(f.expected_position(), None);
    }

    #[test]
    fn reset_forgets_pending() {
        let mut f = Framer::new(cfg(100, 0)).unwrap();
        f.push(Some(0), &samples(0, 50));
        f.reset();
        assert_eq!(f.pending_samples(), 0);
        let c = f.push(Some(7000), &samples(0, 100));
        assert_eq!(c[0].start, 7000);
        assert!(c[0].discont);
        assert_eq!(c[0].index, 0);
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(Framer::new(cfg(0, 0)).is_err());
        assert!(Framer::new(cfg(100, 100)).is_err());
    }
}

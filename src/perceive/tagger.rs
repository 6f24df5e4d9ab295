//! Sound-event taggers (`audio-tagger` family): a model that scores a fixed window of audio
//! for a list of labels (alarm, siren, speech, …), run every `hop` samples over the stream.
//!
//! The package's manifest names the labels file and how the model wants its input:
//!
//! ```toml
//! family = "audio-tagger"
//! sample_rate = 16000
//! [files]
//! model = "tagger.onnx"
//! labels = "labels.txt"        # one label per line, in the order of the model's outputs
//! [io]
//! input = "waveform"           # tensor names (these are the defaults)
//! output = "scores"
//! [params]
//! input_kind = "waveform"      # or "log-mel"
//! window = 15360               # samples per analysed window
//! hop = 3200                   # samples between window starts
//! output_kind = "probabilities" # or "logits" (a sigmoid is applied here)
//! max_batch = 1                # optional: the most windows one call takes (0: no limit)
//! ```
//!
//! `max_batch = 1` is for models whose windows change each other's scores when run together:
//! dynamic int8 quantization (the default `ced-tiny`) scales its activations over the whole
//! call, so a window batched with another stream's would score differently from the same
//! window alone, and a file's alerts would depend on timing. Windows then run one per call
//! (the batcher still gathers other streams' work into one turn of the session).
//!
//! `waveform` models get `[batch, window]` f32 samples. `log-mel` models get
//! `[batch, n_mels, frames]` (or `[batch, frames, n_mels]` with `layout = "frames-mels"`) of
//! `ln(mel_power + log_offset)`: frames of `n_fft` samples (periodic Hann window, no centre
//! padding) every `hop_length` samples, power spectrum, triangular HTK-scale mel filters from
//! `fmin` to `fmax` (params `n_fft` 400, `hop_length` 160, `n_mels` 64, `fmin` 0, `fmax` rate / 2,
//! `log_offset` 1e-6, `layout`). Models whose front end differs take the waveform: put the front
//! end inside the ONNX graph, as the project's own tagger does.

use std::path::PathBuf;
use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::base::batch::{BatchCounts, BatchPolicy, Batcher};
use crate::models::contract::{ModelFamily, Signature, TensorSig};
use crate::models::package::ModelPackage;
use crate::models::remote::{Input, RemoteModel, RemoteStatus};
use crate::models::runtime::{Runtime, SessionInfo, SessionOptions, SharedSession, package_model};
use crate::perceive::perception::TagFrame;
use crate::{Error, Result};

pub const FAMILY: &str = crate::models::family::AUDIO_TAGGER;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Probabilities,
    /// Raw scores; a sigmoid turns them into probabilities.
    Logits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    MelsFrames,
    FramesMels,
}

/// The log-mel front end for models that take features rather than samples.
struct LogMelFrontEnd {
    n_fft: usize,
    hop: usize,
    n_mels: usize,
    log_offset: f32,
    layout: Layout,
    window: Vec<f32>,
    /// Dense `[n_mels][n_fft / 2 + 1]`.
    filters: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl LogMelFrontEnd {
    fn from_package(pkg: &ModelPackage, rate: u32, window: usize) -> Result<Self> {
        let bad = |reason: String| Error::Manifest {
            path: pkg.manifest_path.clone(),
            reason,
        };
        let n_fft = pkg.param_int("n_fft", 400)?;
        let hop = pkg.param_int("hop_length", 160)?;
        let n_mels = pkg.param_int("n_mels", 64)?;
        if !(16..=8192).contains(&n_fft) || hop < 1 || !(1..=512).contains(&n_mels) {
            return Err(bad(format!(
                "log-mel needs 16 <= n_fft <= 8192, hop_length >= 1 and 1 <= n_mels <= 512 \
                 (got {n_fft}, {hop}, {n_mels})"
            )));
        }
        let (n_fft, hop, n_mels) = (n_fft as usize, hop as usize, n_mels as usize);
        if window < n_fft {
            return Err(bad(format!(
                "the window ({window} samples) is shorter than n_fft ({n_fft})"
            )));
        }
        let nyquist = rate as f64 / 2.0;
        let fmin = param_float(pkg, "fmin", 0.0)?;
        let fmax = param_float(pkg, "fmax", nyquist)?;
        if !(0.0..nyquist).contains(&fmin) || fmax <= fmin || fmax > nyquist {
            return Err(bad(format!(
                "log-mel needs 0 <= fmin < fmax <= {nyquist} Hz (got {fmin}, {fmax})"
            )));
        }
        let log_offset = param_float(pkg, "log_offset", 1e-6)? as f32;
        let layout = match pkg.manifest.params.get("layout").and_then(|v| v.as_str()) {
            None | Some("mels-frames") => Layout::MelsFrames,
            Some("frames-mels") => Layout::FramesMels,
            Some(other) => {
                return Err(bad(format!(
                    "params.layout is '{other}'; use mels-frames or frames-mels"
                )));
            }
        };
        let win = crate::dsp::window::hann_periodic(n_fft);
        Ok(Self {
            n_fft,
            hop,
            n_mels,
            log_offset,
            layout,
            window: win,
            filters: htk_filters(n_mels, n_fft, rate as f64, fmin, fmax),
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(n_fft),
        })
    }

    fn frames(&self, window: usize) -> usize {
        1 + (window - self.n_fft) / self.hop
    }

    /// Features of one window, appended to `out` in the model's layout.
    fn push_features(&self, samples: &[f32], out: &mut Vec<f32>) {
        let n_bins = self.n_fft / 2 + 1;
        let frames = self.frames(samples.len());
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f32; n_bins];
        let mut feats = vec![0.0f32; frames * self.n_mels];
        for f in 0..frames {
            let x = &samples[f * self.hop..f * self.hop + self.n_fft];
            for ((slot, &v), &w) in input.iter_mut().zip(x).zip(&self.window) {
                *slot = v * w;
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .expect("FFT buffers are made by the same plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for (m, row) in self.filters.chunks_exact(n_bins).enumerate() {
                let e: f32 = row.iter().zip(&power).map(|(a, b)| a * b).sum();
                feats[f * self.n_mels + m] = (e + self.log_offset).ln();
            }
        }
        match self.layout {
            Layout::FramesMels => out.extend_from_slice(&feats),
            Layout::MelsFrames => {
                for m in 0..self.n_mels {
                    out.extend((0..frames).map(|f| feats[f * self.n_mels + m]));
                }
            }
        }
    }
}

fn param_float(pkg: &ModelPackage, key: &str, default: f64) -> Result<f64> {
    match pkg.manifest.params.get(key) {
        None => Ok(default),
        Some(toml::Value::Float(f)) => Ok(*f),
        Some(toml::Value::Integer(i)) => Ok(*i as f64),
        Some(other) => Err(Error::Manifest {
            path: pkg.manifest_path.clone(),
            reason: format!("params.{key} must be a number, found {other}"),
        }),
    }
}

/// Triangular filters equally spaced on the HTK mel scale, peak 1, `[n_mels][n_fft / 2 + 1]`.
fn htk_filters(n_mels: usize, n_fft: usize, rate: f64, fmin: f64, fmax: f64) -> Vec<f32> {
    let to_mel = |hz: f64| 2595.0 * (1.0 + hz / 700.0).log10();
    let to_hz = |mel: f64| 700.0 * (10f64.powf(mel / 2595.0) - 1.0);
    let n_bins = n_fft / 2 + 1;
    let (lo, hi) = (to_mel(fmin), to_mel(fmax));
    let points: Vec<f64> = (0..n_mels + 2)
        .map(|i| to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = vec![0.0f32; n_mels * n_bins];
    for (m, row) in out.chunks_exact_mut(n_bins).enumerate() {
        let (a, b, c) = (points[m], points[m + 1], points[m + 2]);
        for (k, w) in row.iter_mut().enumerate() {
            let f = k as f64 * rate / n_fft as f64;
            let up = (f - a) / (b - a).max(1e-9);
            let down = (c - f) / (c - b).max(1e-9);
            *w = up.min(down).max(0.0) as f32;
        }
    }
    out
}

/// The model side of a tagger: one per process for the same package and options, shared by
/// every stream, which submit their windows to its batcher.
pub struct TaggerModel {
    session: Arc<SharedSession>,
    model_path: PathBuf,
    rate: u32,
    window: usize,
    hop: usize,
    labels: Vec<String>,
    output_kind: OutputKind,
    front_end: Option<LogMelFrontEnd>,
    input_name: String,
    output_name: String,
    /// The server this model runs on, when one is set.
    remote: Option<RemoteModel>,
    batcher: Batcher<TagJob>,
    /// The most windows one inference takes (`params.max_batch`; 0: no limit).
    max_batch: usize,
}

/// One stream's whole windows (`n` of them, back to back) and, once run, their scores.
struct TagJob {
    samples: Vec<f32>,
    scores: Vec<Vec<f32>>,
}

impl TaggerModel {
    fn load(pkg: &ModelPackage, rt: &Runtime, opts: &SessionOptions) -> Result<Self> {
        let bad = |reason: String| Error::Manifest {
            path: pkg.manifest_path.clone(),
            reason,
        };
        let rate = pkg.manifest.sample_rate;
        let window = pkg.param_int("window", 0)?;
        let hop = pkg.param_int("hop", window / 4)?;
        if window <= 0 || hop <= 0 || window > rate as i64 * 60 {
            return Err(bad(format!(
                "params.window and params.hop must be positive sample counts, up to a minute \
                 (got window {window}, hop {hop})"
            )));
        }
        let (window, hop) = (window as usize, hop as usize);
        let max_batch = usize::try_from(pkg.param_int("max_batch", 0)?).map_err(|_| {
            bad("params.max_batch must be 0 (no limit) or a positive window count".into())
        })?;
        let output_kind = match pkg
            .manifest
            .params
            .get("output_kind")
            .and_then(|v| v.as_str())
        {
            None | Some("probabilities") => OutputKind::Probabilities,
            Some("logits") => OutputKind::Logits,
            Some(other) => {
                return Err(bad(format!(
                    "params.output_kind is '{other}'; use probabilities or logits"
                )));
            }
        };
        let front_end = match pkg
            .manifest
            .params
            .get("input_kind")
            .and_then(|v| v.as_str())
        {
            None | Some("waveform") => None,
            Some("log-mel") => Some(LogMelFrontEnd::from_package(pkg, rate, window)?),
            Some(other) => {
                return Err(bad(format!(
                    "params.input_kind is '{other}'; use waveform or log-mel"
                )));
            }
        };
        let labels_path = pkg.file("labels")?;
        let labels: Vec<String> = std::fs::read_to_string(&labels_path)
            .map_err(|e| bad(format!("cannot read {}: {e}", labels_path.display())))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect();
        if labels.is_empty() {
            return Err(bad(format!("{} lists no labels", labels_path.display())));
        }
        let model_path = pkg.file("model")?;
        let input_name = pkg.io_name("input", "waveform").to_string();
        let output_name = pkg.io_name("output", "scores").to_string();
        let features = front_end
            .as_ref()
            .map(|f| (f.n_mels, f.frames(window), f.layout));
        let sig = signature(&input_name, &output_name, window, features, labels.len());
        let (session, _) = AudioTagger::session(rt, pkg, "model", opts, &sig)?;
        let remote = AudioTagger::connect(pkg, opts, &session)?;
        Ok(Self {
            session,
            model_path,
            rate,
            window,
            hop,
            labels,
            output_kind,
            front_end,
            input_name,
            output_name,
            remote,
            batcher: Batcher::default(),
            max_batch,
        })
    }

    /// Scores the windows of several streams' jobs in one call.
    fn run_jobs(&self, jobs: &mut [TagJob]) -> Result<()> {
        let windows: Vec<&[f32]> = jobs
            .iter()
            .flat_map(|j| j.samples.chunks_exact(self.window))
            .collect();
        let mut rows = self.run(&windows)?.into_iter();
        for j in jobs.iter_mut() {
            let n = j.samples.len() / self.window;
            j.scores = rows.by_ref().take(n).collect();
        }
        Ok(())
    }

    fn run(&self, windows: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        if self.max_batch > 0 && windows.len() > self.max_batch {
            let mut rows = Vec::with_capacity(windows.len());
            for part in windows.chunks(self.max_batch) {
                rows.extend(self.run(part)?);
            }
            return Ok(rows);
        }
        let (batch, window, n_labels) = (windows.len(), self.window, self.labels.len());
        let mut input = Vec::new();
        let shape: Vec<usize> = match &self.front_end {
            None => {
                input.reserve(batch * window);
                for w in windows {
                    input.extend_from_slice(w);
                }
                vec![batch, window]
            }
            Some(fe) => {
                for w in windows {
                    fe.push_features(w, &mut input);
                }
                let frames = fe.frames(window);
                match fe.layout {
                    Layout::MelsFrames => vec![batch, fe.n_mels, frames],
                    Layout::FramesMels => vec![batch, frames, fe.n_mels],
                }
            }
        };
        let scores = crate::models::exec::run(
            &self.session,
            self.remote.as_ref(),
            &[Input::f32(&self.input_name, shape, &input)],
            &[&self.output_name],
        )?
        .pop()
        .unwrap_or_default();
        if scores.len() != batch * n_labels {
            return Err(Error::Inference(format!(
                "tagger output has {} values for {batch} windows of {n_labels} labels",
                scores.len()
            )));
        }
        Ok(scores
            .chunks_exact(n_labels)
            .map(|row| match self.output_kind {
                OutputKind::Probabilities => row.to_vec(),
                OutputKind::Logits => row.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect(),
            })
            .collect())
    }
}

/// The labels a stream's decisions act on, and for each the score at which the tagger stops
/// looking coarsely: while none of them scores that much, windows follow each other at the
/// calm hop instead of the model's hop (see [`AudioTagger::set_watch`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TagWatch {
    /// (label index, near score) pairs.
    pub labels: Vec<(usize, f32)>,
    /// Samples between window starts while calm; at least the model's hop.
    pub calm_hop: u64,
}

impl TagWatch {
    /// Whether a frame's scores come near any watched label.
    fn near(&self, scores: &[f32]) -> bool {
        self.labels
            .iter()
            .any(|&(i, near)| scores.get(i).is_some_and(|&s| s >= near))
    }
}

/// One stream's tagger: the samples its next windows need, on a model that may be shared
/// with other streams.
pub struct AudioTagger {
    model: Arc<TaggerModel>,
    policy: BatchPolicy,
    /// Samples from `pending_start` on, kept until every window that needs them has run.
    pending: Vec<f32>,
    pending_start: Option<u64>,
    /// Stream position of the next window to score.
    next: u64,
    /// Windows quieter than this (RMS, dBFS) are not run through the model: they score 0.
    gate_db: Option<f32>,
    /// Windows skipped by the gate, and windows scored, since load.
    gated: u64,
    scored: u64,
    watch: Option<TagWatch>,
    /// With a watch: the start of the last window scored, when a calm step followed it.
    calm_from: Option<u64>,
}

impl std::fmt::Debug for AudioTagger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.model;
        f.debug_struct("AudioTagger")
            .field("model", &m.model_path)
            .field("labels", &m.labels)
            .field("window", &m.window)
            .field("hop", &m.hop)
            .field("provider", &m.session.info().active)
            .finish()
    }
}

impl Drop for AudioTagger {
    fn drop(&mut self) {
        self.model.batcher.unregister();
    }
}

impl AudioTagger {
    /// Loads the package and checks the model's input and output against the manifest, so
    /// a mismatched labels file or window is refused at start. With `opts.shared` the model
    /// (session and batcher) is the one every other stream of this process uses for the same
    /// package and options.
    pub fn load(pkg: &ModelPackage, rt: &Runtime, opts: &SessionOptions) -> Result<Self> {
        Self::open(pkg)?;
        let model = package_model(pkg, opts, || TaggerModel::load(pkg, rt, opts))?;
        model.batcher.register();
        Ok(Self {
            model,
            policy: BatchPolicy::default(),
            pending: Vec::new(),
            pending_start: None,
            next: 0,
            gate_db: None,
            gated: 0,
            scored: 0,
            watch: None,
            calm_from: None,
        })
    }

    /// Looks coarsely while calm: with a watch, after a window in which no watched label
    /// scores its near score the next window starts `calm_hop` later (windows abutting at
    /// most, so no sample goes unheard), and after one in which some does, one model hop
    /// later as without a watch. A sound that matters is first seen at most a calm hop late;
    /// from then on its frames come as often as ever. `None` keeps the model's hop.
    pub fn set_watch(&mut self, watch: Option<TagWatch>) {
        self.watch = watch.map(|mut w| {
            let (hop, window) = (self.model.hop as u64, self.model.window as u64);
            w.calm_hop = w.calm_hop.clamp(hop, window.max(hop));
            w
        });
    }

    /// Windows whose RMS level is below `db` (dBFS) score 0 for every label without running
    /// the model: silence holds no sound event, and a muted or idle stream then costs
    /// nothing. `None` runs every window.
    pub fn set_gate_db(&mut self, db: Option<f32>) {
        self.gate_db = db;
    }

    /// Windows skipped by the level gate and windows run through the model, since load.
    pub fn gate_counts(&self) -> (u64, u64) {
        (self.gated, self.scored)
    }

    /// How long this stream's windows may wait for other streams' to run in one batch.
    pub fn set_batch_policy(&mut self, policy: BatchPolicy) {
        self.policy = policy;
    }

    /// Batches run and jobs scored by this stream's model, over all its streams.
    pub fn batch_counts(&self) -> BatchCounts {
        self.model.batcher.counts()
    }

    pub fn session_info(&self) -> &SessionInfo {
        self.model.session.info()
    }

    /// Where the model's server stands, when it runs on one.
    pub fn remote_status(&self) -> Option<RemoteStatus> {
        self.model.remote.as_ref().map(RemoteModel::status)
    }

    pub fn sample_rate(&self) -> u32 {
        self.model.rate
    }

    pub fn labels(&self) -> &[String] {
        &self.model.labels
    }

    pub fn window_samples(&self) -> usize {
        self.model.window
    }

    pub fn hop_samples(&self) -> usize {
        self.model.hop
    }

    /// Forgets the samples held: the next window starts where the next samples start.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.pending_start = None;
        self.calm_from = None;
    }

    /// Feeds samples starting at stream position `start` and scores every window they
    /// complete, as one batch (with other streams' windows when they are ready together).
    /// Windows start at the first sample after a reset and every `hop` samples from there;
    /// a jump in positions starts over from the new position.
    pub fn process(&mut self, start: u64, samples: &[f32]) -> Result<Vec<TagFrame>> {
        let expected = self
            .pending_start
            .map(|s| s.saturating_add(self.pending.len() as u64));
        if expected != Some(start) {
            self.pending.clear();
            self.pending_start = Some(start);
            self.next = start;
            self.calm_from = None;
        }
        self.pending.extend_from_slice(samples);
        if self.watch.is_some() {
            return self.process_watched();
        }
        let (window, hop) = (self.model.window, self.model.hop);
        let base = self.pending_start.unwrap_or(start);
        let mut starts = Vec::new();
        // Positions near the end of the range end the windows instead of wrapping.
        let held_until = base.saturating_add(self.pending.len() as u64);
        while self
            .next
            .checked_add(window as u64)
            .is_some_and(|end| end <= held_until)
        {
            starts.push(self.next);
            self.next = self.next.saturating_add(hop as u64);
        }
        let frames = self.score_held(&starts, base)?;
        // Keep only what later windows still need.
        let keep_from = self.next.max(base);
        let drop = ((keep_from - base) as usize).min(self.pending.len());
        self.pending.drain(..drop);
        self.pending_start = Some(base.saturating_add(drop as u64));
        Ok(frames)
    }

    /// `process` with a watch: each window's scores say where the next one starts, so the
    /// windows are scored one at a time (each still batched with other streams'). A window
    /// reached by a calm step that comes near also gets the model-hop windows between it and
    /// the one before, scored then and put before it: from the calm window before a sound on,
    /// the frames are those the model's hop gives, so a sound's onset is dated and confirmed as
    /// without a watch.
    fn process_watched(&mut self) -> Result<Vec<TagFrame>> {
        let (window, hop) = (self.model.window, self.model.hop as u64);
        let base = self.pending_start.unwrap_or(0);
        let held_until = base.saturating_add(self.pending.len() as u64);
        let mut frames = Vec::new();
        while let Some(end) = self.next.checked_add(window as u64)
            && end <= held_until
        {
            let s = self.next;
            let mut scores = self.score_held(&[s], base)?;
            let frame = scores.pop().unwrap_or_default();
            let near = self.watch.as_ref().is_none_or(|w| w.near(&frame.scores));
            if near && let Some(prev) = self.calm_from.take() {
                let between: Vec<u64> = (1..)
                    .map(|k| prev + k * hop)
                    .take_while(|&b| b < s && b >= base)
                    .collect();
                frames.extend(self.score_held(&between, base)?);
            }
            frames.push(frame);
            if near {
                self.next = s.saturating_add(hop);
            } else {
                let calm = self.watch.as_ref().map_or(hop, |w| w.calm_hop);
                self.next = s.saturating_add(calm);
                self.calm_from = Some(s);
            }
        }
        // A calm step keeps what the windows between its two ends would need.
        let keep_from = self
            .calm_from
            .map_or(self.next, |p| p.saturating_add(hop).min(self.next))
            .max(base);
        let drop = ((keep_from - base) as usize).min(self.pending.len());
        self.pending.drain(..drop);
        self.pending_start = Some(base.saturating_add(drop as u64));
        Ok(frames)
    }

    /// Frames for the windows starting at `starts`, from the samples held from `base` on, in
    /// one call (quiet ones gated).
    fn score_held(&mut self, starts: &[u64], base: u64) -> Result<Vec<TagFrame>> {
        let window = self.model.window;
        let n_labels = self.model.labels.len();
        let mut job = Vec::with_capacity(starts.len() * window);
        let mut loud = Vec::with_capacity(starts.len());
        for &s in starts {
            let a = (s - base) as usize;
            let w = &self.pending[a..a + window];
            let run = self.gate_db.is_none_or(|gate| rms_db(w) >= gate);
            if run {
                job.extend_from_slice(w);
            }
            loud.push(run);
        }
        let mut scored = self.submit(job)?.into_iter();
        let mut frames = Vec::with_capacity(starts.len());
        for (&s, run) in starts.iter().zip(loud) {
            let scores = if run {
                self.scored += 1;
                scored.next().ok_or_else(|| {
                    Error::Inference("the tagger returned fewer windows than it was given".into())
                })?
            } else {
                self.gated += 1;
                vec![0.0; n_labels]
            };
            frames.push(TagFrame {
                start: s,
                end: s + window as u64,
                scores,
            });
        }
        Ok(frames)
    }

    /// Scores whole windows (each `window` samples), one row of label scores per window.
    pub fn score(&mut self, windows: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        if let Some(w) = windows.iter().find(|w| w.len() != self.model.window) {
            return Err(Error::InvalidArgument(format!(
                "tagger window of {} samples, expected {}",
                w.len(),
                self.model.window
            )));
        }
        self.submit(windows.concat())
    }

    fn submit(&self, samples: Vec<f32>) -> Result<Vec<Vec<f32>>> {
        if samples.is_empty() {
            return Ok(Vec::new());
        }
        let job = TagJob {
            samples,
            scores: Vec::new(),
        };
        let model = &self.model;
        let done = model
            .batcher
            .submit(job, self.policy, |jobs| model.run_jobs(jobs))?;
        Ok(done.scores)
    }
}

/// RMS level of samples in dBFS (full scale 1.0); silence is -inf.
fn rms_db(samples: &[f32]) -> f32 {
    let energy: f64 = samples.iter().map(|&x| (x as f64) * (x as f64)).sum();
    let mean = energy / samples.len().max(1) as f64;
    (10.0 * mean.log10()) as f32
}

/// The tagger contract: samples (or log-mel features) of a batch of windows in, one score
/// per label out; the sizes the manifest implies must be the model's where it fixes them.
fn signature(
    input: &str,
    output: &str,
    window: usize,
    features: Option<(usize, usize, Layout)>,
    n_labels: usize,
) -> Signature {
    let expected: Vec<i64> = match features {
        None => vec![-1, window as i64],
        Some((m, f, Layout::MelsFrames)) => vec![-1, m as i64, f as i64],
        Some((m, f, Layout::FramesMels)) => vec![-1, f as i64, m as i64],
    };
    let mut i = TensorSig::f32(input)
        .rank(expected.len())
        .about("batch first");
    for (k, &want) in expected.iter().enumerate().skip(1) {
        i = i.dim(
            k as isize,
            want,
            format!("the manifest implies {want} (shape {expected:?})"),
        );
    }
    let o = TensorSig::f32(output).dim_of(
        -1,
        n_labels as i64,
        "scores per window",
        format!("but the labels file lists {n_labels}"),
    );
    Signature::new().input(i).output(o)
}

impl ModelFamily for AudioTagger {
    const NAME: &'static str = FAMILY;
    const SERVED_AS: Option<&'static str> = Some("tagger");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htk_filters_are_triangles_covering_the_range() {
        let f = htk_filters(8, 512, 16000.0, 0.0, 8000.0);
        let n_bins = 257;
        for row in f.chunks_exact(n_bins) {
            let peak = row.iter().cloned().fold(0.0f32, f32::max);
            assert!(peak > 0.5 && peak <= 1.0, "peak {peak}");
            // One rise and one fall: the non-zero bins are contiguous.
            let first = row.iter().position(|&w| w > 0.0).unwrap();
            let last = row.iter().rposition(|&w| w > 0.0).unwrap();
            assert!(row[first..=last].iter().all(|&w| w > 0.0));
        }
    }
}

//! Silero VAD (v5/v6 ONNX contract): speech probability for each 512-sample window at
//! 16 kHz (256 at 8 kHz), with a recurrent state and a short context of the previous
//! window's tail, both carried from one call to the next.

use std::path::PathBuf;
use std::sync::Arc;

use crate::base::batch::{BatchCounts, BatchPolicy, Batcher};
use crate::models::contract::{Elem, ModelFamily, Signature, TensorSig};
use crate::models::package::ModelPackage;
use crate::models::remote::{Input, RemoteModel, RemoteStatus};
use crate::models::runtime::{Runtime, SessionInfo, SessionOptions, SharedSession, package_model};
use crate::{Error, Result};

pub const FAMILY: &str = crate::models::family::SILERO_VAD;

/// One analysed window: where it starts in the stream (samples), its speech probability
/// and its level (RMS in dBFS), which the decision uses to place utterance ends precisely,
/// and how many of its samples sit at full scale, for the clipping alert.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowProb {
    pub start: u64,
    pub prob: f32,
    pub level_db: f32,
    pub clipped: u32,
}

/// A sample at or above this magnitude counts as clipped: converters saturate at 1.0 and
/// S16 audio at 32767/32768, so a little below full scale catches both.
pub const CLIP_LEVEL: f32 = 0.999;

/// Samples of `x` whose magnitude reaches [`CLIP_LEVEL`].
pub fn clipped_count(x: &[f32]) -> u32 {
    x.iter().filter(|v| v.abs() >= CLIP_LEVEL).count() as u32
}

/// Floor of [`level_db`], the level of digital silence.
pub const SILENCE_DB: f32 = -120.0;

/// RMS level of `x` in dBFS, never below [`SILENCE_DB`].
pub fn level_db(x: &[f32]) -> f32 {
    if x.is_empty() {
        return SILENCE_DB;
    }
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    (10.0 * ms.max(1e-12).log10()).max(SILENCE_DB)
}

/// The model side of Silero VAD: one per process for the same file and options, shared by
/// every stream, which submit their windows to its batcher.
pub struct VadModel {
    session: Arc<SharedSession>,
    model_path: PathBuf,
    rate: u32,
    window: usize,
    context: usize,
    state_dims: [usize; 3],
    names: Names,
    /// The server this model runs on, when one is set.
    remote: Option<RemoteModel>,
    batcher: Batcher<VadJob>,
}

struct Names {
    input: String,
    state: String,
    sr: Option<String>,
    output: String,
    state_out: String,
}

/// One stream's windows for one call: `rows` holds, for each window, the context followed
/// by the window's samples; `state` goes in and comes out advanced past all of them.
struct VadJob {
    rows: Vec<f32>,
    state: Vec<f32>,
    probs: Vec<f32>,
}

impl VadModel {
    fn load(pkg: &ModelPackage, rt: &Runtime, opts: &SessionOptions) -> Result<Self> {
        let rate = pkg.manifest.sample_rate;
        if rate != 16000 && rate != 8000 {
            return Err(Error::Manifest {
                path: pkg.manifest_path.clone(),
                reason: format!("silero-vad runs at 8000 or 16000 Hz, not {rate}"),
            });
        }
        let default_window = if rate == 16000 { 512 } else { 256 };
        let default_context = if rate == 16000 { 64 } else { 32 };
        let window = pkg.param_int("window", default_window)?.max(1) as usize;
        let context = pkg.param_int("context", default_context)?.max(0) as usize;
        let names = Names {
            input: pkg.io_name("input", "input").to_string(),
            state: pkg.io_name("state", "state").to_string(),
            sr: Some(pkg.io_name("sr", "sr").to_string()).filter(|s| !s.is_empty()),
            output: pkg.io_name("output", "output").to_string(),
            state_out: pkg.io_name("state_out", "stateN").to_string(),
        };
        let model_path = pkg.file("model")?;
        let (session, checked) = SileroVad::session(rt, pkg, "model", opts, &names.signature())?;
        let state_dims = match checked.shape(&names.state) {
            Some(s) => {
                let d = |i: usize, default: usize| if s[i] > 0 { s[i] as usize } else { default };
                [d(0, 2), 1, d(2, 128)]
            }
            None => [2, 1, 128],
        };
        let remote = SileroVad::connect(pkg, opts, &session)?;
        Ok(Self {
            session,
            model_path,
            rate,
            window,
            context,
            state_dims,
            names,
            remote,
            batcher: Batcher::default(),
        })
    }

    fn state_len(&self) -> usize {
        self.state_dims.iter().product()
    }

    /// Runs the jobs of several streams together: step `i` runs the `i`-th window of every
    /// job that has one as one batch, the recurrent state of each job carried in its own
    /// batch row.
    fn run_jobs(&self, jobs: &mut [VadJob]) -> Result<()> {
        let row = self.context + self.window;
        let [layers, _, width] = self.state_dims;
        let steps = jobs.iter().map(|j| j.rows.len() / row).max().unwrap_or(0);
        let mut input = Vec::new();
        let mut state = Vec::new();
        for step in 0..steps {
            let active: Vec<usize> = (0..jobs.len())
                .filter(|&j| jobs[j].rows.len() / row > step)
                .collect();
            let b = active.len();
            input.clear();
            for &j in &active {
                input.extend_from_slice(&jobs[j].rows[step * row..(step + 1) * row]);
            }
            // State is layers x batch x width: gather each job's rows into its batch slot.
            state.clear();
            for l in 0..layers {
                for &j in &active {
                    state.extend_from_slice(&jobs[j].state[l * width..(l + 1) * width]);
                }
            }
            let sr = [self.rate as i64];
            let mut feed = vec![
                Input::f32(&self.names.input, vec![b, row], &input),
                Input::f32(&self.names.state, vec![layers, b, width], &state),
            ];
            if let Some(n) = &self.names.sr {
                feed.push(Input::i64(n, Vec::new(), &sr));
            }
            let mut out = crate::models::exec::run(
                &self.session,
                self.remote.as_ref(),
                &feed,
                &[&self.names.output, &self.names.state_out],
            )?
            .into_iter();
            let (prob, new_state) = match (out.next(), out.next()) {
                (Some(p), Some(s)) => (p, s),
                _ => {
                    return Err(Error::Inference(
                        "the VAD gave fewer outputs than asked".into(),
                    ));
                }
            };
            if prob.len() != b || new_state.len() != layers * b * width {
                return Err(Error::Inference(format!(
                    "a batch of {b} windows gave {} probabilities and {} state values, \
                     expected {b} and {}",
                    prob.len(),
                    new_state.len(),
                    layers * b * width
                )));
            }
            for (slot, &j) in active.iter().enumerate() {
                jobs[j].probs.push(prob[slot]);
                for l in 0..layers {
                    let from = (l * b + slot) * width;
                    jobs[j].state[l * width..(l + 1) * width]
                        .copy_from_slice(&new_state[from..from + width]);
                }
            }
        }
        Ok(())
    }
}

/// One stream's Silero VAD: its recurrent state, context and partial window, on a model
/// that may be shared with other streams.
pub struct SileroVad {
    model: Arc<VadModel>,
    policy: BatchPolicy,
    state: Vec<f32>,
    /// The tail of the last window analysed: the next window's context.
    context: Vec<f32>,
    /// Samples received but not yet a whole window, and the stream position of the first.
    pending: Vec<f32>,
    pending_start: Option<u64>,
}

impl std::fmt::Debug for SileroVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroVad")
            .field("model", &self.model.model_path)
            .field("rate", &self.model.rate)
            .field("window", &self.model.window)
            .field("provider", &self.model.session.info().active)
            .finish()
    }
}

impl Drop for SileroVad {
    fn drop(&mut self) {
        self.model.batcher.unregister();
    }
}

impl SileroVad {
    /// Loads the package's `model` file and checks that its inputs and outputs are the ones
    /// this family needs, so a wrong model is refused at start rather than at the first chunk.
    /// With `opts.shared` the model (session and batcher) is the one every other stream of
    /// this process uses for the same package and options.
    pub fn load(pkg: &ModelPackage, rt: &Runtime, opts: &SessionOptions) -> Result<Self> {
        Self::open(pkg)?;
        let model = package_model(pkg, opts, || VadModel::load(pkg, rt, opts))?;
        model.batcher.register();
        let n_state = model.state_len();
        let context = model.context;
        let window = model.window;
        Ok(Self {
            model,
            policy: BatchPolicy::default(),
            state: vec![0.0; n_state],
            context: vec![0.0; context],
            pending: Vec::with_capacity(window),
            pending_start: None,
        })
    }

    /// How long this stream's windows may wait for other streams' to run in one batch.
    pub fn set_batch_policy(&mut self, policy: BatchPolicy) {
        self.policy = policy;
    }

    /// Batches run and windows analysed by this stream's model, over all its streams.
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

    pub fn window_samples(&self) -> usize {
        self.model.window
    }

    /// Clears the recurrent state, the context and any partial window: a new stream.
    pub fn reset(&mut self) {
        self.state.iter_mut().for_each(|v| *v = 0.0);
        self.context.iter_mut().for_each(|v| *v = 0.0);
        self.pending.clear();
        self.pending_start = None;
    }

    /// Feeds samples that start at stream position `start`; returns one probability for
    /// every window completed by them, all run in one call of the model (shared with other
    /// streams' windows when they are ready together). Samples that do not continue the
    /// previous call start a new run (the partial window before the jump is dropped, the
    /// state kept: use [`reset`](Self::reset) for a real discontinuity).
    pub fn process(&mut self, start: u64, samples: &[f32]) -> Result<Vec<WindowProb>> {
        let expected = self
            .pending_start
            .map(|s| s.saturating_add(self.pending.len() as u64));
        if expected != Some(start) {
            self.pending.clear();
            self.pending_start = Some(start);
        }
        let window = self.model.window;
        let mut out = Vec::with_capacity(samples.len() / window + 1);
        let mut rows = Vec::new();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (window - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == window {
                let w_start = self.pending_start.unwrap_or(start);
                self.push_row(&mut rows);
                out.push(WindowProb {
                    start: w_start,
                    prob: 0.0,
                    level_db: level_db(&self.pending),
                    clipped: clipped_count(&self.pending),
                });
                self.pending.clear();
                self.pending_start = Some(w_start.saturating_add(window as u64));
            }
        }
        if !out.is_empty() {
            let probs = self.run_rows(rows)?;
            for (w, p) in out.iter_mut().zip(probs) {
                w.prob = p;
            }
        }
        Ok(out)
    }

    /// Speech probability of exactly one window, advancing the state.
    pub fn run_window(&mut self, window: &[f32]) -> Result<f32> {
        if window.len() != self.model.window {
            return Err(Error::InvalidArgument(format!(
                "window of {} samples, expected {}",
                window.len(),
                self.model.window
            )));
        }
        let pending = std::mem::replace(&mut self.pending, window.to_vec());
        let mut rows = Vec::new();
        self.push_row(&mut rows);
        self.pending = pending;
        Ok(self.run_rows(rows)?.first().copied().unwrap_or(0.0))
    }

    /// Appends the context and the whole window in `pending` as one model input row, and
    /// keeps the window's tail as the next context.
    fn push_row(&mut self, rows: &mut Vec<f32>) {
        rows.extend_from_slice(&self.context);
        rows.extend_from_slice(&self.pending);
        let c = self.context.len();
        if c > 0 {
            let tail = &self.pending[self.pending.len() - c..];
            self.context.copy_from_slice(tail);
        }
    }

    fn run_rows(&mut self, rows: Vec<f32>) -> Result<Vec<f32>> {
        let job = VadJob {
            rows,
            state: std::mem::take(&mut self.state),
            probs: Vec::new(),
        };
        let model = &self.model;
        let done = model
            .batcher
            .submit(job, self.policy, |jobs| model.run_jobs(jobs));
        match done {
            Ok(job) => {
                self.state = job.state;
                Ok(job.probs)
            }
            Err(e) => {
                // The state went with the failed job: start over from silence.
                self.state = vec![0.0; model.state_len()];
                Err(e)
            }
        }
    }
}

impl Names {
    /// The Silero VAD contract (v5/v6): the window and the recurrent state in, the speech
    /// probability and the advanced state out.
    fn signature(&self) -> Signature {
        let mut sig = Signature::new()
            .input(TensorSig::f32(&self.input).rank(2).about("batch x samples"))
            .input(TensorSig::f32(&self.state).rank(3).about("2 x batch x 128"));
        if let Some(sr) = &self.sr {
            sig = sig.input(TensorSig::i64(sr).about("scalar"));
        }
        sig.only_these_inputs()
            .output(TensorSig::new(&self.output, Elem::Any))
            .output(TensorSig::new(&self.state_out, Elem::Any))
    }
}

impl ModelFamily for SileroVad {
    const NAME: &'static str = FAMILY;
    const SERVED_AS: Option<&'static str> = Some("vad");
}

//! Silero VAD (v5/v6 ONNX contract): speech probability for each 512-sample window at
//! 16 kHz (256 at 8 kHz), with a recurrent state and a short context of the previous
//! window's tail, both carried from one call to the next.

use std::path::PathBuf;

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use crate::model::ModelPackage;
use crate::runtime::{Runtime, SessionInfo, SessionOptions};
use crate::{Error, Result};

pub const FAMILY: &str = "silero-vad";

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

pub struct SileroVad {
    session: Session,
    info: SessionInfo,
    model_path: PathBuf,
    rate: u32,
    window: usize,
    context: usize,
    state_dims: [usize; 3],
    names: Names,
    state: Vec<f32>,
    /// `context` samples of history followed by the window being analysed.
    input: Vec<f32>,
    /// Samples received but not yet a whole window, and the stream position of the first.
    pending: Vec<f32>,
    pending_start: Option<u64>,
}

struct Names {
    input: String,
    state: String,
    sr: Option<String>,
    output: String,
    state_out: String,
}

impl std::fmt::Debug for SileroVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroVad")
            .field("model", &self.model_path)
            .field("rate", &self.rate)
            .field("window", &self.window)
            .field("provider", &self.info.active)
            .finish()
    }
}

impl SileroVad {
    /// Loads the package's `model` file and checks that its inputs and outputs are the ones
    /// this family needs, so a wrong model is refused at start rather than at the first chunk.
    pub fn load(pkg: &ModelPackage, rt: &Runtime, opts: &SessionOptions) -> Result<Self> {
        pkg.expect_family(FAMILY)?;
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
        let model_path = pkg.file("model")?;
        let names = Names {
            input: pkg.io_name("input", "input").to_string(),
            state: pkg.io_name("state", "state").to_string(),
            sr: Some(pkg.io_name("sr", "sr").to_string()).filter(|s| !s.is_empty()),
            output: pkg.io_name("output", "output").to_string(),
            state_out: pkg.io_name("state_out", "stateN").to_string(),
        };
        let (session, info) = rt.session(&model_path, opts)?;
        let state_dims = check_contract(&session, &names, &model_path)?;
        let n_state = state_dims.iter().product();
        Ok(Self {
            session,
            info,
            model_path,
            rate,
            window,
            context,
            state_dims,
            names,
            state: vec![0.0; n_state],
            input: vec![0.0; context + window],
            pending: Vec::with_capacity(window),
            pending_start: None,
        })
    }

    pub fn session_info(&self) -> &SessionInfo {
        &self.info
    }

    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    pub fn window_samples(&self) -> usize {
        self.window
    }

    /// Clears the recurrent state, the context and any partial window: a new stream.
    pub fn reset(&mut self) {
        self.state.iter_mut().for_each(|v| *v = 0.0);
        self.input.iter_mut().for_each(|v| *v = 0.0);
        self.pending.clear();
        self.pending_start = None;
    }

    /// Feeds samples that start at stream position `start`; returns one probability for
    /// every window completed by them. Samples that do not continue the previous call
    /// start a new run (the partial window before the jump is dropped, the state kept: use
    /// [`reset`](Self::reset) for a real discontinuity).
    pub fn process(&mut self, start: u64, samples: &[f32]) -> Result<Vec<WindowProb>> {
        let expected = self.pending_start.map(|s| s + self.pending.len() as u64);
        if expected != Some(start) {
            self.pending.clear();
            self.pending_start = Some(start);
        }
        let mut out = Vec::with_capacity(samples.len() / self.window + 1);
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (self.window - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == self.window {
                let w_start = self.pending_start.unwrap_or(start);
                let w = std::mem::take(&mut self.pending);
                let prob = self.run_window(&w)?;
                let level = level_db(&w);
                let clipped = clipped_count(&w);
                self.pending = w;
                self.pending.clear();
                self.pending_start = Some(w_start + self.window as u64);
                out.push(WindowProb {
                    start: w_start,
                    prob,
                    level_db: level,
                    clipped,
                });
            }
        }
        Ok(out)
    }

    /// Speech probability of exactly one window, advancing the state.
    pub fn run_window(&mut self, window: &[f32]) -> Result<f32> {
        if window.len() != self.window {
            return Err(Error::InvalidArgument(format!(
                "window of {} samples, expected {}",
                window.len(),
                self.window
            )));
        }
        let c = self.context;
        // The context is the tail of the previous window's samples.
        if c > 0 {
            let tail_from = self.input.len() - c;
            self.input.copy_within(tail_from.., 0);
        }
        self.input[c..].copy_from_slice(window);
        let input = TensorRef::from_array_view(([1usize, c + self.window], &self.input[..]))
            .map_err(|e| Error::Inference(e.to_string()))?;
        let state = TensorRef::from_array_view((self.state_dims, &self.state[..]))
            .map_err(|e| Error::Inference(e.to_string()))?;
        let sr = [self.rate as i64];
        let sr = TensorRef::from_array_view(((), &sr[..]))
            .map_err(|e| Error::Inference(e.to_string()))?;
        let mut inputs = ort::inputs![
            self.names.input.as_str() => input,
            self.names.state.as_str() => state,
        ];
        if let Some(n) = &self.names.sr {
            inputs.push((n.as_str().into(), sr.into()));
        }
        let outputs = self
            .session
            .run(inputs)
            .map_err(|e| Error::Inference(e.to_string()))?;
        let (_, prob) = outputs[self.names.output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::Inference(e.to_string()))?;
        let p = prob.first().copied().unwrap_or(0.0);
        let (_, new_state) = outputs[self.names.state_out.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::Inference(e.to_string()))?;
        if new_state.len() != self.state.len() {
            return Err(Error::Inference(format!(
                "state output has {} values, expected {}",
                new_state.len(),
                self.state.len()
            )));
        }
        self.state.copy_from_slice(new_state);
        Ok(p)
    }
}

fn describe(session: &Session) -> String {
    let ins: Vec<String> = session
        .inputs()
        .iter()
        .map(|i| format!("{}: {:?}", i.name(), i.dtype()))
        .collect();
    let outs: Vec<String> = session
        .outputs()
        .iter()
        .map(|o| o.name().to_string())
        .collect();
    format!("inputs [{}], outputs [{}]", ins.join(", "), outs.join(", "))
}

fn check_contract(session: &Session, names: &Names, path: &std::path::Path) -> Result<[usize; 3]> {
    let fail = |what: String| Error::ModelContract {
        path: path.to_path_buf(),
        family: FAMILY.into(),
        reason: format!(
            "{what}; expected inputs '{}' (f32, batch x samples), '{}' (f32, 2 x batch x 128){} \
             and outputs '{}', '{}'; the model has {}",
            names.input,
            names.state,
            names
                .sr
                .as_ref()
                .map(|s| format!(", '{s}' (i64 scalar)"))
                .unwrap_or_default(),
            names.output,
            names.state_out,
            describe(session)
        ),
    };
    let find_in = |n: &str| session.inputs().iter().find(|i| i.name() == n);
    let tensor = |vt: &ValueType| match vt {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.to_vec())),
        _ => None,
    };
    let input = find_in(&names.input).ok_or_else(|| fail(format!("no input '{}'", names.input)))?;
    match tensor(input.dtype()) {
        Some((TensorElementType::Float32, s)) if s.len() == 2 => {}
        _ => {
            return Err(fail(format!(
                "input '{}' is not a rank-2 f32 tensor",
                names.input
            )));
        }
    }
    let state = find_in(&names.state).ok_or_else(|| fail(format!("no input '{}'", names.state)))?;
    let dims = match tensor(state.dtype()) {
        Some((TensorElementType::Float32, s)) if s.len() == 3 => {
            let d = |i: usize, default: usize| if s[i] > 0 { s[i] as usize } else { default };
            [d(0, 2), 1, d(2, 128)]
        }
        _ => {
            return Err(fail(format!(
                "input '{}' is not a rank-3 f32 tensor",
                names.state
            )));
        }
    };
    if let Some(sr) = &names.sr {
        let i = find_in(sr).ok_or_else(|| fail(format!("no input '{sr}'")))?;
        if !matches!(tensor(i.dtype()), Some((TensorElementType::Int64, _))) {
            return Err(fail(format!("input '{sr}' is not an i64 tensor")));
        }
    }
    let expected_inputs = 2 + usize::from(names.sr.is_some());
    if session.inputs().len() != expected_inputs {
        return Err(fail(format!(
            "the model has {} inputs, expected {expected_inputs}",
            session.inputs().len()
        )));
    }
    for o in [&names.output, &names.state_out] {
        if !session.outputs().iter().any(|x| x.name() == o) {
            return Err(fail(format!("no output '{o}'")));
        }
    }
    Ok(dims)
}

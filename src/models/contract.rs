//! One contract for every model family: what a family's model must look like is declared once
//! as data (a [`Signature`]: tensor names, element types, ranks, fixed sizes), and one check
//! holds an ONNX session — or, for a model served remotely, the server's metadata — to it.
//!
//! A family implements [`ModelFamily`] and gets, through its provided functions, the one way
//! to open a package ([`ModelFamily::open`]), to load a checked session from the process-wide
//! pool ([`ModelFamily::session`]) and to connect to its model on an inference server
//! ([`ModelFamily::connect`], [`ModelFamily::connect_served`]); the model then runs on
//! either through [`crate::models::exec`].

use std::path::Path;
use std::sync::Arc;

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use crate::models::package::ModelPackage;
use crate::models::remote::{RemoteModel, ServedModel};
use crate::models::runtime::{Runtime, SessionOptions, SharedSession};
use crate::{Error, Result};

/// The element type a tensor must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    F32,
    I64,
    Bool,
    /// Any element type (the family does not care, or converts).
    Any,
}

impl Elem {
    fn accepts(self, t: TensorElementType) -> bool {
        match self {
            Elem::F32 => t == TensorElementType::Float32,
            Elem::I64 => t == TensorElementType::Int64,
            Elem::Bool => t == TensorElementType::Bool,
            Elem::Any => true,
        }
    }

    /// The KServe v2 data type of the element type, as a server's metadata names it.
    pub fn kserve(self) -> Option<&'static str> {
        match self {
            Elem::F32 => Some("FP32"),
            Elem::I64 => Some("INT64"),
            Elem::Bool => Some("BOOL"),
            Elem::Any => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Elem::F32 => "f32",
            Elem::I64 => "i64",
            Elem::Bool => "bool",
            Elem::Any => "any",
        }
    }
}

/// A size a tensor must have in one dimension (where the model fixes it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dim {
    /// The dimension; negative counts from the last (-1: the last).
    at: isize,
    size: i64,
    /// What the dimension counts ("scores per window"), for the message.
    what: Option<String>,
    /// Why it must have that size ("the manifest implies 1000"), for the message.
    why: String,
}

/// One input or output of a model: its name, element type and, where the family needs them,
/// its rank and the sizes it fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSig {
    name: String,
    elem: Elem,
    rank: Option<usize>,
    dims: Vec<Dim>,
    about: Option<String>,
}

impl TensorSig {
    pub fn new(name: impl Into<String>, elem: Elem) -> Self {
        Self {
            name: name.into(),
            elem,
            rank: None,
            dims: Vec::new(),
            about: None,
        }
    }

    pub fn f32(name: impl Into<String>) -> Self {
        Self::new(name, Elem::F32)
    }

    pub fn i64(name: impl Into<String>) -> Self {
        Self::new(name, Elem::I64)
    }

    pub fn bool(name: impl Into<String>) -> Self {
        Self::new(name, Elem::Bool)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tensor has exactly `rank` dimensions.
    pub fn rank(mut self, rank: usize) -> Self {
        self.rank = Some(rank);
        self
    }

    /// What the dimensions mean ("batch x samples"), for messages.
    pub fn about(mut self, about: impl Into<String>) -> Self {
        self.about = Some(about.into());
        self
    }

    /// Dimension `at` (negative: from the last) is `size` where the model fixes it, because
    /// of `why`.
    pub fn dim(mut self, at: isize, size: i64, why: impl Into<String>) -> Self {
        self.dims.push(Dim {
            at,
            size,
            what: None,
            why: why.into(),
        });
        self
    }

    /// [`dim`](Self::dim) for a dimension that counts `what` ("scores per window").
    pub fn dim_of(mut self, at: isize, size: i64, what: &str, why: impl Into<String>) -> Self {
        self.dims.push(Dim {
            at,
            size,
            what: Some(what.into()),
            why: why.into(),
        });
        self
    }

    fn describe(&self) -> String {
        let mut s = format!("'{}' ({}", self.name, self.elem.as_str());
        if let Some(r) = self.rank {
            s.push_str(&format!(", rank {r}"));
        }
        if let Some(a) = &self.about {
            s.push_str(&format!(", {a}"));
        }
        s.push(')');
        s
    }

    fn kind(&self) -> String {
        match self.rank {
            Some(r) => format!("a rank-{r} {} tensor", self.elem.as_str()),
            None => match self.elem {
                Elem::Any => "a tensor".into(),
                Elem::Bool => "a bool tensor".into(),
                e => format!("an {} tensor", e.as_str()),
            },
        }
    }
}

/// A count of inputs named alike that must agree with the manifest (the layers of a KV cache).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Count {
    suffix: String,
    expected: usize,
    what: String,
}

/// What a family's model must look like: declared once, checked against a session by
/// [`Signature::check`] and against a server's model by [`Signature::check_served`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signature {
    inputs: Vec<TensorSig>,
    outputs: Vec<TensorSig>,
    only_these_inputs: bool,
    counts: Vec<Count>,
}

/// The shapes of the declared tensors as the checked model gives them (-1: any size), and the
/// names of all its inputs, for families that adapt to what the model has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    shapes: Vec<(String, Vec<i64>)>,
    inputs: Vec<String>,
}

impl Checked {
    /// The shape of the declared input or output `name`.
    pub fn shape(&self, name: &str) -> Option<&[i64]> {
        self.shapes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.as_slice())
    }

    /// Whether the model has an input `name` (declared or not).
    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|n| n == name)
    }
}

impl Signature {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn input(mut self, t: TensorSig) -> Self {
        self.inputs.push(t);
        self
    }

    pub fn output(mut self, t: TensorSig) -> Self {
        self.outputs.push(t);
        self
    }

    /// The model has no inputs besides the declared ones.
    pub fn only_these_inputs(mut self) -> Self {
        self.only_these_inputs = true;
        self
    }

    /// The model has `expected` inputs whose names end in `suffix` (`what` names them in
    /// the message: "decoder layers").
    pub fn count_inputs(mut self, suffix: &str, expected: usize, what: &str) -> Self {
        self.counts.push(Count {
            suffix: suffix.into(),
            expected,
            what: what.into(),
        });
        self
    }

    fn describe(&self) -> String {
        let list = |v: &[TensorSig]| {
            v.iter()
                .map(TensorSig::describe)
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "inputs {} and outputs {}",
            list(&self.inputs),
            list(&self.outputs)
        )
    }

    /// Holds `session` to the signature; the reason it fails, for a person to act on, names
    /// what is wrong, what the signature expects and what the model has.
    pub fn check(&self, session: &Session) -> std::result::Result<Checked, String> {
        let tensor = |vt: &ValueType| match vt {
            ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.to_vec())),
            _ => None,
        };
        let fail = |what: String| {
            format!(
                "{what}; expected {}; the model has {}",
                self.describe(),
                describe_session(session)
            )
        };
        let mut checked = Checked {
            shapes: Vec::new(),
            inputs: session
                .inputs()
                .iter()
                .map(|i| i.name().to_string())
                .collect(),
        };
        for (kind, want, have) in [
            ("input", &self.inputs, session.inputs()),
            ("output", &self.outputs, session.outputs()),
        ] {
            for t in want {
                let Some(found) = have.iter().find(|h| h.name() == t.name) else {
                    return Err(fail(format!("no {kind} '{}'", t.name)));
                };
                let Some((ty, shape)) = tensor(found.dtype()) else {
                    return Err(fail(format!("{kind} '{}' is not a tensor", t.name)));
                };
                if !t.elem.accepts(ty) || t.rank.is_some_and(|r| r != shape.len()) {
                    let about = t
                        .about
                        .as_ref()
                        .map(|a| format!(" ({a})"))
                        .unwrap_or_default();
                    return Err(fail(format!(
                        "{kind} '{}' must be {}{about}, found {ty:?} of rank {}",
                        t.name,
                        t.kind(),
                        shape.len()
                    )));
                }
                for d in &t.dims {
                    let k = if d.at < 0 {
                        shape.len().checked_sub(d.at.unsigned_abs())
                    } else {
                        Some(d.at as usize).filter(|&k| k < shape.len())
                    };
                    let Some(k) = k else { continue };
                    let have = shape[k];
                    if have > 0 && have != d.size {
                        let what = match &d.what {
                            Some(w) => format!("{kind} '{}' has {have} {w}", t.name),
                            None => format!("{kind} '{}' dimension {k} is {have}", t.name),
                        };
                        return Err(fail(format!("{what}, {}", d.why)));
                    }
                }
                checked.shapes.push((t.name.clone(), shape));
            }
        }
        if self.only_these_inputs && session.inputs().len() != self.inputs.len() {
            return Err(fail(format!(
                "the model has {} inputs, expected {}",
                session.inputs().len(),
                self.inputs.len()
            )));
        }
        for c in &self.counts {
            let n = checked
                .inputs
                .iter()
                .filter(|n| n.ends_with(&c.suffix))
                .count();
            if n != c.expected {
                return Err(fail(format!(
                    "{n} {}, the manifest says {}",
                    c.what, c.expected
                )));
            }
        }
        Ok(checked)
    }

    /// Holds a server's model to the signature: the names and data types of its inputs and
    /// outputs (see [`ServedModel::expect`]).
    pub fn check_served(&self, served: &ServedModel, address: &str) -> Result<()> {
        let typed = |v: &[TensorSig]| -> Vec<(String, &'static str)> {
            v.iter()
                .filter_map(|t| Some((t.name.clone(), t.elem.kserve()?)))
                .collect()
        };
        let (i, o) = (typed(&self.inputs), typed(&self.outputs));
        let i: Vec<(&str, &str)> = i.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        let o: Vec<(&str, &str)> = o.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        served.expect(address, &i, &o)
    }
}

/// A session's inputs and outputs with their types, for messages.
fn describe_session(session: &Session) -> String {
    let list = |v: &[ort::value::Outlet]| {
        v.iter()
            .map(|x| match x.dtype() {
                ValueType::Tensor { ty, shape, .. } => {
                    format!("'{}' ({ty:?} {:?})", x.name(), shape.to_vec())
                }
                other => format!("'{}' ({other:?})", x.name()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "inputs [{}] and outputs [{}]",
        list(session.inputs()),
        list(session.outputs())
    )
}

/// A model family: the `family` its packages name and what its models must look like. The
/// provided functions are the one way every family opens a package, loads and checks its
/// sessions (shared by every stream of the process) and connects to an inference server.
pub trait ModelFamily {
    /// The `family` of its packages' manifests (one of [`crate::models::family`]).
    const NAME: &'static str;
    /// The role its models have on an inference server (`vad`, `tagger`, `asr`), for the
    /// families that can run there.
    const SERVED_AS: Option<&'static str> = None;

    /// Refuses a package of another family.
    fn open(pkg: &ModelPackage) -> Result<()> {
        pkg.expect_family(Self::NAME)
    }

    /// The error for a model at `path` that breaks the family's contract.
    fn contract_error(path: &Path, reason: String) -> Error {
        Error::ModelContract {
            path: path.to_path_buf(),
            family: Self::NAME.into(),
            reason,
        }
    }

    /// Holds the session of the model at `path` to `sig`.
    fn check(session: &SharedSession, path: &Path, sig: &Signature) -> Result<Checked> {
        sig.check(&session.lock())
            .map_err(|reason| Self::contract_error(path, reason))
    }

    /// The session of the package's file `key` from the process-wide pool (see
    /// [`Runtime::shared_session`]), held to `sig`.
    fn session(
        rt: &Runtime,
        pkg: &ModelPackage,
        key: &str,
        opts: &SessionOptions,
        sig: &Signature,
    ) -> Result<(Arc<SharedSession>, Checked)> {
        let path = pkg.file(key)?;
        let session = rt.shared_session(&path, opts)?;
        let checked = Self::check(&session, &path, sig)?;
        Ok((session, checked))
    }

    /// The package's model on the server `opts` names, if any, checked against the local
    /// `session` it falls back on (same inputs, outputs, types and sizes).
    fn connect(
        pkg: &ModelPackage,
        opts: &SessionOptions,
        session: &SharedSession,
    ) -> Result<Option<RemoteModel>> {
        let (Some(spec), Some(role)) = (opts.remote.as_ref(), Self::SERVED_AS) else {
            return Ok(None);
        };
        RemoteModel::connect(spec, role, &pkg.folder_name(), session).map(Some)
    }

    /// The package's model on the server `opts` names, if any, for a model with no local
    /// session of the same shape (a decode loop on the server), held to `served`.
    fn connect_served(
        pkg: &ModelPackage,
        opts: &SessionOptions,
        served: &Signature,
    ) -> Result<Option<RemoteModel>> {
        let (Some(spec), Some(role)) = (opts.remote.as_ref(), Self::SERVED_AS) else {
            return Ok(None);
        };
        RemoteModel::connect_checked(spec, role, &pkg.folder_name(), |model, address| {
            served.check_served(model, address)
        })
        .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::remote::TensorSpec;

    fn served(inputs: &[(&str, &str)], outputs: &[(&str, &str)]) -> ServedModel {
        let specs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(n, d)| TensorSpec {
                    name: n.to_string(),
                    datatype: d.to_string(),
                    shape: vec![-1],
                })
                .collect()
        };
        ServedModel {
            name: "m".into(),
            inputs: specs(inputs),
            outputs: specs(outputs),
        }
    }

    #[test]
    fn a_served_model_is_held_to_the_declared_names_and_types() {
        let sig = Signature::new()
            .input(TensorSig::f32("audio"))
            .input(TensorSig::new("anything", Elem::Any))
            .output(TensorSig::i64("tokens"));
        let ok = served(&[("audio", "FP32")], &[("tokens", "INT64")]);
        sig.check_served(&ok, "host:1").expect("matches");
        let renamed = served(&[("waveform", "FP32")], &[("tokens", "INT64")]);
        let e = sig
            .check_served(&renamed, "host:1")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no input named audio") && e.contains("waveform"),
            "{e}"
        );
        let retyped = served(&[("audio", "FP32")], &[("tokens", "FP32")]);
        let e = sig
            .check_served(&retyped, "host:1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tokens is FP32") && e.contains("INT64"), "{e}");
    }

    #[test]
    fn signatures_describe_what_they_expect() {
        let sig = Signature::new()
            .input(TensorSig::f32("input").rank(2).about("batch x samples"))
            .output(TensorSig::new("output", Elem::Any));
        assert_eq!(
            sig.describe(),
            "inputs 'input' (f32, rank 2, batch x samples) and outputs 'output' (any)"
        );
        assert_eq!(TensorSig::i64("x").rank(1).kind(), "a rank-1 i64 tensor");
    }
}

//! Where a model runs: on the local ONNX Runtime session, or on the inference server with
//! the local session as the fall back. The one place that knows both [`runtime`] and
//! [`remote`], so neither needs the other's sessions.
//!
//! [`runtime`]: crate::models::runtime
//! [`remote`]: crate::models::remote

use std::borrow::Cow;

use crate::models::remote::{Data, Input, RemoteModel, RemoteSpec, ServedModel, Values};
use crate::models::runtime::SharedSession;
use crate::{Error, Result};

impl RemoteModel {
    /// Connects the model of `role` from package folder `package` to the server `spec`
    /// names and checks the server's inputs and outputs against `session`'s. An unknown
    /// model or a mismatch is an error whatever the fall back; an unreachable server is one
    /// only with `Fallback::Error` (with `Local` the model starts locally, and moves to the
    /// server once it answers).
    pub fn connect(
        spec: &RemoteSpec,
        role: &str,
        package: &str,
        session: &SharedSession,
    ) -> Result<Self> {
        Self::connect_checked(spec, role, package, |served, address| {
            check_metadata(served, &session.lock(), address)
        })
    }

    /// Runs the model on the server, or locally on `session` when the server is down and
    /// the fall back allows it, and returns the f32 outputs named in `outputs`, in order.
    pub fn run(
        &self,
        session: &SharedSession,
        inputs: &[Input<'_>],
        outputs: &[&str],
    ) -> Result<Vec<Vec<f32>>> {
        self.attempt(
            |me| {
                me.infer(inputs, outputs)?
                    .into_iter()
                    .map(|o| match o.values {
                        Values::F32(v) => Ok(v),
                        Values::I64(_) => Err(Error::RemoteModel {
                            address: me.address().to_string(),
                            model: me.name().to_string(),
                            reason: format!("output {} is INT64, expected FP32", o.name),
                        }),
                    })
                    .collect()
            },
            || run_local(session, inputs, outputs),
        )
    }
}

/// Runs `inputs` through a local session, or through `remote` when one is given.
pub fn run(
    session: &SharedSession,
    remote: Option<&RemoteModel>,
    inputs: &[Input<'_>],
    outputs: &[&str],
) -> Result<Vec<Vec<f32>>> {
    match remote {
        Some(r) => r.run(session, inputs, outputs),
        None => run_local(session, inputs, outputs),
    }
}

/// The same call on local ONNX Runtime.
pub fn run_local(
    session: &SharedSession,
    inputs: &[Input<'_>],
    outputs: &[&str],
) -> Result<Vec<Vec<f32>>> {
    let infer = |e: ort::Error| Error::Inference(e.to_string());
    let mut feed: Vec<(Cow<'_, str>, ort::session::SessionInputValue<'_>)> = Vec::new();
    for i in inputs {
        let value = match i.data {
            Data::F32(d) => ort::value::TensorRef::from_array_view((i.shape.clone(), d))
                .map_err(infer)?
                .into(),
            Data::I64(d) => ort::value::TensorRef::from_array_view((i.shape.clone(), d))
                .map_err(infer)?
                .into(),
            Data::Bool(d) => ort::value::Tensor::from_array((i.shape.clone(), d.to_vec()))
                .map_err(infer)?
                .into(),
        };
        feed.push((Cow::Borrowed(i.name), value));
    }
    let mut guard = session.lock();
    let out = guard.run(feed).map_err(infer)?;
    outputs
        .iter()
        .map(|name| {
            let value = out
                .get(*name)
                .ok_or_else(|| Error::Inference(format!("the model has no output named {name}")))?;
            let (_, data) = value.try_extract_tensor::<f32>().map_err(infer)?;
            Ok(data.to_vec())
        })
        .collect()
}

fn datatype(t: &ort::value::ValueType) -> Option<(&'static str, Vec<i64>)> {
    match t {
        ort::value::ValueType::Tensor { ty, shape, .. } => {
            let name = match ty {
                ort::value::TensorElementType::Float32 => "FP32",
                ort::value::TensorElementType::Float16 => "FP16",
                ort::value::TensorElementType::Int64 => "INT64",
                ort::value::TensorElementType::Int32 => "INT32",
                ort::value::TensorElementType::Bool => "BOOL",
                _ => return None,
            };
            Some((name, shape.iter().copied().collect()))
        }
        _ => None,
    }
}

/// Refuses a server model whose inputs and outputs are not the local model's: a name
/// missing, another data type, another rank, or a fixed size that differs. A server model
/// with batching shows a leading -1 the local graph may not have; a local scalar is served
/// as one element (Triton has no rank-0 tensors).
fn check_metadata(
    meta: &ServedModel,
    session: &ort::session::Session,
    address: &str,
) -> Result<()> {
    // (name, KServe data type, shape) of the local graph's tensors of a known type.
    let local = |values: &[ort::value::Outlet]| -> Vec<(String, &'static str, Vec<i64>)> {
        values
            .iter()
            .filter_map(|v| {
                let (dt, shape) = datatype(v.dtype())?;
                Some((v.name().to_string(), dt, shape))
            })
            .collect()
    };
    let (inputs, outputs) = (local(session.inputs()), local(session.outputs()));
    let want_in: Vec<(&str, &str)> = inputs.iter().map(|(n, dt, _)| (n.as_str(), *dt)).collect();
    let want_out: Vec<(&str, &str)> = outputs.iter().map(|(n, dt, _)| (n.as_str(), *dt)).collect();
    meta.expect(address, &want_in, &want_out)?;
    for (kind, local, served) in [
        ("input", &inputs, &meta.inputs),
        ("output", &outputs, &meta.outputs),
    ] {
        for (name, _, shape) in local {
            let Some(s) = served.iter().find(|t| t.name == *name) else {
                continue;
            };
            if !shapes_agree(shape, &s.shape) {
                return Err(Error::RemoteModel {
                    address: address.to_string(),
                    model: meta.name.clone(),
                    reason: format!(
                        "{kind} {name} has shape {:?} on the server but {shape:?} in the local \
                         model (-1: any size)",
                        s.shape
                    ),
                });
            }
        }
    }
    Ok(())
}

fn shapes_agree(local: &[i64], served: &[i64]) -> bool {
    if local.is_empty() {
        return served.is_empty() || served == [1] || served == [-1, 1] || served == [-1];
    }
    let served = if served.len() == local.len() + 1 && served[0] == -1 {
        &served[1..]
    } else {
        served
    };
    served.len() == local.len()
        && local
            .iter()
            .zip(served)
            .all(|(&a, &b)| a < 0 || b < 0 || a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(shapes_agree(&[-1, 576], &[-1, 576]));
        assert!(shapes_agree(&[2, -1, 128], &[2, -1, 128]));
        assert!(!shapes_agree(&[2, -1, 128], &[3, 1]));
        assert!(shapes_agree(&[], &[1]));
        assert!(shapes_agree(&[16000], &[-1, 16000]));
        assert!(!shapes_agree(&[16000], &[-1, 8000]));
    }
}

//! The gRPC side: one channel per server address on a small runtime of the client's own,
//! so the callers (the elements' worker threads) stay plain threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

use super::proto;
use super::{Data, Input, Output, RemoteSpec, Values};
use crate::{Error, Result};

const SERVICE: &str = "/inference.GRPCInferenceService/";

/// HTTP/2 pings on an idle connection: a server that went away is noticed between chunks
/// rather than by the next request's timeout.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The client runtime, alive while some [`Client`] is: the last one to go shuts it down, so
/// a process that stops using servers keeps no threads for them.
struct Rt(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for Rt {
    type Target = tokio::runtime::Runtime;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("taken only on drop")
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        // Without waiting: the last client may go on one of the runtime's own threads (a
        // probe's), which cannot wait for itself; a request in flight is cut off at once.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

static RUNTIME: Mutex<Weak<Rt>> = Mutex::new(Weak::new());

fn runtime() -> Result<Arc<Rt>> {
    let mut slot = RUNTIME.lock();
    if let Some(rt) = slot.upgrade() {
        return Ok(rt);
    }
    // Two threads carry every connection of the process: the work is I/O, the inference
    // happens on the server.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lalm-grpc")
        .enable_all()
        .build()
        .map_err(|e| Error::Inference(format!("cannot start the gRPC client runtime: {e}")))?;
    let rt = Arc::new(Rt(Some(rt)));
    *slot = Arc::downgrade(&rt);
    Ok(rt)
}

/// A KServe v2 gRPC client for one server address.
pub struct Client {
    /// Keeps the runtime up while this client lives.
    rt: Arc<Rt>,
    address: String,
    channel: Channel,
    timeout: Duration,
    slots: Arc<Semaphore>,
    key: (String, Duration, usize),
}

// Clients by address, timeout and in-flight bound: every model and stream of the process
// on the same server shares one connection.
static CLIENTS: Mutex<Vec<Weak<Client>>> = Mutex::new(Vec::new());

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .finish()
    }
}

/// `host:port` or an `http://` URL to the URI the channel connects to.
fn endpoint_uri(address: &str) -> Result<String> {
    let address = address.trim();
    let bad = |why: &str| Error::RemoteAddress {
        address: address.to_string(),
        reason: why.to_string(),
    };
    if address.is_empty() {
        return Err(bad("it is empty"));
    }
    let uri = if address.contains("://") {
        if !address.starts_with("http://") {
            return Err(bad(
                "only plain http:// (h2c) is spoken; put TLS in front of the server or use host:port",
            ));
        }
        address.to_string()
    } else {
        format!("http://{address}")
    };
    let parsed: tonic::codegen::http::Uri = uri
        .parse()
        .map_err(|e: tonic::codegen::http::uri::InvalidUri| bad(&e.to_string()))?;
    if parsed.port_u16().is_none() {
        return Err(bad(
            "it names no port (Triton's gRPC port is 8001 by default)",
        ));
    }
    Ok(uri)
}

impl Client {
    /// The process's client for `spec`'s address, built on first use. The connection itself
    /// is made on the first request and remade after a failure.
    pub fn shared(spec: &RemoteSpec) -> Result<Arc<Client>> {
        let key = (
            spec.address.trim().to_string(),
            spec.timeout,
            spec.max_in_flight.max(1),
        );
        let mut clients = CLIENTS.lock();
        clients.retain(|w| w.strong_count() > 0);
        if let Some(c) = clients
            .iter()
            .filter_map(Weak::upgrade)
            .find(|c| c.key == key)
        {
            return Ok(c);
        }
        let uri = endpoint_uri(&spec.address)?;
        let endpoint = Endpoint::from_shared(uri).map_err(|e| Error::RemoteAddress {
            address: spec.address.clone(),
            reason: e.to_string(),
        })?;
        let endpoint = endpoint
            .connect_timeout(spec.timeout)
            .timeout(spec.timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEP_ALIVE)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let rt = runtime()?;
        let channel = {
            let _inside = rt.enter();
            endpoint.connect_lazy()
        };
        let client = Arc::new(Client {
            rt: rt.clone(),
            address: key.0.clone(),
            channel,
            timeout: spec.timeout,
            slots: Arc::new(Semaphore::new(key.2)),
            key,
        });
        clients.push(Arc::downgrade(&client));
        Ok(client)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    fn unavailable(&self, reason: impl Into<String>) -> Error {
        Error::RemoteUnavailable {
            address: self.address.clone(),
            reason: reason.into(),
        }
    }

    /// One unary call, holding an in-flight slot, within the timeout.
    fn call<Q, R>(&self, method: &'static str, req: Q) -> Result<R>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        let rt = &self.rt;
        let channel = self.channel.clone();
        let slots = self.slots.clone();
        let timeout = self.timeout;
        let path = PathAndQuery::try_from(format!("{SERVICE}{method}"))
            .map_err(|e| Error::Inference(e.to_string()))?;
        let outcome = rt.block_on(async move {
            tokio::time::timeout(timeout, async move {
                let _slot = slots
                    .acquire_owned()
                    .await
                    .map_err(|_| tonic::Status::unavailable("client closed"))?;
                let mut grpc = tonic::client::Grpc::new(channel);
                grpc.ready()
                    .await
                    .map_err(|e| tonic::Status::unavailable(transport_reason(&e)))?;
                let mut request = tonic::Request::new(req);
                request.set_timeout(timeout);
                let codec = tonic::codec::ProstCodec::<Q, R>::default();
                grpc.unary(request, path, codec)
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await
        });
        match outcome {
            Err(_) => Err(self.unavailable(format!("no answer within {} ms", timeout.as_millis()))),
            Ok(Ok(r)) => Ok(r),
            Ok(Err(status)) => Err(self.status_error(method, status)),
        }
    }

    fn status_error(&self, method: &str, status: tonic::Status) -> Error {
        use tonic::Code;
        let message = if status.message().is_empty() {
            status.code().description().to_string()
        } else {
            status.message().to_string()
        };
        match status.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Internal => {
                // Transport failures carry their cause in the source chain, not the message.
                let detail = transport_reason(&status);
                self.unavailable(if detail.is_empty() || message.contains(&detail) {
                    message
                } else {
                    format!("{message}: {detail}")
                })
            }
            Code::Unimplemented => Error::RemoteModel {
                address: self.address.clone(),
                model: String::new(),
                reason: format!(
                    "the server does not implement {method}: is this a KServe v2 (Triton) gRPC port? ({message})"
                ),
            },
            _ => Error::RemoteRefused {
                address: self.address.clone(),
                reason: message,
            },
        }
    }

    /// The model's metadata: its inputs and outputs as the server sees them.
    pub(super) fn metadata(
        &self,
        name: &str,
        version: &str,
    ) -> Result<proto::ModelMetadataResponse> {
        self.call(
            "ModelMetadata",
            proto::ModelMetadataRequest {
                name: name.to_string(),
                version: version.to_string(),
            },
        )
        .map_err(|e| match e {
            Error::RemoteRefused { address, reason } => Error::RemoteModel {
                address,
                model: name.to_string(),
                reason,
            },
            other => other,
        })
    }

    /// Asks in the background whether the model is served again; sets `ok` when it is and
    /// clears `running` when the answer (or its absence) is in.
    pub(super) fn probe(
        self: &Arc<Self>,
        name: &str,
        version: &str,
        ok: Arc<AtomicBool>,
        running: Arc<AtomicBool>,
    ) {
        // A probe does not keep its client (and the runtime) alive: once the models that
        // use the server are gone, the answer is not wanted.
        let me = Arc::downgrade(self);
        let (name, version) = (name.to_string(), version.to_string());
        // The metadata call runs block_on, which a runtime thread may not do: the probe
        // gets a thread of the blocking pool.
        self.rt.spawn_blocking(move || {
            if let Some(me) = me.upgrade()
                && me.metadata(&name, &version).is_ok()
            {
                ok.store(true, Ordering::Release);
            }
            running.store(false, Ordering::Release);
        });
    }

    /// Runs the model on the server and returns the outputs named in `outputs`, with the
    /// protobuf bytes of the request and of the answer.
    pub(super) fn infer(
        &self,
        name: &str,
        version: &str,
        inputs: &[Input<'_>],
        outputs: &[&str],
    ) -> Result<(Vec<Output>, usize, usize)> {
        let mut req = proto::ModelInferRequest {
            model_name: name.to_string(),
            model_version: version.to_string(),
            ..Default::default()
        };
        for i in inputs {
            // A scalar travels as one element: Triton has no rank-0 tensors, and the
            // repository writer declares such inputs with dims [1].
            let shape: Vec<i64> = if i.shape.is_empty() {
                vec![1]
            } else {
                i.shape.iter().map(|&d| d as i64).collect()
            };
            let (datatype, raw) = match i.data {
                Data::F32(d) => ("FP32", d.iter().flat_map(|v| v.to_le_bytes()).collect()),
                Data::I64(d) => ("INT64", d.iter().flat_map(|v| v.to_le_bytes()).collect()),
                Data::Bool(d) => ("BOOL", d.iter().map(|&v| u8::from(v)).collect()),
            };
            req.inputs.push(proto::InferInputTensor {
                name: i.name.to_string(),
                datatype: datatype.to_string(),
                shape,
            });
            req.raw_input_contents.push(raw);
        }
        for o in outputs {
            req.outputs.push(proto::InferRequestedOutputTensor {
                name: o.to_string(),
            });
        }
        let sent = prost::Message::encoded_len(&req);
        let resp: proto::ModelInferResponse = self.call("ModelInfer", req)?;
        let received = prost::Message::encoded_len(&resp);
        let refused = |reason: String| Error::RemoteModel {
            address: self.address.clone(),
            model: name.to_string(),
            reason,
        };
        let values = outputs
            .iter()
            .map(|want| {
                let (idx, t) = resp
                    .outputs
                    .iter()
                    .enumerate()
                    .find(|(_, t)| t.name == *want)
                    .ok_or_else(|| refused(format!("the answer has no output {want}")))?;
                let n: i64 = t.shape.iter().product();
                let raw = resp.raw_output_contents.get(idx);
                let values = match (t.datatype.as_str(), raw) {
                    ("FP32", Some(raw)) => Values::F32(
                        raw.chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                            .collect(),
                    ),
                    ("INT64", Some(raw)) => Values::I64(
                        raw.chunks_exact(8)
                            .map(|b| {
                                i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                            })
                            .collect(),
                    ),
                    ("FP32", None) => Values::F32(
                        t.contents
                            .as_ref()
                            .map(|c| c.fp32_contents.clone())
                            .unwrap_or_default(),
                    ),
                    ("INT64", None) => Values::I64(
                        t.contents
                            .as_ref()
                            .map(|c| c.int64_contents.clone())
                            .unwrap_or_default(),
                    ),
                    (other, _) => {
                        return Err(refused(format!(
                            "output {want} is {other}, expected FP32 or INT64"
                        )));
                    }
                };
                if values.len() as i64 != n {
                    return Err(refused(format!(
                        "output {want} has {} values for shape {:?}",
                        values.len(),
                        t.shape
                    )));
                }
                Ok(Output {
                    name: want.to_string(),
                    shape: t.shape.clone(),
                    values,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((values, sent, received))
    }
}

/// The innermost cause of a transport failure ("Connection refused (os error 111)"), which
/// is what a person needs to see.
fn transport_reason(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            endpoint_uri("127.0.0.1:8001").unwrap(),
            "http://127.0.0.1:8001"
        );
        assert_eq!(
            endpoint_uri("http://triton.pool:8001").unwrap(),
            "http://triton.pool:8001"
        );
        for bad in ["", "127.0.0.1", "https://x:1", "no such host:1"] {
            assert!(endpoint_uri(bad).is_err(), "{bad:?} accepted");
        }
    }
}

#[cfg(test)]
mod lifetime {
    use super::*;

    /// Threads of this process named `name`.
    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                    .filter(|c| c.trim() == name)
                    .count()
            })
            .unwrap_or(0)
    }

    #[test]
    fn the_runtime_and_its_probes_go_with_the_last_client() {
        let spec = RemoteSpec {
            // Nothing listens on port 1: the probe fails, the client never connects.
            address: "127.0.0.1:1".into(),
            timeout: Duration::from_millis(300),
            max_in_flight: 1,
            models: Vec::new(),
            fallback: Default::default(),
        };
        let client = Client::shared(&spec).expect("a client");
        // The runtime's threads name themselves as they start: wait for one.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while threads_named("lalm-grpc") == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the runtime never ran"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let (ok, running) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(true)),
        );
        client.probe("m", "", ok.clone(), running.clone());
        drop(client);
        // The runtime shuts down without waiting for anyone: its threads end on their own.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while threads_named("lalm-grpc") > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the gRPC threads outlive every client"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!ok.load(Ordering::Acquire));
    }
}

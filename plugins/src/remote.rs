//! The inference-server properties of the elements whose models can run on a KServe v2
//! (Triton) server, and the bus messages that say when a server is lost or back.

use gst::glib;
use gst::prelude::*;
use soundflow::models::remote::{Fallback, RemoteSpec, RemoteStatus};

/// What a model does when its server cannot be reached.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstLalmServerFallback")]
pub enum ServerFallback {
    #[default]
    #[enum_value(
        name = "Run on local ONNX Runtime (with a warning) until the server answers again",
        nick = "local"
    )]
    Local = 0,
    #[enum_value(name = "Fail the stream with an error", nick = "error")]
    Error = 1,
}

#[derive(Debug, Clone)]
pub struct RemoteSettings {
    pub server: Option<String>,
    pub models: String,
    pub timeout_ms: u32,
    pub fallback: ServerFallback,
    pub max_in_flight: u32,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        Self {
            server: None,
            models: String::new(),
            timeout_ms: RemoteSpec::DEFAULT_TIMEOUT.as_millis() as u32,
            fallback: ServerFallback::Local,
            max_in_flight: RemoteSpec::DEFAULT_MAX_IN_FLIGHT as u32,
        }
    }
}

pub fn register_types() {
    ServerFallback::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
}

/// The properties; `roles` names the model roles `server-models` takes.
pub fn param_specs(roles: &str) -> Vec<glib::ParamSpec> {
    vec![
        glib::ParamSpecString::builder("server")
            .nick("Inference server")
            .blurb("host:port of a KServe v2 gRPC inference server (NVIDIA Triton's gRPC port, 8001 by default) to run the models on; unset runs them on local ONNX Runtime. The local model files are still loaded: they check the server's models and are the fall back")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("server-models")
            .nick("Server model names")
            .blurb(&format!(
                "Model names on the server, as role=name[:version] separated by commas (roles: {roles}; a package name also works as the key); a model not listed is asked for under its package's folder name, which is what scripts/triton-repo.py calls it, newest version"
            ))
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("server-timeout-ms")
            .nick("Server timeout")
            .blurb("The most one request to the server may take, connecting and waiting for a request slot included; a request over it counts as the server being unreachable")
            .minimum(1)
            .maximum(600_000)
            .default_value(RemoteSpec::DEFAULT_TIMEOUT.as_millis() as u32)
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default("server-fallback", ServerFallback::Local)
            .nick("Server fall back")
            .blurb("When the server cannot be reached (at start or mid-stream): local runs the models on local ONNX Runtime with a warning message and goes back to the server once it answers (an info message says so); error fails the stream. An unknown model or one whose inputs do not match is an error either way")
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("server-max-in-flight")
            .nick("Requests in flight")
            .blurb("The most requests outstanding at once to one server address, over every model and stream of the process (the first element to connect sets it)")
            .minimum(1)
            .maximum(4096)
            .default_value(RemoteSpec::DEFAULT_MAX_IN_FLIGHT as u32)
            .mutable_ready()
            .build(),
    ]
}

impl RemoteSettings {
    /// Sets the property `name` if it is one of these; false if it is not.
    pub fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        match name {
            "server" => {
                self.server = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            }
            "server-models" => {
                self.models = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            }
            "server-timeout-ms" => self.timeout_ms = value.get().unwrap_or(self.timeout_ms),
            "server-fallback" => self.fallback = value.get().unwrap_or(self.fallback),
            "server-max-in-flight" => {
                self.max_in_flight = value.get().unwrap_or(self.max_in_flight)
            }
            _ => return false,
        }
        true
    }

    pub fn get(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            "server" => self.server.to_value(),
            "server-models" => self.models.to_value(),
            "server-timeout-ms" => self.timeout_ms.to_value(),
            "server-fallback" => self.fallback.to_value(),
            "server-max-in-flight" => self.max_in_flight.to_value(),
            _ => return None,
        })
    }

    /// The spec the models take, or None to run locally; a bad `server-models` is an error.
    pub fn spec(&self) -> Result<Option<RemoteSpec>, gst::ErrorMessage> {
        let Some(address) = &self.server else {
            return Ok(None);
        };
        let models = RemoteSpec::parse_models(&self.models)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        Ok(Some(RemoteSpec {
            models,
            timeout: std::time::Duration::from_millis(self.timeout_ms.max(1) as u64),
            fallback: match self.fallback {
                ServerFallback::Local => Fallback::Local,
                ServerFallback::Error => Fallback::Error,
            },
            max_in_flight: self.max_in_flight.max(1) as usize,
            ..RemoteSpec::new(address.clone())
        }))
    }
}

/// Posts what changed since `seen` (the generation last reported): a warning when the
/// model's server was lost, an info message when it answers again. `what` names the model.
pub fn report(
    element: &gst::Element,
    cat: gst::DebugCategory,
    what: &str,
    st: &RemoteStatus,
    seen: &mut u64,
) {
    if st.generation == *seen {
        return;
    }
    *seen = st.generation;
    if st.up {
        gst::info!(
            cat,
            obj = element,
            "{what}: back on the server {} ({})",
            st.address,
            st.model
        );
        let text = format!("{what} runs on the inference server {} again", st.address);
        let msg = gst::message::Info::builder(gst::ResourceError::Read, &text)
            // gst-launch-1.0 prints an info message's debug text, not its message.
            .debug(&format!("{text} (model {})", st.model))
            .src(element)
            .build();
        let _ = element.post_message(msg);
    } else {
        let why = st.last_error.clone().unwrap_or_default();
        gst::warning!(cat, obj = element, "{what}: lost the server: {why}");
        let text = format!(
            "{what}: inference server {} unreachable, running on local ONNX Runtime until it answers again",
            st.address
        );
        let msg = gst::message::Warning::builder(gst::ResourceError::Read, &text)
            .debug(&why)
            .src(element)
            .build();
        let _ = element.post_message(msg);
    }
}

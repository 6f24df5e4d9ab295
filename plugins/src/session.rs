//! The ONNX Runtime session properties lalm-perceive and lalm-respond share: the GPU device,
//! TensorRT's fp16 and engine cache, and whether streams share one session per model.

use gst::glib;
use gst::prelude::*;
use soundflow::models::runtime::{ExecutionProvider, SessionInfo, SessionOptions};

#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub device_id: i32,
    pub trt_fp16: bool,
    pub trt_cache_dir: Option<String>,
    pub share: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            device_id: 0,
            trt_fp16: false,
            trt_cache_dir: None,
            share: true,
        }
    }
}

/// `ort-library`: which ONNX Runtime library the process loads.
pub fn ort_library_spec() -> glib::ParamSpec {
    glib::ParamSpecString::builder("ort-library")
        .nick("ONNX Runtime library")
        .blurb("Path of libonnxruntime.so to load (default: $LALM_ORT_LIBRARY, then the copy the setup installed under $XDG_DATA_HOME/lalm/onnxruntime, then the system's); one library per process")
        .mutable_ready()
        .build()
}

/// The properties, their blurbs naming `what` (the element's model).
pub fn param_specs(what: &str) -> Vec<glib::ParamSpec> {
    vec![
        glib::ParamSpecInt::builder("device-id")
            .nick("GPU device")
            .blurb(&format!(
                "CUDA device index for {what} with execution-provider=cuda or tensorrt"
            ))
            .minimum(0)
            .maximum(255)
            .default_value(0)
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder("trt-fp16")
            .nick("TensorRT fp16")
            .blurb("Let TensorRT build fp16 engines (execution-provider=tensorrt)")
            .default_value(false)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("trt-cache-dir")
            .nick("TensorRT engine cache")
            .blurb("Folder where TensorRT keeps its engines and timing cache, so later starts skip the engine build (execution-provider=tensorrt); unset builds engines at every start")
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder("share-session")
            .nick("Share sessions")
            .blurb(&format!(
                "Run {what} on one ONNX Runtime session per process for the same model, provider and options, shared by every element that sets this (and, in lalm-perceive, batched across streams); false gives this element a session of its own"
            ))
            .default_value(true)
            .mutable_ready()
            .build(),
    ]
}

impl SessionSettings {
    /// Sets the property `name` if it is one of these; false if it is not.
    pub fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        match name {
            "device-id" => self.device_id = value.get().unwrap_or(0),
            "trt-fp16" => self.trt_fp16 = value.get().unwrap_or(false),
            "trt-cache-dir" => {
                self.trt_cache_dir = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .filter(|d| !d.is_empty())
            }
            "share-session" => self.share = value.get().unwrap_or(true),
            _ => return false,
        }
        true
    }

    pub fn get(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            "device-id" => self.device_id.to_value(),
            "trt-fp16" => self.trt_fp16.to_value(),
            "trt-cache-dir" => self.trt_cache_dir.to_value(),
            "share-session" => self.share.to_value(),
            _ => return None,
        })
    }

    pub fn apply(&self, opts: &mut SessionOptions) {
        opts.device_id = self.device_id;
        opts.trt_fp16 = self.trt_fp16;
        opts.trt_cache_dir = self.trt_cache_dir.as_ref().map(std::path::PathBuf::from);
        opts.shared = self.share;
    }
}

/// Tells the application when a model does not run where it was asked to: a debug-log
/// warning always, and a warning message on the bus when a provider was named explicitly
/// (`auto` falling back to CPU is what `auto` means). `what` names the model.
pub fn report_fallback(
    element: &gst::Element,
    cat: gst::DebugCategory,
    what: &str,
    info: &SessionInfo,
) {
    let Some(why) = &info.fallback_reason else {
        return;
    };
    gst::warning!(
        cat,
        obj = element,
        "{what}: execution provider {} requested, running on {}: {why}",
        info.requested.as_str(),
        info.active.as_str()
    );
    if info.requested != ExecutionProvider::Auto {
        let text = format!(
            "Execution provider {} is not available, running on {}",
            info.requested.as_str(),
            info.active.as_str()
        );
        let debug = format!("{what}: {why}");
        let msg = gst::message::Warning::builder(gst::LibraryError::Settings, &text)
            .debug(&debug)
            .src(element)
            .build();
        let _ = element.post_message(msg);
    }
}

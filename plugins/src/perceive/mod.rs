//! `lalm-perceive`: runs the perception models (Silero VAD and a sound-event tagger) on every
//! chunk on a worker thread and attaches speech probabilities, levels and sound-event scores
//! as `LalmPerceptionMeta`.

use gst::glib;
use gst::prelude::*;

mod budget;
mod imp;

glib::wrapper! {
    pub struct Perceive(ObjectSubclass<imp::Perceive>) @extends gst::Element, gst::Object;
}

/// Which ONNX Runtime execution provider runs the models.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstLalmExecutionProvider")]
pub enum ExecutionProvider {
    #[default]
    #[enum_value(
        name = "Auto: CUDA when the library and a GPU offer it, else CPU",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu = 1,
    #[enum_value(
        name = "CUDA (falls back to CPU, with a warning, when unavailable)",
        nick = "cuda"
    )]
    Cuda = 2,
    #[enum_value(
        name = "TensorRT (falls back to CUDA, then CPU, with a warning)",
        nick = "tensorrt"
    )]
    TensorRt = 3,
}

impl From<ExecutionProvider> for soundflow::models::runtime::ExecutionProvider {
    fn from(p: ExecutionProvider) -> Self {
        match p {
            ExecutionProvider::Auto => Self::Auto,
            ExecutionProvider::Cpu => Self::Cpu,
            ExecutionProvider::Cuda => Self::Cuda,
            ExecutionProvider::TensorRt => Self::TensorRt,
        }
    }
}

/// What to do when chunks arrive faster than the model runs and the queue is full.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstLalmOverload")]
pub enum Overload {
    #[default]
    #[enum_value(
        name = "Auto: drop when the pipeline is live, block when it is not",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(
        name = "Block the streaming thread until the worker catches up",
        nick = "block"
    )]
    Block = 1,
    #[enum_value(
        name = "Drop the new chunk, count it, send a GAP and post a QoS message",
        nick = "drop"
    )]
    Drop = 2,
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    ExecutionProvider::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    Overload::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "lalm-perceive",
        gst::Rank::NONE,
        Perceive::static_type(),
    )
}

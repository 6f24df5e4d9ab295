//! `lalm-chunker`: re-frames any audio buffer sizes into fixed chunks of `chunk-ms`.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct Chunker(ObjectSubclass<imp::Chunker>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "lalm-chunker",
        gst::Rank::NONE,
        Chunker::static_type(),
    )
}

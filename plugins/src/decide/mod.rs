//! `lalm-decide`: per chunk, stay silent or respond — speech start and turn end, from the
//! perception meta, with hysteresis and minimum durations.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct Decide(ObjectSubclass<imp::Decide>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "lalm-decide",
        gst::Rank::NONE,
        Decide::static_type(),
    )
}

//! `lalm-respond`: produces a response when the decision says so — a timed text buffer on
//! its src pad and a `lalm-response` bus message.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct Respond(ObjectSubclass<imp::Respond>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "lalm-respond",
        gst::Rank::NONE,
        Respond::static_type(),
    )
}

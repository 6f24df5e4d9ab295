//! `lalm-interact`: the whole loop in one bin — audioconvert ! audioresample !
//! lalm-chunker ! lalm-perceive ! lalm-decide ! lalm-respond — with the common properties
//! of its children on the bin itself.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct Interact(ObjectSubclass<imp::Interact>) @extends gst::Bin, gst::Element, gst::Object, @implements gst::ChildProxy;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "lalm-interact",
        gst::Rank::NONE,
        Interact::static_type(),
    )
}

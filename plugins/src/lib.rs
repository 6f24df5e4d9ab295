//! gst-lalm: GStreamer elements for an always-on perceive → decide → respond loop over live
//! audio. The elements are a thin GStreamer skin over the `soundflow` core crate.
#![allow(clippy::non_send_fields_in_send_ty)]

use gst::glib;

pub mod chunker;
pub mod decide;
pub mod interact;
pub mod meta;
pub mod perceive;
pub mod remote;
pub mod respond;
pub mod rules;
pub mod session;
pub mod util;
pub mod worker;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    meta::register();
    remote::register_types();
    chunker::register(plugin)?;
    perceive::register(plugin)?;
    decide::register(plugin)?;
    respond::register(plugin)?;
    interact::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    lalm,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    "https://example.invalid/gst-lalm",
    env!("BUILD_REL_DATE")
);

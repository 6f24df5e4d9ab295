//! Registers gst-plugins-rs' closed caption and textwrap plugins in this process, so the
//! test finds `transcriberbin`, `cea708mux`, `cea608tott` and `textwrap` without installing them.

/// Initialises GStreamer and registers the two plugins statically.
pub fn init() -> Result<(), gst::glib::BoolError> {
    gst::init().map_err(|e| gst::glib::bool_error!("gst::init: {e}"))?;
    gstrsclosedcaption::plugin_register_static()?;
    gsttextwrap::plugin_register_static()?;
    Ok(())
}

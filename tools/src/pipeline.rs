//! The programs' pipelines: GStreamer with this build's elements, and the loop under test.

use std::path::Path;

use gst::prelude::*;

use crate::Res;

/// Initialises GStreamer and registers the elements this program was built with, so it runs
/// (and measures) this code even when an older copy of the plugin is installed.
pub fn init() -> Res<()> {
    gst::init()?;
    gstlalm::plugin_register_static()
        .map_err(|e| format!("cannot register the lalm plugin: {e}"))?;
    Ok(())
}

/// Parses `description` into a pipeline; returns it, its element named `loop` (the one
/// measured) and its bus.
pub fn launch_loop(description: &str) -> Res<(gst::Pipeline, gst::Element, gst::Bus)> {
    let pipeline = gst::parse::launch(description)
        .map_err(|e| format!("cannot build the pipeline `{description}`: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "the pipeline description did not give a pipeline")?;
    let lalm = pipeline
        .by_name("loop")
        .ok_or("no element named `loop` in the pipeline")?;
    let bus = pipeline.bus().ok_or("the pipeline has no bus")?;
    Ok((pipeline, lalm, bus))
}

/// Plays `pipeline` to EOS, handing every element message to `on_element` with the running
/// time it arrived at; an error message, or `quiet` without any message, ends it with an
/// error. The pipeline is left as it is (the caller sets it to NULL).
pub fn play_to_eos(
    pipeline: &gst::Pipeline,
    bus: &gst::Bus,
    quiet: gst::ClockTime,
    mut on_element: impl FnMut(&gst::StructureRef, Option<gst::ClockTime>),
) -> Res<()> {
    pipeline.set_state(gst::State::Playing)?;
    loop {
        let msg = bus
            .timed_pop(quiet)
            .ok_or_else(|| format!("no message for {quiet}"))?;
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) => return Err(error_text(e).into()),
            gst::MessageView::Element(el) => {
                if let Some(s) = el.structure() {
                    on_element(s, pipeline.current_running_time());
                }
            }
            _ => {}
        }
    }
}

/// An error message as one line: the element that posted it, the error and its debug text.
pub fn error_text(err: &gst::message::Error) -> String {
    let from = err
        .src()
        .map_or_else(|| "?".into(), |s| s.path_string().to_string());
    match err.debug() {
        Some(d) => format!("{from}: {} ({d})", err.error()),
        None => format!("{from}: {}", err.error()),
    }
}

/// `path` as a quoted property value of a pipeline description.
pub fn quote(path: &Path) -> Res<String> {
    let s = path
        .to_str()
        .ok_or_else(|| format!("{}: path is not UTF-8", path.display()))?;
    Ok(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_path_survives_the_parser() {
        init().expect("GStreamer and the elements");
        let path = Path::new("/tmp/a \"quoted\" \\ name.wav");
        let (pipeline, lalm, _bus) = launch_loop(&format!(
            "filesrc name=loop location={} ! fakesink",
            quote(path).expect("UTF-8")
        ))
        .expect("parsed");
        assert_eq!(
            lalm.property::<Option<String>>("location").as_deref(),
            path.to_str()
        );
        drop(pipeline);
        let err = launch_loop("fakesrc ! fakesink").expect_err("no loop element");
        assert!(err.to_string().contains("`loop`"), "{err}");
    }
}

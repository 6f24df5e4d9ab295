//! The `rules` property of lalm-decide and lalm-respond: each element loads the same file
//! itself (decide evaluates the audio rules, respond the text rules), so nothing is handed
//! down the stream to be parsed again.

use gst::glib;
use gst::prelude::*;
use soundflow::decide::alerts::RuleSet;

/// A loaded rule set and where it came from.
pub struct Rules {
    pub set: RuleSet,
    /// The file, "built-in" or "none".
    pub origin: String,
    /// Whether a file named the rules (a problem with them is then the user's to hear of).
    pub from_file: bool,
}

/// Loads what the `rules` property of `element` names: unset for the built-in rules, `none`
/// for none, else a TOML file; says which in `cat`.
pub fn load(
    spec: Option<&str>,
    element: &gst::Element,
    cat: gst::DebugCategory,
) -> Result<Rules, gst::ErrorMessage> {
    let rules = parse(spec)?;
    gst::info!(
        cat,
        obj = element,
        "{} alert rules from {}",
        rules.set.rules.len(),
        rules.origin
    );
    Ok(rules)
}

fn parse(spec: Option<&str>) -> Result<Rules, gst::ErrorMessage> {
    match spec {
        None => Ok(Rules {
            set: RuleSet::defaults(),
            origin: "built-in".into(),
            from_file: false,
        }),
        Some("none") => Ok(Rules {
            set: RuleSet::default(),
            origin: "none".into(),
            from_file: false,
        }),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenRead,
                    ("Cannot read the alert rules file {}: {}", path, e)
                )
            })?;
            let set = RuleSet::parse(&text, path).map_err(|e| {
                gst::error_msg!(gst::LibraryError::Settings, ("Invalid alert rules: {}", e))
            })?;
            Ok(Rules {
                set,
                origin: path.into(),
                from_file: true,
            })
        }
    }
}

/// The property's specification, the same on both elements.
pub fn param_spec(job: &str) -> glib::ParamSpec {
    glib::ParamSpecString::builder("rules")
        .nick("Alert rules")
        .blurb(format!(
            "TOML file of alert rules (sound events, dead air, level, keywords, wake phrase; see the README); unset for the built-in rules, none for no alerts. {job} Set the same file on lalm-decide and lalm-respond (lalm-interact does)"
        ).as_str())
        .mutable_ready()
        .build()
}

/// The property's value as set: empty means unset.
pub fn from_value(value: &glib::Value) -> Option<String> {
    value
        .get::<Option<String>>()
        .ok()
        .flatten()
        .filter(|r| !r.is_empty())
}

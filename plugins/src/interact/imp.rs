use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "lalm-interact",
        gst::DebugColorFlags::empty(),
        Some("gst-lalm interaction bin"),
    )
});

/// The model rate the bin converts to (Silero VAD's).
const MODEL_RATE: i32 = 16000;

/// Bin property → (child name, child property). A property listed twice is set on both
/// children and read from the first.
const PROXIED: &[(&str, &str, &str)] = &[
    ("chunk-ms", "chunker", "chunk-ms"),
    ("overlap-ms", "chunker", "overlap-ms"),
    ("model", "perceive", "model"),
    ("tagger", "perceive", "tagger"),
    ("execution-provider", "perceive", "execution-provider"),
    ("execution-provider", "respond", "execution-provider"),
    (
        "active-execution-provider",
        "perceive",
        "active-execution-provider",
    ),
    ("ort-library", "perceive", "ort-library"),
    ("ort-library", "respond", "ort-library"),
    ("threads", "perceive", "threads"),
    ("device-id", "perceive", "device-id"),
    ("device-id", "respond", "device-id"),
    ("trt-fp16", "perceive", "trt-fp16"),
    ("trt-fp16", "respond", "trt-fp16"),
    ("trt-cache-dir", "perceive", "trt-cache-dir"),
    ("trt-cache-dir", "respond", "trt-cache-dir"),
    ("share-session", "perceive", "share-session"),
    ("share-session", "respond", "share-session"),
    ("batch-wait-ms", "perceive", "batch-wait-ms"),
    ("max-batch", "perceive", "max-batch"),
    ("overload", "perceive", "overload"),
    ("stats", "perceive", "stats"),
    ("rules", "decide", "rules"),
    ("threshold", "decide", "threshold"),
    ("neg-threshold", "decide", "neg-threshold"),
    ("min-speech-ms", "decide", "min-speech-ms"),
    ("min-silence-ms", "decide", "min-silence-ms"),
    ("speech-pad-ms", "decide", "speech-pad-ms"),
    ("mode", "respond", "mode"),
    ("asr-model", "respond", "model"),
    ("asr-threads", "respond", "threads"),
    ("language-code", "respond", "language-code"),
    ("partial-interval-ms", "respond", "partial-interval-ms"),
    ("max-utterance-ms", "respond", "max-utterance-ms"),
    ("finals-only", "respond", "finals-only"),
    ("latency", "respond", "latency"),
    ("lateness", "respond", "lateness"),
    ("subtitle-location", "respond", "subtitle-location"),
    ("responses", "respond", "responses"),
];

pub struct Interact {
    sinkpad: gst::GhostPad,
    srcpad: gst::GhostPad,
    alertpad: gst::GhostPad,
}

impl Interact {
    fn child(&self, name: &str) -> Option<gst::Element> {
        self.obj().by_name(name)
    }

    fn build(&self) -> Result<(), glib::BoolError> {
        let obj = self.obj();
        let make =
            |factory: &str, name: &str| gst::ElementFactory::make(factory).name(name).build();
        let convert = make("audioconvert", "convert")?;
        let resample = make("audioresample", "resample")?;
        let filter = make("capsfilter", "filter")?;
        filter.set_property(
            "caps",
            gst_audio::AudioCapsBuilder::new_interleaved()
                .format(gst_audio::AudioFormat::F32le)
                .channels(1)
                .rate(MODEL_RATE)
                .build(),
        );
        let chunker = make("lalm-chunker", "chunker")?;
        let perceive = make("lalm-perceive", "perceive")?;
        let decide = make("lalm-decide", "decide")?;
        let respond = make("lalm-respond", "respond")?;
        let chain = [
            &convert, &resample, &filter, &chunker, &perceive, &decide, &respond,
        ];
        obj.add_many(chain)?;
        gst::Element::link_many(chain)?;
        let sink = convert
            .static_pad("sink")
            .ok_or_else(|| glib::bool_error!("audioconvert has no sink pad"))?;
        let src = respond
            .static_pad("src")
            .ok_or_else(|| glib::bool_error!("lalm-respond has no src pad"))?;
        let alert = respond
            .static_pad("alert")
            .ok_or_else(|| glib::bool_error!("lalm-respond has no alert pad"))?;
        self.sinkpad.set_target(Some(&sink))?;
        self.srcpad.set_target(Some(&src))?;
        self.alertpad.set_target(Some(&alert))?;
        Ok(())
    }
}

#[glib::object_subclass]
impl ObjectSubclass for Interact {
    const NAME: &'static str = "GstLalmInteract";
    type Type = super::Interact;
    type ParentType = gst::Bin;

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("sink").expect("sink template");
        let sinkpad = gst::GhostPad::builder_from_template(&templ)
            .name("sink")
            .build();
        let templ = klass.pad_template("src").expect("src template");
        let srcpad = gst::GhostPad::builder_from_template(&templ)
            .name("src")
            .build();
        let templ = klass.pad_template("alert").expect("alert template");
        let alertpad = gst::GhostPad::builder_from_template(&templ)
            .name("alert")
            .build();
        Self {
            sinkpad,
            srcpad,
            alertpad,
        }
    }
}

impl ObjectImpl for Interact {
    fn properties() -> &'static [glib::ParamSpec] {
        // The bin's properties are its children's, with the same names, ranges, defaults and
        // documentation, so the two can never drift apart.
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let specs_of = |t: glib::Type| -> Vec<glib::ParamSpec> {
                glib::object::Class::<glib::Object>::from_type(t)
                    .map(|c| c.list_properties().to_vec())
                    .unwrap_or_default()
            };
            let children = [
                ("chunker", specs_of(crate::chunker::Chunker::static_type())),
                (
                    "perceive",
                    specs_of(crate::perceive::Perceive::static_type()),
                ),
                ("decide", specs_of(crate::decide::Decide::static_type())),
                ("respond", specs_of(crate::respond::Respond::static_type())),
            ];
            let mut seen = std::collections::HashSet::new();
            PROXIED
                .iter()
                .filter(|(name, _, _)| seen.insert(*name))
                .filter_map(|(name, child, prop)| {
                    children
                        .iter()
                        .find(|(c, _)| c == child)
                        .and_then(|(_, specs)| specs.iter().find(|p| p.name() == *prop))
                        .and_then(|p| {
                            let both = PROXIED.iter().filter(|(n, _, _)| n == name).count() > 1;
                            let blurb = match p.blurb() {
                                Some(b) if both => {
                                    format!("{b} (the bin sets it on lalm-perceive and on lalm-respond: it applies to the ASR model too)")
                                }
                                b => b.unwrap_or("").to_string(),
                            };
                            copy_pspec(p, name, &blurb)
                        })
                })
                .collect()
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        for (_, child, prop) in PROXIED.iter().filter(|(n, _, _)| *n == pspec.name()) {
            match self.child(child) {
                Some(c) => c.set_property_from_value(prop, value),
                None => gst::warning!(CAT, imp = self, "no child {child} for {}", pspec.name()),
            }
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        PROXIED
            .iter()
            .find(|(n, _, _)| *n == pspec.name())
            .and_then(|(_, child, prop)| self.child(child).map(|c| c.property_value(prop)))
            .unwrap_or_else(|| pspec.default_value().clone())
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        if let Err(e) = self.build() {
            gst::error!(CAT, imp = self, "cannot build the loop: {e}");
        }
        obj.add_pad(&self.sinkpad).expect("fresh pad");
        obj.add_pad(&self.srcpad).expect("fresh pad");
        obj.add_pad(&self.alertpad).expect("fresh pad");
    }
}

impl GstObjectImpl for Interact {}

impl ElementImpl for Interact {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "LALM interaction loop",
                "Filter/Analyzer/Audio/Text",
                "The whole perceive-decide-respond loop in one bin: audioconvert ! audioresample \
                 ! lalm-chunker ! lalm-perceive ! lalm-decide ! lalm-respond; any raw audio in, \
                 timed text out on src, alerts as JSON on alert, lalm-decision, lalm-response, \
                 lalm-transcript and lalm-alert messages on the bus",
                "gst-lalm developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let mut t = crate::util::always_templates(
                &gst::Caps::builder("audio/x-raw").build(),
                &crate::util::text_caps(),
            );
            t.push(
                gst::PadTemplate::new(
                    "alert",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &crate::respond::alert_caps(),
                )
                .expect("static pad template is valid"),
            );
            t
        });
        TEMPLATES.as_ref()
    }
}

impl BinImpl for Interact {}

/// A new param spec like `p`: an installed spec belongs to its class and cannot be
/// installed on the bin too.
fn copy_pspec(p: &glib::ParamSpec, name: &str, blurb: &str) -> Option<glib::ParamSpec> {
    let flags = p.flags();
    let writable = flags.contains(glib::ParamFlags::WRITABLE);
    let mutable = |f: glib::ParamFlags| {
        if flags.contains(gst::PARAM_FLAG_MUTABLE_PLAYING) {
            f | gst::PARAM_FLAG_MUTABLE_PLAYING
        } else if flags.contains(gst::PARAM_FLAG_MUTABLE_READY) {
            f | gst::PARAM_FLAG_MUTABLE_READY
        } else {
            f
        }
    };
    let rw = mutable(if writable {
        glib::ParamFlags::READWRITE
    } else {
        glib::ParamFlags::READABLE
    });
    let nick = p.nick();
    if let Some(b) = p.downcast_ref::<glib::ParamSpecBoolean>() {
        return Some(
            glib::ParamSpecBoolean::builder(name)
                .nick(nick)
                .blurb(blurb)
                .default_value(b.default_value())
                .flags(rw)
                .build(),
        );
    }
    if p.value_type() == crate::respond::Mode::static_type() {
        return Some(
            glib::ParamSpecEnum::builder_with_default(name, crate::respond::Mode::Transcript)
                .nick(nick)
                .blurb(blurb)
                .flags(rw)
                .build(),
        );
    }
    if let Some(i) = p.downcast_ref::<glib::ParamSpecInt>() {
        return Some(
            glib::ParamSpecInt::builder(name)
                .nick(nick)
                .blurb(blurb)
                .minimum(i.minimum())
                .maximum(i.maximum())
                .default_value(i.default_value())
                .flags(rw)
                .build(),
        );
    }
    if let Some(u) = p.downcast_ref::<glib::ParamSpecUInt>() {
        return Some(
            glib::ParamSpecUInt::builder(name)
                .nick(nick)
                .blurb(blurb)
                .minimum(u.minimum())
                .maximum(u.maximum())
                .default_value(u.default_value())
                .flags(rw)
                .build(),
        );
    }
    if let Some(u) = p.downcast_ref::<glib::ParamSpecUInt64>() {
        return Some(
            glib::ParamSpecUInt64::builder(name)
                .nick(nick)
                .blurb(blurb)
                .minimum(u.minimum())
                .maximum(u.maximum())
                .default_value(u.default_value())
                .flags(rw)
                .build(),
        );
    }
    if let Some(f) = p.downcast_ref::<glib::ParamSpecFloat>() {
        return Some(
            glib::ParamSpecFloat::builder(name)
                .nick(nick)
                .blurb(blurb)
                .minimum(f.minimum())
                .maximum(f.maximum())
                .default_value(f.default_value())
                .flags(rw)
                .build(),
        );
    }
    if let Some(s) = p.downcast_ref::<glib::ParamSpecString>() {
        return Some(
            glib::ParamSpecString::builder(name)
                .nick(nick)
                .blurb(blurb)
                .default_value(s.default_value())
                .flags(rw)
                .build(),
        );
    }
    if p.value_type() == crate::perceive::ExecutionProvider::static_type() {
        return Some(
            glib::ParamSpecEnum::builder_with_default(
                name,
                crate::perceive::ExecutionProvider::Auto,
            )
            .nick(nick)
            .blurb(blurb)
            .flags(rw)
            .build(),
        );
    }
    if p.value_type() == crate::perceive::Overload::static_type() {
        return Some(
            glib::ParamSpecEnum::builder_with_default(name, crate::perceive::Overload::Auto)
                .nick(nick)
                .blurb(blurb)
                .flags(rw)
                .build(),
        );
    }
    if p.value_type() == gst::Structure::static_type() {
        return Some(
            glib::ParamSpecBoxed::builder::<gst::Structure>(name)
                .nick(nick)
                .blurb(blurb)
                .flags(rw)
                .build(),
        );
    }
    None
}

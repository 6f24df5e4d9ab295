use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use soundflow::models::package::ModelPackage;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "lalm-interact",
        gst::DebugColorFlags::empty(),
        Some("gst-lalm interaction bin"),
    )
});

/// The rate the bin converts to until it knows the perceive model's (Silero VAD's).
const DEFAULT_RATE: u32 = 16000;

/// Bin property → (child name, child property). A property listed twice is set on both
/// children and read from the first.
const PROXIED: &[(&str, &str, &str)] = &[
    ("chunk-ms", "chunker", "chunk-ms"),
    ("overlap-ms", "chunker", "overlap-ms"),
    ("model", "perceive", "model"),
    ("tagger", "perceive", "tagger"),
    ("server", "perceive", "server"),
    ("server", "respond", "server"),
    ("server-models", "perceive", "server-models"),
    ("server-models", "respond", "server-models"),
    ("server-timeout-ms", "perceive", "server-timeout-ms"),
    ("server-timeout-ms", "respond", "server-timeout-ms"),
    ("server-fallback", "perceive", "server-fallback"),
    ("server-fallback", "respond", "server-fallback"),
    ("server-max-in-flight", "perceive", "server-max-in-flight"),
    ("server-max-in-flight", "respond", "server-max-in-flight"),
    ("tagger-gate-db", "perceive", "tagger-gate-db"),
    ("execution-provider", "perceive", "execution-provider"),
    ("execution-provider", "respond", "execution-provider"),
    (
        "active-execution-provider",
        "perceive",
        "active-execution-provider",
    ),
    ("ort-library", "perceive", "ort-library"),
    ("ort-library", "respond", "ort-library"),
    ("ort-library", "decide", "ort-library"),
    ("threads", "perceive", "threads"),
    ("tagger-calm-hop-ms", "perceive", "tagger-calm-hop-ms"),
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
    // Set on lalm-respond only where it has the property (see `set_property`).
    ("rules", "respond", "rules"),
    ("threshold", "decide", "threshold"),
    ("neg-threshold", "decide", "neg-threshold"),
    ("min-speech-ms", "decide", "min-speech-ms"),
    ("min-silence-ms", "decide", "min-silence-ms"),
    ("speech-pad-ms", "decide", "speech-pad-ms"),
    ("turn-model", "decide", "turn-model"),
    ("turn-threshold", "decide", "turn-threshold"),
    ("turn-pause-ms", "decide", "turn-pause-ms"),
    ("turn-early-pause-ms", "decide", "turn-early-pause-ms"),
    ("turn-early-threshold", "decide", "turn-early-threshold"),
    ("turn-threads", "decide", "turn-threads"),
    ("turn-prefetch", "decide", "turn-prefetch"),
    ("decision-model", "decide", "decision-model"),
    ("mode", "respond", "mode"),
    ("asr-model", "respond", "model"),
    ("asr-threads", "respond", "threads"),
    ("language-code", "respond", "language-code"),
    ("partial-interval-ms", "respond", "partial-interval-ms"),
    ("max-utterance-ms", "respond", "max-utterance-ms"),
    ("lead-in-ms", "respond", "lead-in-ms"),
    ("seal-after-ms", "respond", "seal-after-ms"),
    ("seal-from-ms", "respond", "seal-from-ms"),
    ("partial-budget", "respond", "partial-budget"),
    ("finals-only", "respond", "finals-only"),
    ("latency", "respond", "latency"),
    ("lateness", "respond", "lateness"),
    ("subtitle-location", "respond", "subtitle-location"),
    ("profanity-filter", "respond", "profanity-filter"),
    ("vocabulary", "respond", "vocabulary"),
    ("sound-captions", "respond", "sound-captions"),
    ("speaker-model", "respond", "speaker-model"),
    ("speaker-threshold", "respond", "speaker-threshold"),
    (
        "subtitle-speaker-prefix",
        "respond",
        "subtitle-speaker-prefix",
    ),
    ("text-speaker-prefix", "respond", "text-speaker-prefix"),
    ("responses", "respond", "responses"),
    ("assistant-model", "respond", "assistant-model"),
    ("assistant-prompt", "respond", "assistant-prompt"),
    ("assistant-max-tokens", "respond", "assistant-max-tokens"),
];

/// Defaults the bin gives its children where theirs do not suit the live loop. Chunks of 128 ms
/// (four VAD windows) let a turn end be acted on within 128 ms of the window that ends it;
/// lalm-chunker's own 400 ms suits analysis pipelines that want fewer, longer chunks.
const BIN_DEFAULTS: &[(&str, u32)] = &[("chunk-ms", 128)];

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
        filter.set_property("caps", model_caps(DEFAULT_RATE));
        let chunker = make("lalm-chunker", "chunker")?;
        for (prop, value) in BIN_DEFAULTS {
            chunker.set_property(prop, *value);
        }
        let perceive = make("lalm-perceive", "perceive")?;
        let decide = make("lalm-decide", "decide")?;
        let respond = make("lalm-respond", "respond")?;
        // A clock-synced sink holds each text buffer until its running time plus the latency
        // (seconds); without a queue that wait would stall lalm-respond's decoding worker, and
        // with it the partials. Bounded in buffers only: text is small and its timestamps
        // span the latency.
        let textq = make("queue", "textqueue")?;
        textq.set_property("max-size-time", 0u64);
        textq.set_property("max-size-bytes", 0u32);
        textq.set_property("max-size-buffers", 1000u32);
        let chain = [
            &convert, &resample, &filter, &chunker, &perceive, &decide, &respond, &textq,
        ];
        obj.add_many(chain)?;
        gst::Element::link_many(chain)?;
        let sink = convert
            .static_pad("sink")
            .ok_or_else(|| glib::bool_error!("audioconvert has no sink pad"))?;
        let src = textq
            .static_pad("src")
            .ok_or_else(|| glib::bool_error!("queue has no src pad"))?;
        let alert = respond
            .static_pad("alert")
            .ok_or_else(|| glib::bool_error!("lalm-respond has no alert pad"))?;
        self.sinkpad.set_target(Some(&sink))?;
        self.srcpad.set_target(Some(&src))?;
        self.alertpad.set_target(Some(&alert))?;
        Ok(())
    }

    /// Points the capsfilter at the perceive model's sample rate, read from its package's
    /// manifest, so the audio is resampled to what the model was trained on. A package that
    /// cannot be read is left to lalm-perceive, which fails its own state change with the reason.
    fn follow_model_rate(&self) {
        let (Some(perceive), Some(filter)) = (self.child("perceive"), self.child("filter")) else {
            return;
        };
        let spec: String = perceive.property("model");
        match ModelPackage::find(&spec) {
            Ok(pkg) => {
                let rate = pkg.manifest.sample_rate;
                gst::debug!(CAT, imp = self, "converting to {rate} Hz for {spec}");
                filter.set_property("caps", model_caps(rate));
            }
            Err(e) => gst::debug!(CAT, imp = self, "no rate from model {spec}: {e}"),
        }
    }
}

/// Mono F32 at `rate`, what the chunker and perceive take.
fn model_caps(rate: u32) -> gst::Caps {
    gst_audio::AudioCapsBuilder::new_interleaved()
        .format(gst_audio::AudioFormat::F32le)
        .channels(1)
        .rate(i32::try_from(rate).unwrap_or(i32::MAX))
        .build()
}

/// The primary language subtag of a BCP 47 tag (`en-US` → `en`), as Whisper names languages:
/// transcriberbin and the gst-plugins-rs transcribers use region-qualified codes.
fn primary_language(code: &str) -> String {
    code.split(['-', '_'])
        .next()
        .unwrap_or(code)
        .to_ascii_lowercase()
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
                            let targets: Vec<&str> = PROXIED
                                .iter()
                                .filter(|(n, _, _)| n == name)
                                .map(|(_, c, _)| *c)
                                .collect();
                            let blurb = match (p.blurb(), targets.as_slice()) {
                                (Some(b), ["perceive", "respond"]) => {
                                    format!("{b} (the bin sets it on lalm-perceive and on lalm-respond: it applies to the ASR model too)")
                                }
                                (Some(b), [first, second]) => {
                                    format!("{b} (the bin sets it on lalm-{first} and on lalm-{second})")
                                }
                                (b, _) => b.unwrap_or("").to_string(),
                            };
                            let default = BIN_DEFAULTS.iter().find(|(n, _)| n == name).map(|d| d.1);
                            copy_pspec(p, name, &blurb, default)
                        })
                })
                .collect()
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let value = match pspec.name() {
            "language-code" => match value.get::<Option<String>>() {
                Ok(Some(code)) => primary_language(&code).to_value(),
                _ => value.clone(),
            },
            _ => value.clone(),
        };
        for (_, child, prop) in PROXIED.iter().filter(|(n, _, _)| *n == pspec.name()) {
            match self.child(child) {
                // lalm-respond takes `rules` only in versions that have it.
                Some(c) if c.find_property(prop).is_some() => {
                    c.set_property_from_value(prop, &value)
                }
                Some(_) => gst::debug!(CAT, imp = self, "{child} has no {prop}"),
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
                 ! lalm-chunker ! lalm-perceive ! lalm-decide ! lalm-respond ! queue; any raw audio in, \
                 timed text out on src, alerts as JSON on alert, lalm-decision, lalm-response, \
                 lalm-transcript, lalm-alert and lalm-sound messages on the bus",
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

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        // Before the children load their models: the model chosen last decides the rate.
        if transition == gst::StateChange::NullToReady {
            self.follow_model_rate();
        }
        self.parent_change_state(transition)
    }
}

impl BinImpl for Interact {}

/// A new param spec like `p`: an installed spec belongs to its class and cannot be
/// installed on the bin too.
fn copy_pspec(
    p: &glib::ParamSpec,
    name: &str,
    blurb: &str,
    uint_default: Option<u32>,
) -> Option<glib::ParamSpec> {
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
    if p.value_type() == crate::respond::SoundCaptions::static_type() {
        return Some(
            glib::ParamSpecEnum::builder_with_default(name, crate::respond::SoundCaptions::None)
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
                .default_value(uint_default.unwrap_or(u.default_value()))
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
    if p.value_type() == crate::remote::ServerFallback::static_type() {
        return Some(
            glib::ParamSpecEnum::builder_with_default(name, crate::remote::ServerFallback::Local)
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

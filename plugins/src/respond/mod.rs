//! `lalm-respond`: produces a response when the decision says so — live subtitles from
//! Whisper or a line per turn — as timed text buffers and bus messages.

use gst::glib;
use gst::prelude::*;

mod imp;

pub use imp::alert_caps;

glib::wrapper! {
    pub struct Respond(ObjectSubclass<imp::Respond>) @extends gst::Element, gst::Object;
}

/// What a turn is answered with.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstLalmRespondMode")]
pub enum Mode {
    #[default]
    #[enum_value(
        name = "Transcript: live subtitles from the Whisper model",
        nick = "transcript"
    )]
    Transcript = 0,
    #[enum_value(
        name = "Turn end: a line naming the utterance's span",
        nick = "turn-end"
    )]
    TurnEnd = 1,
}

/// What one text buffer on the src pad carries.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstLalmRespondTextItems")]
pub enum TextItems {
    #[default]
    #[enum_value(
        name = "Cue: the utterance's committed text so far, pts = the start of its newest words",
        nick = "cue"
    )]
    Cue = 0,
    #[enum_value(
        name = "Word: one buffer per newly committed word, pts = the word's start",
        nick = "word"
    )]
    Word = 1,
}

/// Which sounds get a bracketed caption ("[APPLAUSE]") on the text pad.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstLalmRespondSoundCaptions")]
pub enum SoundCaptions {
    #[default]
    #[enum_value(name = "None: no sound captions", nick = "none")]
    None = 0,
    #[enum_value(
        name = "Quiet: sounds heard while nobody speaks (applause after a talk, music between segments)",
        nick = "quiet"
    )]
    Quiet = 1,
    #[enum_value(
        name = "All: sounds under speech too, each after the cue of the utterance it fell in",
        nick = "all"
    )]
    All = 2,
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    Mode::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    TextItems::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    SoundCaptions::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "lalm-respond",
        gst::Rank::NONE,
        Respond::static_type(),
    )
}

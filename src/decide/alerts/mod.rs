//! Proactive alerts: rules that watch the live audio loop and speak up on their own, without
//! being asked: an alarm went off, nobody has said anything for ten seconds, the input is
//! clipping, someone said a watched word, someone addressed the assistant with a question.
//!
//! Rules come from a TOML file (or [`RuleSet::defaults`]) and are evaluated by two
//! evaluators: [`AudioAlerts`] over per-chunk [`Perception`] (VAD windows with their levels
//! and clipped-sample counts, sound-event tagger frames) and [`TextAlerts`] over transcript
//! words. All positions are stream sample positions, so alerts line up with the audio and
//! cooldowns follow stream time, not wall-clock time.
//!
//! # Rules file
//!
//! Keys are kebab-case. Every error names the file and the line it is about.
//!
//! ```toml
//! include-defaults = true          # optional, default false: also keep the built-in rules;
//!                                  # a rule here with a built-in's name replaces it
//!
//! [[rule]]
//! name = "kitchen-glass"           # required, unique
//! kind = "sound-event"             # keyword | phrase | regex | wake | dead-air | level |
//!                                  # sound-event
//! label = "glass"                  # required (or `labels = [...]`): a tagger label, matched
//!                                  # ignoring case, whole ("Smoke detector, smoke alarm") or
//!                                  # one of its comma-separated names ("smoke alarm"), or a
//!                                  # built-in class (see `classes`), which brings its labels
//!                                  # and its tuned values as this rule's defaults; the score
//!                                  # is the best of the labels'
//! role = "respond"                 # respond (an alert) | ignore (a `lalm-sound` message only);
//!                                  # default: the class's, else respond
//! threshold = 0.5                  # in (0, 1]; default: the class's, else 0.5
//! min-duration-ms = 1000           # default: the class's, else 1000
//! release-ms = 2000                # default: the class's, else 2000: this long below
//!                                  # threshold ends the episode
//! cooldown-ms = 10000              # every kind; default 10000 (text kinds: 0; a class: its own)
//! assistant = "respond"            # every kind; what lalm-respond's assistant-model does with
//!                                  # the alert: respond (always speaks; default for wake rules
//!                                  # and respond-role sounds) | decide (the model chooses to
//!                                  # speak or stay silent) | silent (not asked; a sound is still
//!                                  # told to it as heard; default for every other rule)
//!
//! [[rule]]
//! name = "budget"
//! kind = "keyword"
//! words = ["budget", "deadline"]   # required, non-empty, single words
//! on = "partial"                   # text kinds: partial (default; earliest) | final
//!
//! [[rule]]
//! name = "actions"
//! kind = "phrase"
//! phrases = ["action item", "follow up"]
//!
//! [[rule]]
//! name = "ticket"
//! kind = "regex"
//! pattern = "(?i)ticket \\d+"      # over the utterance's words joined by single spaces
//!
//! [[rule]]
//! name = "assistant"
//! kind = "wake"
//! phrases = ["hey assistant"]      # default ["hey assistant"]; or wake-name = "assistant",
//!                                  # meaning the phrase "hey assistant"
//! require-question = true          # default true
//! follow-up-ms = 6000              # default 6000: with require-question, the phrase alone in
//!                                  # its utterance makes the next utterance starting within
//!                                  # this long of it the question; 0 never; at most 60000.
//!                                  # Phrase words match near-misses (same first letter; a
//!                                  # word of ≤ 3 letters cut to 1-2 or one vowel changed,
//!                                  # "hi"/"h"/"hay" for "hey"; longer ones within 1 edit,
//!                                  # 2 from 8 letters: "assistance")
//! on = "final"                     # default for wake: final
//!
//! [[rule]]
//! name = "dead-air"
//! kind = "dead-air"
//! seconds = 10.0                   # required, > 0
//! level-db = -45.0                 # default -45: a window louder than this is not dead
//! speech-threshold = 0.5           # default 0.5: a window this likely speech is not dead
//!
//! [[rule]]
//! name = "clipping"
//! kind = "level"
//! condition = "clipping"           # required: clipping | quiet
//! window-ms = 1000                 # default 1000 (clipping), 3000 (quiet)
//! ratio = 0.005                    # clipping: fraction of samples at full scale, default 0.005
//!
//! [[rule]]
//! name = "too-quiet"
//! kind = "level"
//! condition = "quiet"
//! below-db = -45.0                 # quiet: mean speech level below this, default -45
//! ```
//!
//! A key that does not apply to a rule's kind (`words` on a sound-event rule, `on` on an
//! audio rule, `ratio` on a quiet rule) is an error rather than silently ignored: it is
//! almost always a rule of the wrong kind.
//!
//! # Layout
//!
//! * [`types`]: what a rule is and what an alert is. It imports nothing from the crate, so
//!   [`crate::perceive::perception`] can carry alerts while `audio` reads perception.
//! * `classes`: the built-in sound classes (AudioSet labels grouped into `glass`, `siren`,
//!   `music`, …) with their tuned values and roles.
//! * `rules`: the built-in rules and the rules file's parsing and checks.
//! * `audio`: [`AudioAlerts`], one detector per audio rule.
//! * `text`: [`TextAlerts`] and the word normalisation ([`normalize_word`]).

mod audio;
pub mod classes;
mod cooldown;
mod rules;
mod text;
pub mod types;

pub use audio::AudioAlerts;
pub use rules::sound_event_rule;
pub use text::{TextAlerts, normalize_word};
pub use types::{
    Alert, AlertKind, AssistantMode, Rule, RuleSet, RuleSpec, SoundLabel, SoundRole, Trigger,
};

#[cfg(test)]
mod tests {
    /// The code lines of a source file: without comments and doc comments.
    fn code(src: &str) -> impl Iterator<Item = &str> {
        src.lines().filter(|l| !l.trim_start().starts_with("//"))
    }

    /// `perception` carries alerts and `audio` reads perception: the alert types must stay
    /// a leaf that imports nothing from the crate, and `perception` must take them from that
    /// leaf, or the two modules depend on each other again.
    #[test]
    fn alert_types_do_not_depend_on_perception() {
        for line in code(include_str!("types.rs")) {
            assert!(
                !line.contains("crate::") && !line.contains("super::"),
                "types.rs imports from the crate: {line}"
            );
        }
        let uses: Vec<&str> = code(include_str!("../decision.rs"))
            .filter(|l| l.contains("alerts"))
            .collect();
        assert!(!uses.is_empty(), "decision.rs no longer names alerts");
        for line in uses {
            assert!(
                !line.contains("alerts::") || line.contains("alerts::types::"),
                "decision.rs uses alerts beyond their types: {line}"
            );
        }
    }
}

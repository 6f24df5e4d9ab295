//! What the alert rules are and what they report. A leaf module: it imports nothing from
//! the evaluators or from [`crate::perceive::perception`], so that the perception and decision types
//! can carry [`Alert`]s without the two modules depending on each other.

use std::fmt;

use regex::Regex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    SoundEvent,
    /// An everyday sound a rule with `role = "ignore"` heard (music, applause, footsteps):
    /// reported quietly (`lalm-sound`), never as an alert.
    Sound,
    Keyword,
    /// A wake rule: someone addressed the assistant; the alert's text is what they asked.
    Respond,
    DeadAir,
    Level,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::SoundEvent => "sound-event",
            AlertKind::Sound => "sound",
            AlertKind::Keyword => "keyword",
            AlertKind::Respond => "respond",
            AlertKind::DeadAir => "dead-air",
            AlertKind::Level => "level",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert. `start` and `end` are stream sample positions at `rate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub kind: AlertKind,
    /// The name of the rule that fired.
    pub rule: String,
    /// What was detected: the tagger label, the keyword, phrase or regex match, the wake
    /// phrase, "dead-air", "clipping" or "quiet".
    pub label: String,
    pub confidence: f32,
    pub start: u64,
    pub end: u64,
    pub rate: u32,
    /// A human-readable message, or for text rules the words as spoken.
    pub text: String,
    /// What the assistant does about it: the rule's `assistant` key.
    pub assistant: AssistantMode,
}

/// What `lalm-respond`'s assistant (its `assistant-model`) does with a rule's alerts: the
/// rules file's `assistant` key. Without an assistant model it changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssistantMode {
    /// The model decides whether to speak up, and what to say (or stays silent).
    Decide,
    /// The model always speaks: a wake rule's answer, or a forced remark about the alert.
    Respond,
    /// The model is not asked (it still hears the alert as a line of what happened).
    Silent,
}

impl AssistantMode {
    /// A respond-class sound's mode, chosen on lalm-assist-eval's Proactive-Sound-Bench items:
    /// with the packages built here the rules' choice is right far more often (83 % of 77
    /// items) than the model's own (49 %: it stays silent about nearly every sound), so the
    /// rule decides and the model words the remark.
    pub const SOUND_DEFAULT: AssistantMode = AssistantMode::Respond;

    pub const ALL: [AssistantMode; 3] = [
        AssistantMode::Decide,
        AssistantMode::Respond,
        AssistantMode::Silent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AssistantMode::Decide => "decide",
            AssistantMode::Respond => "respond",
            AssistantMode::Silent => "silent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// A rule's mode when its table does not say: a wake rule is answered, a respond-class
    /// sound gets [`AssistantMode::SOUND_DEFAULT`], everything else only informs the model.
    pub fn default_for(spec: &RuleSpec) -> Self {
        match spec {
            RuleSpec::Wake { .. } => AssistantMode::Respond,
            RuleSpec::SoundEvent {
                role: SoundRole::Respond,
                ..
            } => Self::SOUND_DEFAULT,
            _ => AssistantMode::Silent,
        }
    }
}

/// When a text rule fires: on partial hypotheses (earliest) or on final text only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Partial,
    Final,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub cooldown_ms: u32,
    /// Only meaningful for text rules.
    pub on: Trigger,
    pub spec: RuleSpec,
    pub assistant: AssistantMode,
}

#[derive(Debug, Clone)]
pub enum RuleSpec {
    /// Any of these words (stored normalised), case- and punctuation-insensitive.
    Keyword {
        words: Vec<String>,
    },
    /// Consecutive word sequences.
    Phrase {
        phrases: Vec<String>,
    },
    /// Over the utterance text: its words joined by one space.
    Regex {
        pattern: Regex,
    },
    /// A wake phrase followed by (with `require_question`) a question.
    Wake {
        phrases: Vec<String>,
        require_question: bool,
        /// With `require_question`: a wake phrase alone in its utterance arms the rule, and
        /// the next utterance that starts within this many milliseconds of the phrase's end is
        /// the question (0: never).
        follow_up_ms: u32,
    },
    DeadAir {
        seconds: f32,
        level_db: f32,
        speech_threshold: f32,
    },
    Clipping {
        window_ms: u32,
        ratio: f32,
    },
    Quiet {
        window_ms: u32,
        below_db: f32,
    },
    /// A class of sounds: the best score of its tagger labels, over `threshold` for
    /// `min_duration_ms`.
    SoundEvent {
        labels: Vec<SoundLabel>,
        role: SoundRole,
        threshold: f32,
        min_duration_ms: u32,
        release_ms: u32,
        /// Where the rule was written (`file:line`), for errors about its labels; empty for
        /// a built-in rule.
        at: String,
    },
}

/// What a sound-event rule does when its class sounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoundRole {
    /// An alert: message, alert pad, text-pad event.
    Respond,
    /// An everyday sound: a low-priority `lalm-sound` message only.
    Ignore,
}

impl SoundRole {
    pub fn as_str(self) -> &'static str {
        match self {
            SoundRole::Respond => "respond",
            SoundRole::Ignore => "ignore",
        }
    }
}

/// One tagger label a sound-event rule watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoundLabel {
    /// A tagger label, matched ignoring ASCII case, either whole ("Smoke detector, smoke
    /// alarm") or one of its comma-separated names ("smoke alarm").
    pub name: String,
    /// Named in the rule itself, so a tagger without it is an error; `false` for the labels
    /// a class brings, of which the tagger only needs one.
    pub required: bool,
}

impl RuleSpec {
    pub fn is_text(&self) -> bool {
        matches!(
            self,
            RuleSpec::Keyword { .. }
                | RuleSpec::Phrase { .. }
                | RuleSpec::Regex { .. }
                | RuleSpec::Wake { .. }
        )
    }
}

/// The rules of one rules file (or the built-in ones): see [`RuleSet::parse`] for the format.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

//! The rules file: the built-in rules, and parsing and checking a TOML file into a
//! [`RuleSet`] (the format is described in the [module documentation](super)).
//!
//! Each kind of rule is one entry of [`KINDS`]: its name, the keys it takes and a function
//! that checks its table and builds its [`RuleSpec`].

use std::path::Path;

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use super::classes::{CLASSES, SoundClass, class};
use super::text::{normalize_word, words_of};
use super::types::{AssistantMode, Rule, RuleSet, RuleSpec, SoundLabel, SoundRole, Trigger};
use crate::{Error, Result};

pub(super) const DEFAULT_AUDIO_COOLDOWN_MS: u32 = 10_000;
const DEFAULT_WAKE_PHRASE: &str = "hey assistant";
/// How long after a wake phrase said alone the next utterance may start and still be the
/// question: a person says "Hey assistant.", waits for a sign, and asks.
const DEFAULT_FOLLOW_UP_MS: u32 = 6000;
const MAX_FOLLOW_UP_MS: u32 = 60_000;
/// Sound-event defaults for a rule that names tagger labels rather than a class.
const DEFAULT_SOUND_THRESHOLD: f32 = 0.5;
const DEFAULT_SOUND_MIN_MS: u32 = 1000;
pub(super) const DEFAULT_SOUND_RELEASE_MS: u32 = 2000;

/// The rule of a built-in class: its name, labels and tuned values.
pub(super) fn class_rule(c: &SoundClass) -> Rule {
    let spec = RuleSpec::SoundEvent {
        labels: class_labels(c),
        role: c.role,
        threshold: c.threshold,
        min_duration_ms: c.min_duration_ms,
        release_ms: c.release_ms,
        at: String::new(),
    };
    Rule {
        name: c.name.into(),
        cooldown_ms: c.cooldown_ms,
        on: Trigger::Partial,
        assistant: AssistantMode::default_for(&spec),
        spec,
    }
}

fn class_labels(c: &SoundClass) -> Vec<SoundLabel> {
    c.labels
        .iter()
        .map(|l| SoundLabel {
            name: (*l).into(),
            required: false,
        })
        .collect()
}

/// A sound-event rule over one tagger label, with the label-rule defaults (tests and
/// programs that build rules in code).
pub fn sound_event_rule(name: &str, label: &str) -> Rule {
    audio_rule(
        name,
        RuleSpec::SoundEvent {
            labels: vec![SoundLabel {
                name: label.into(),
                required: true,
            }],
            role: SoundRole::Respond,
            threshold: DEFAULT_SOUND_THRESHOLD,
            min_duration_ms: DEFAULT_SOUND_MIN_MS,
            release_ms: DEFAULT_SOUND_RELEASE_MS,
            at: String::new(),
        },
    )
}

fn audio_rule(name: &str, spec: RuleSpec) -> Rule {
    Rule {
        name: name.into(),
        cooldown_ms: DEFAULT_AUDIO_COOLDOWN_MS,
        on: Trigger::Partial,
        assistant: AssistantMode::default_for(&spec),
        spec,
    }
}

impl RuleSet {
    /// The built-in rules: one sound-event rule per built-in class ([`CLASSES`]: sixteen
    /// `respond` classes from `smoke-alarm` to `crash`, nine `ignore` ones such as `music`),
    /// `dead-air`, `clipping`, `too-quiet` and `wake` ("hey assistant" followed by a
    /// question).
    pub fn defaults() -> RuleSet {
        let mut rules: Vec<Rule> = CLASSES.iter().map(class_rule).collect();
        rules.extend([
            audio_rule(
                "dead-air",
                RuleSpec::DeadAir {
                    seconds: 10.0,
                    level_db: -45.0,
                    speech_threshold: 0.5,
                },
            ),
            audio_rule(
                "clipping",
                RuleSpec::Clipping {
                    window_ms: 1000,
                    ratio: 0.005,
                },
            ),
            audio_rule(
                "too-quiet",
                RuleSpec::Quiet {
                    window_ms: 3000,
                    below_db: -45.0,
                },
            ),
            Rule {
                name: "wake".into(),
                cooldown_ms: 0,
                on: Trigger::Final,
                spec: RuleSpec::Wake {
                    phrases: vec![DEFAULT_WAKE_PHRASE.into()],
                    require_question: true,
                    follow_up_ms: DEFAULT_FOLLOW_UP_MS,
                },
                assistant: AssistantMode::Respond,
            },
        ]);
        RuleSet { rules }
    }

    /// Parses a rules file's text; `origin` (usually its path) prefixes every error message.
    pub fn parse(text: &str, origin: &str) -> Result<RuleSet> {
        let src = Source { text, origin };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| src.line(s.start));
            src.error_at_line(line, e.message().trim_end().to_string())
        })?;

        let mut rules: Vec<Rule> = Vec::with_capacity(raw.rule.len());
        for spanned in &raw.rule {
            let rule = build_rule(&src, spanned)?;
            if rules.iter().any(|r| r.name == rule.name) {
                let at = spanned
                    .get_ref()
                    .name
                    .as_ref()
                    .map_or(spanned.span().start, |n| n.span().start);
                return Err(src.error(at, format!("duplicate rule name `{}`", rule.name)));
            }
            rules.push(rule);
        }

        if raw.include_defaults {
            let mut merged: Vec<Rule> = Self::defaults()
                .rules
                .into_iter()
                .filter(|d| !rules.iter().any(|r| r.name == d.name))
                .collect();
            merged.extend(rules);
            rules = merged;
        }
        Ok(RuleSet { rules })
    }

    /// Reads and parses a rules file.
    pub fn load(path: &Path) -> Result<RuleSet> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::InvalidArgument(format!(
                "cannot read alert rules file {}: {e}",
                path.display()
            ))
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The names of the sound-event rules, in rule order.
    pub fn sound_rules(&self) -> Vec<String> {
        self.rules
            .iter()
            .filter(|r| matches!(r.spec, RuleSpec::SoundEvent { .. }))
            .map(|r| r.name.clone())
            .collect()
    }

    pub fn has_text_rules(&self) -> bool {
        self.rules.iter().any(|r| r.spec.is_text())
    }

    pub fn has_audio_rules(&self) -> bool {
        self.rules.iter().any(|r| !r.spec.is_text())
    }
}

/// The text being parsed, for turning byte offsets into line numbers in messages.
struct Source<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Source<'_> {
    /// 1-based line of byte offset `at`.
    fn line(&self, at: usize) -> usize {
        let at = at.min(self.text.len());
        1 + self.text.as_bytes()[..at]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    fn error(&self, at: usize, message: String) -> Error {
        self.error_at_line(self.line(at), message)
    }

    fn error_at_line(&self, line: usize, message: String) -> Error {
        Error::Rules {
            origin: self.origin.to_string(),
            line,
            message,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFile {
    #[serde(default)]
    include_defaults: bool,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

/// A `[[rule]]` table as written: every key optional, so that what is missing or does not
/// belong to the kind can be reported by name, at its line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRule {
    name: Option<Spanned<String>>,
    kind: Option<Spanned<String>>,
    cooldown_ms: Option<Spanned<u32>>,
    assistant: Option<Spanned<String>>,
    on: Option<Spanned<String>>,
    words: Option<Spanned<Vec<String>>>,
    phrases: Option<Spanned<Vec<String>>>,
    pattern: Option<Spanned<String>>,
    wake_name: Option<Spanned<String>>,
    require_question: Option<Spanned<bool>>,
    follow_up_ms: Option<Spanned<u32>>,
    seconds: Option<Spanned<f32>>,
    level_db: Option<Spanned<f32>>,
    speech_threshold: Option<Spanned<f32>>,
    condition: Option<Spanned<String>>,
    window_ms: Option<Spanned<u32>>,
    ratio: Option<Spanned<f32>>,
    below_db: Option<Spanned<f32>>,
    label: Option<Spanned<String>>,
    labels: Option<Spanned<Vec<String>>>,
    role: Option<Spanned<String>>,
    threshold: Option<Spanned<f32>>,
    min_duration_ms: Option<Spanned<u32>>,
    release_ms: Option<Spanned<u32>>,
}

impl RawRule {
    /// The kind-specific keys present, with where their values start.
    fn specific_keys(&self) -> Vec<(&'static str, usize)> {
        fn at<T>(v: &Option<Spanned<T>>) -> Option<usize> {
            v.as_ref().map(|s| s.span().start)
        }
        [
            ("on", at(&self.on)),
            ("words", at(&self.words)),
            ("phrases", at(&self.phrases)),
            ("pattern", at(&self.pattern)),
            ("wake-name", at(&self.wake_name)),
            ("require-question", at(&self.require_question)),
            ("follow-up-ms", at(&self.follow_up_ms)),
            ("seconds", at(&self.seconds)),
            ("level-db", at(&self.level_db)),
            ("speech-threshold", at(&self.speech_threshold)),
            ("condition", at(&self.condition)),
            ("window-ms", at(&self.window_ms)),
            ("ratio", at(&self.ratio)),
            ("below-db", at(&self.below_db)),
            ("label", at(&self.label)),
            ("labels", at(&self.labels)),
            ("role", at(&self.role)),
            ("threshold", at(&self.threshold)),
            ("min-duration-ms", at(&self.min_duration_ms)),
            ("release-ms", at(&self.release_ms)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|at| (k, at)))
        .collect()
    }
}

/// One kind of rule, as a rules file names it.
struct KindDef {
    name: &'static str,
    /// `Some(default)`: a text rule, which takes `on` and fires by default on this trigger
    /// (and has no cooldown by default); `None`: an audio rule.
    text_on: Option<Trigger>,
    /// The kind-specific keys it takes (besides `name`, `kind`, `cooldown-ms`).
    keys: &'static [&'static str],
    /// For a kind with a `condition`: the keys each condition takes, narrowing `keys`.
    conditions: &'static [(&'static str, &'static [&'static str])],
    /// Checks the table's kind-specific keys and builds the rule's spec.
    build: fn(&Table) -> Result<RuleSpec>,
}

/// Every kind, in the order error messages list them.
const KINDS: &[KindDef] = &[
    KindDef {
        name: "keyword",
        text_on: Some(Trigger::Partial),
        keys: &["on", "words"],
        conditions: &[],
        build: build_keyword,
    },
    KindDef {
        name: "phrase",
        text_on: Some(Trigger::Partial),
        keys: &["on", "phrases"],
        conditions: &[],
        build: build_phrase,
    },
    KindDef {
        name: "regex",
        text_on: Some(Trigger::Partial),
        keys: &["on", "pattern"],
        conditions: &[],
        build: build_regex,
    },
    KindDef {
        name: "wake",
        text_on: Some(Trigger::Final),
        keys: &[
            "on",
            "phrases",
            "wake-name",
            "require-question",
            "follow-up-ms",
        ],
        conditions: &[],
        build: build_wake,
    },
    KindDef {
        name: "dead-air",
        text_on: None,
        keys: &["seconds", "level-db", "speech-threshold"],
        conditions: &[],
        build: build_dead_air,
    },
    KindDef {
        name: "level",
        text_on: None,
        keys: &["condition", "window-ms", "ratio", "below-db"],
        conditions: &[
            ("clipping", &["condition", "window-ms", "ratio"]),
            ("quiet", &["condition", "window-ms", "below-db"]),
        ],
        build: build_level,
    },
    KindDef {
        name: "sound-event",
        text_on: None,
        keys: &[
            "label",
            "labels",
            "role",
            "threshold",
            "min-duration-ms",
            "release-ms",
        ],
        conditions: &[],
        build: build_sound_event,
    },
];

/// One `[[rule]]` table being checked: what the kind builders need to read its values and
/// to word their errors.
struct Table<'a> {
    src: &'a Source<'a>,
    raw: &'a RawRule,
    /// Where the table's `[[rule]]` header is, where what is missing is reported.
    at: usize,
    name: String,
}

impl Table<'_> {
    /// A required key that is missing.
    fn missing(&self, key: &str) -> Error {
        self.src
            .error(self.at, format!("rule `{}` needs `{key}`", self.name))
    }

    fn error(&self, at: usize, message: String) -> Error {
        self.src
            .error(at, format!("rule `{}`: {message}", self.name))
    }

    /// A value out of range: `key` must be `must`.
    fn bad(&self, at: usize, key: &str, must: &str) -> Error {
        self.error(at, format!("`{key}` must be {must}"))
    }

    /// An optional finite number that `ok` accepts, or `default` when absent.
    fn float(
        &self,
        v: &Option<Spanned<f32>>,
        key: &str,
        default: f32,
        ok: fn(f32) -> bool,
        must: &str,
    ) -> Result<f32> {
        match v {
            None => Ok(default),
            Some(s) if s.get_ref().is_finite() && ok(*s.get_ref()) => Ok(*s.get_ref()),
            Some(s) => Err(self.bad(s.span().start, key, must)),
        }
    }

    /// An optional number in (0, 1].
    fn unit(&self, v: &Option<Spanned<f32>>, key: &str, default: f32) -> Result<f32> {
        self.float(v, key, default, |v| v > 0.0 && v <= 1.0, "in (0, 1]")
    }

    /// An optional number of any (finite) value.
    fn number(&self, v: &Option<Spanned<f32>>, key: &str, default: f32) -> Result<f32> {
        self.float(v, key, default, |_| true, "a number")
    }

    /// Phrases as written (trimmed), each with at least one word.
    fn phrases(&self, phrases: &Spanned<Vec<String>>) -> Result<Vec<String>> {
        let at = phrases.span().start;
        if phrases.get_ref().is_empty() {
            return Err(self.bad(at, "phrases", "a non-empty list of phrases"));
        }
        let mut out = Vec::new();
        for p in phrases.get_ref() {
            if words_of(p).is_empty() {
                return Err(self.error(at, format!("phrase \"{p}\" has no letters or digits")));
            }
            out.push(p.trim().to_string());
        }
        Ok(out)
    }
}

/// Checks and converts one `[[rule]]` table. Errors point at the offending value's line, or
/// at the table's `[[rule]]` header for what is missing.
fn build_rule(src: &Source, spanned: &Spanned<RawRule>) -> Result<Rule> {
    let raw = spanned.get_ref();
    // The table's span is its `[[rule]]` header, where what is missing is reported.
    let at = spanned.span().start;

    let name = raw
        .name
        .as_ref()
        .ok_or_else(|| src.error(at, "rule needs `name`".into()))?;
    if name.get_ref().trim().is_empty() {
        return Err(src.error(name.span().start, "rule name is empty".into()));
    }
    let table = Table {
        src,
        raw,
        at,
        name: name.get_ref().clone(),
    };
    let kind = raw.kind.as_ref().ok_or_else(|| table.missing("kind"))?;
    let kind_str = kind.get_ref().as_str();
    let Some(def) = KINDS.iter().find(|k| k.name == kind_str) else {
        let valid: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        return Err(table.error(
            kind.span().start,
            format!(
                "unknown kind `{kind_str}`; valid kinds: {}",
                valid.join(", ")
            ),
        ));
    };

    let condition = raw.condition.as_ref().map(|c| c.get_ref().as_str());
    let allowed = def
        .conditions
        .iter()
        .find(|(c, _)| Some(*c) == condition)
        .map_or(def.keys, |&(_, keys)| keys);
    for (key, key_at) in raw.specific_keys() {
        if !allowed.contains(&key) {
            let kind_desc = match condition {
                Some(c) if !def.conditions.is_empty() => {
                    format!("{kind_str} rule with condition `{c}`")
                }
                _ => format!("{kind_str} rule"),
            };
            let takes: Vec<&str> = allowed
                .iter()
                .copied()
                .chain(["cooldown-ms", "assistant"])
                .collect();
            return Err(table.error(
                key_at,
                format!(
                    "`{key}` does not apply to a {kind_desc} (it takes: {})",
                    takes.join(", ")
                ),
            ));
        }
    }

    let spec = (def.build)(&table)?;

    let on = match (&raw.on, def.text_on) {
        (None, Some(default)) => default,
        (None, None) => Trigger::Partial,
        (Some(on), _) => match on.get_ref().as_str() {
            "partial" => Trigger::Partial,
            "final" => Trigger::Final,
            other => {
                return Err(table.error(
                    on.span().start,
                    format!("`on` must be \"partial\" or \"final\", not \"{other}\""),
                ));
            }
        },
    };
    let default_cooldown = if def.text_on.is_some() {
        0
    } else if let Some(c) = named_class(raw) {
        c.cooldown_ms
    } else {
        DEFAULT_AUDIO_COOLDOWN_MS
    };
    let assistant = match &raw.assistant {
        None => AssistantMode::default_for(&spec),
        Some(m) => AssistantMode::parse(m.get_ref()).ok_or_else(|| {
            let valid: Vec<&str> = AssistantMode::ALL.iter().map(|m| m.as_str()).collect();
            table.error(
                m.span().start,
                format!(
                    "`assistant` must be one of {}, not \"{}\"",
                    valid.join(", "),
                    m.get_ref()
                ),
            )
        })?,
    };
    Ok(Rule {
        name: table.name,
        cooldown_ms: raw
            .cooldown_ms
            .as_ref()
            .map_or(default_cooldown, |v| *v.get_ref()),
        on,
        spec,
        assistant,
    })
}

fn build_keyword(t: &Table) -> Result<RuleSpec> {
    let words = t.raw.words.as_ref().ok_or_else(|| t.missing("words"))?;
    let at = words.span().start;
    if words.get_ref().is_empty() {
        return Err(t.bad(at, "words", "a non-empty list of words"));
    }
    let mut out = Vec::new();
    for w in words.get_ref() {
        if w.split_whitespace().count() > 1 {
            return Err(t.error(
                at,
                format!(
                    "keyword \"{w}\" has several words; use kind = \"phrase\" for word sequences"
                ),
            ));
        }
        let n = normalize_word(w);
        if n.is_empty() {
            return Err(t.error(at, format!("keyword \"{w}\" has no letters or digits")));
        }
        out.push(n);
    }
    Ok(RuleSpec::Keyword { words: out })
}

fn build_phrase(t: &Table) -> Result<RuleSpec> {
    let phrases = t.raw.phrases.as_ref().ok_or_else(|| t.missing("phrases"))?;
    Ok(RuleSpec::Phrase {
        phrases: t.phrases(phrases)?,
    })
}

fn build_regex(t: &Table) -> Result<RuleSpec> {
    let pattern = t.raw.pattern.as_ref().ok_or_else(|| t.missing("pattern"))?;
    let regex = Regex::new(pattern.get_ref())
        .map_err(|e| t.error(pattern.span().start, format!("invalid regex: {e}")))?;
    Ok(RuleSpec::Regex { pattern: regex })
}

fn build_wake(t: &Table) -> Result<RuleSpec> {
    let phrases = match (&t.raw.phrases, &t.raw.wake_name) {
        (Some(_), Some(w)) => {
            return Err(t.error(
                w.span().start,
                "give either `phrases` or `wake-name`, not both".into(),
            ));
        }
        (Some(p), None) => t.phrases(p)?,
        (None, Some(w)) => {
            let n = w.get_ref().trim();
            if words_of(n).is_empty() {
                return Err(t.bad(w.span().start, "wake-name", "a name with letters"));
            }
            vec![format!("hey {n}")]
        }
        (None, None) => vec![DEFAULT_WAKE_PHRASE.to_string()],
    };
    let follow_up_ms = t
        .raw
        .follow_up_ms
        .as_ref()
        .map_or(DEFAULT_FOLLOW_UP_MS, |v| *v.get_ref());
    if follow_up_ms > MAX_FOLLOW_UP_MS
        && let Some(v) = &t.raw.follow_up_ms
    {
        return Err(t.bad(v.span().start, "follow-up-ms", "at most 60000 (a minute)"));
    }
    Ok(RuleSpec::Wake {
        phrases,
        require_question: t.raw.require_question.as_ref().is_none_or(|v| *v.get_ref()),
        follow_up_ms,
    })
}

fn build_dead_air(t: &Table) -> Result<RuleSpec> {
    if t.raw.seconds.is_none() {
        return Err(t.missing("seconds"));
    }
    Ok(RuleSpec::DeadAir {
        seconds: t.float(&t.raw.seconds, "seconds", 0.0, |v| v > 0.0, "> 0")?,
        level_db: t.number(&t.raw.level_db, "level-db", -45.0)?,
        speech_threshold: t.unit(&t.raw.speech_threshold, "speech-threshold", 0.5)?,
    })
}

fn build_level(t: &Table) -> Result<RuleSpec> {
    let condition = t
        .raw
        .condition
        .as_ref()
        .ok_or_else(|| t.missing("condition"))?;
    let (default_window, clipping) = match condition.get_ref().as_str() {
        "clipping" => (1000, true),
        "quiet" => (3000, false),
        other => {
            return Err(t.error(
                condition.span().start,
                format!("unknown condition `{other}`; valid conditions: clipping, quiet"),
            ));
        }
    };
    let window_ms = match &t.raw.window_ms {
        None => default_window,
        Some(w) if *w.get_ref() > 0 => *w.get_ref(),
        Some(w) => return Err(t.bad(w.span().start, "window-ms", "> 0")),
    };
    Ok(if clipping {
        RuleSpec::Clipping {
            window_ms,
            ratio: t.unit(&t.raw.ratio, "ratio", 0.005)?,
        }
    } else {
        RuleSpec::Quiet {
            window_ms,
            below_db: t.number(&t.raw.below_db, "below-db", -45.0)?,
        }
    })
}

/// The one built-in class a sound-event rule names, whose values are its defaults.
fn named_class(raw: &RawRule) -> Option<&'static SoundClass> {
    match (&raw.label, &raw.labels) {
        (Some(l), None) => class(l.get_ref().trim()),
        (None, Some(ls)) if ls.get_ref().len() == 1 => class(ls.get_ref()[0].trim()),
        _ => None,
    }
}

fn build_sound_event(t: &Table) -> Result<RuleSpec> {
    let (names, at) = match (&t.raw.label, &t.raw.labels) {
        (Some(_), Some(ls)) => {
            return Err(t.error(
                ls.span().start,
                "give either `label` or `labels`, not both".into(),
            ));
        }
        (Some(l), None) => (vec![l.get_ref().clone()], l.span().start),
        (None, Some(ls)) => (ls.get_ref().clone(), ls.span().start),
        (None, None) => return Err(t.missing("label")),
    };
    if names.is_empty() {
        return Err(t.bad(at, "labels", "a non-empty list of tagger labels or classes"));
    }
    let mut labels: Vec<SoundLabel> = Vec::new();
    for name in &names {
        let name = name.trim();
        if name.is_empty() {
            return Err(t.bad(at, "label", "a tagger label or a class name"));
        }
        let more = match class(name) {
            Some(c) => class_labels(c),
            None => vec![SoundLabel {
                name: name.into(),
                required: true,
            }],
        };
        for l in more {
            if !labels.iter().any(|x| x.name.eq_ignore_ascii_case(&l.name)) {
                labels.push(l);
            }
        }
    }
    let base = named_class(t.raw);
    let role = match &t.raw.role {
        None => base.map_or(SoundRole::Respond, |c| c.role),
        Some(r) => match r.get_ref().as_str() {
            "respond" => SoundRole::Respond,
            "ignore" => SoundRole::Ignore,
            other => {
                return Err(t.error(
                    r.span().start,
                    format!("`role` must be \"respond\" or \"ignore\", not \"{other}\""),
                ));
            }
        },
    };
    Ok(RuleSpec::SoundEvent {
        labels,
        role,
        threshold: t.unit(
            &t.raw.threshold,
            "threshold",
            base.map_or(DEFAULT_SOUND_THRESHOLD, |c| c.threshold),
        )?,
        min_duration_ms: t.raw.min_duration_ms.as_ref().map_or(
            base.map_or(DEFAULT_SOUND_MIN_MS, |c| c.min_duration_ms),
            |v| *v.get_ref(),
        ),
        release_ms: t.raw.release_ms.as_ref().map_or(
            base.map_or(DEFAULT_SOUND_RELEASE_MS, |c| c.release_ms),
            |v| *v.get_ref(),
        ),
        at: format!("{}:{}", t.src.origin, t.src.line(at)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The module documentation's example.
    const FULL_EXAMPLE: &str = r#"include-defaults = true

[[rule]]
name = "kitchen-glass"
kind = "sound-event"
label = "glass"
role = "respond"
threshold = 0.5
min-duration-ms = 1000
release-ms = 2000
cooldown-ms = 10000

[[rule]]
name = "budget"
kind = "keyword"
words = ["budget", "deadline"]
on = "partial"

[[rule]]
name = "actions"
kind = "phrase"
phrases = ["action item", "follow up"]

[[rule]]
name = "ticket"
kind = "regex"
pattern = "(?i)ticket \\d+"

[[rule]]
name = "assistant"
kind = "wake"
phrases = ["hey assistant"]
require-question = true
on = "final"

[[rule]]
name = "dead-air"
kind = "dead-air"
seconds = 10.0
level-db = -45.0
speech-threshold = 0.5

[[rule]]
name = "clipping"
kind = "level"
condition = "clipping"
window-ms = 1000
ratio = 0.005

[[rule]]
name = "too-quiet"
kind = "level"
condition = "quiet"
below-db = -45.0
"#;

    fn rule<'a>(set: &'a RuleSet, name: &str) -> &'a Rule {
        set.rules
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no rule {name}"))
    }

    /// The line an error points at, and its message.
    fn parse_err(text: &str) -> (usize, String) {
        match RuleSet::parse(text, "rules.toml") {
            Err(e @ Error::Rules { line, .. }) => (line, e.to_string()),
            Err(e) => panic!("unexpected error kind: {e}"),
            Ok(_) => panic!("parsed:\n{text}"),
        }
    }

    fn set(text: &str) -> RuleSet {
        RuleSet::parse(text, "test").unwrap_or_else(|e| panic!("{e}"))
    }

    // ----- parsing --------------------------------------------------------------------

    #[test]
    fn parses_the_full_example() {
        let s = set(FULL_EXAMPLE);
        // The built-ins, of which dead-air, clipping and too-quiet are replaced, plus the
        // five new rules.
        let builtins = RuleSet::defaults().rules.len();
        assert_eq!(s.rules.len(), builtins + 5);
        match &rule(&s, "kitchen-glass").spec {
            RuleSpec::SoundEvent {
                labels,
                role,
                threshold,
                min_duration_ms,
                release_ms,
                at,
            } => {
                let names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
                assert_eq!(names, ["Glass", "Shatter", "Breaking"]);
                assert!(labels.iter().all(|l| !l.required));
                assert_eq!(*role, SoundRole::Respond);
                assert_eq!(*threshold, 0.5);
                assert_eq!(*min_duration_ms, 1000);
                assert_eq!(*release_ms, 2000);
                assert_eq!(at, "test:6");
            }
            other => panic!("{other:?}"),
        }
        let budget = rule(&s, "budget");
        assert_eq!(budget.on, Trigger::Partial);
        assert_eq!(budget.cooldown_ms, 0);
        assert!(
            matches!(&budget.spec, RuleSpec::Keyword { words } if words == &["budget", "deadline"])
        );
        assert!(
            matches!(&rule(&s, "actions").spec, RuleSpec::Phrase { phrases } if phrases.len() == 2)
        );
        assert!(
            matches!(&rule(&s, "ticket").spec, RuleSpec::Regex { pattern } if pattern.is_match("TICKET 4"))
        );
        let wake = rule(&s, "assistant");
        assert_eq!(wake.on, Trigger::Final);
        assert!(matches!(
            &wake.spec,
            RuleSpec::Wake {
                require_question: true,
                ..
            }
        ));
        assert!(matches!(
            rule(&s, "clipping").spec,
            RuleSpec::Clipping { window_ms: 1000, ratio } if ratio == 0.005
        ));
        assert!(matches!(
            rule(&s, "too-quiet").spec,
            RuleSpec::Quiet { window_ms: 3000, below_db } if below_db == -45.0
        ));
        assert_eq!(rule(&s, "dead-air").cooldown_ms, 10_000);
        assert!(s.has_text_rules() && s.has_audio_rules());
        assert_eq!(s.sound_rules().len(), CLASSES.len() + 1);
    }

    /// A rule naming a class gets its labels and tuned values unless it sets its own; labels
    /// named in the rule are required; `role` switches between alert and quiet report.
    #[test]
    fn sound_rules_name_classes_and_labels() {
        let s = set(r#"
[[rule]]
name = "my-music"
kind = "sound-event"
label = "MUSIC"

[[rule]]
name = "fire"
kind = "sound-event"
labels = ["smoke alarm", "Fire alarm", "siren"]
role = "ignore"
threshold = 0.6
"#);
        let music = rule(&s, "my-music");
        let c = class("music").expect("music class");
        assert_eq!(music.cooldown_ms, c.cooldown_ms);
        match &music.spec {
            RuleSpec::SoundEvent {
                role, threshold, ..
            } => assert_eq!((*role, *threshold), (SoundRole::Ignore, c.threshold)),
            other => panic!("{other:?}"),
        }
        let fire = rule(&s, "fire");
        assert_eq!(fire.cooldown_ms, DEFAULT_AUDIO_COOLDOWN_MS);
        match &fire.spec {
            RuleSpec::SoundEvent {
                labels,
                role,
                threshold,
                min_duration_ms,
                ..
            } => {
                let required: Vec<(&str, bool)> = labels
                    .iter()
                    .map(|l| (l.name.as_str(), l.required))
                    .collect();
                // The class named among labels brings its labels, not required one by one.
                assert_eq!(
                    &required[..2],
                    [("smoke alarm", true), ("Fire alarm", true)]
                );
                assert!(required[2..].iter().all(|(_, r)| !r));
                assert!(required.iter().any(|(n, _)| *n == "Civil defense siren"));
                assert_eq!((*role, *threshold), (SoundRole::Ignore, 0.6));
                assert_eq!(*min_duration_ms, DEFAULT_SOUND_MIN_MS);
            }
            other => panic!("{other:?}"),
        }
        let (line, msg) = parse_err(
            "[[rule]]\nname = \"a\"\nkind = \"sound-event\"\nlabel = \"x\"\nrole = \"alert\"\n",
        );
        assert_eq!(line, 5, "{msg}");
        assert!(msg.contains("`role` must be"), "{msg}");
        let (line, msg) = parse_err(
            "[[rule]]\nname = \"a\"\nkind = \"sound-event\"\nlabel = \"x\"\nlabels = [\"y\"]\n",
        );
        assert_eq!(line, 5, "{msg}");
        assert!(msg.contains("either `label` or `labels`"), "{msg}");
    }

    /// `assistant` forces or forbids the language model per rule; without it, a wake rule is
    /// answered, a respond-class sound gets the sound default and the rest only inform.
    #[test]
    fn the_assistant_key_forces_or_forbids_the_model() {
        let s = RuleSet::parse(
            "include-defaults = true\n\
             [[rule]]\nname = \"glass\"\nkind = \"sound-event\"\nlabel = \"glass\"\nassistant = \"silent\"\n\
             [[rule]]\nname = \"tunes\"\nkind = \"sound-event\"\nlabel = \"music\"\nassistant = \"decide\"\n\
             [[rule]]\nname = \"help\"\nkind = \"keyword\"\nwords = [\"help\"]\nassistant = \"respond\"\n\
             [[rule]]\nname = \"budget\"\nkind = \"keyword\"\nwords = [\"budget\"]\n",
            "rules.toml",
        )
        .expect("parses");
        let mode = |name: &str| rule(&s, name).assistant;
        assert_eq!(mode("glass"), AssistantMode::Silent);
        assert_eq!(mode("tunes"), AssistantMode::Decide);
        assert_eq!(mode("help"), AssistantMode::Respond);
        assert_eq!(mode("budget"), AssistantMode::Silent);
        assert_eq!(mode("wake"), AssistantMode::Respond);
        assert_eq!(mode("siren"), AssistantMode::SOUND_DEFAULT);
        assert_eq!(mode("music"), AssistantMode::Silent);
        assert_eq!(mode("dead-air"), AssistantMode::Silent);
        let (line, msg) =
            parse_err("[[rule]]\nname = \"a\"\nkind = \"wake\"\n\nassistant = \"maybe\"\n");
        assert_eq!(line, 5, "{msg}");
        assert!(
            msg.contains("`assistant` must be one of decide, respond, silent"),
            "{msg}"
        );
    }

    #[test]
    fn defaults() {
        let d = RuleSet::defaults();
        let names: Vec<&str> = d.rules.iter().map(|r| r.name.as_str()).collect();
        let classes: Vec<&str> = CLASSES.iter().map(|c| c.name).collect();
        assert_eq!(names[..classes.len()], classes[..]);
        assert_eq!(
            names[classes.len()..],
            ["dead-air", "clipping", "too-quiet", "wake"]
        );
        assert_eq!(d.sound_rules(), classes);
        assert!(matches!(
            rule(&d, "dead-air").spec,
            RuleSpec::DeadAir { seconds, level_db, speech_threshold }
                if seconds == 10.0 && level_db == -45.0 && speech_threshold == 0.5
        ));
        let wake = rule(&d, "wake");
        assert_eq!(wake.on, Trigger::Final);
        assert!(matches!(
            &wake.spec,
            RuleSpec::Wake { phrases, require_question: true, follow_up_ms: 6000 } if phrases == &["hey assistant"]
        ));
        assert_eq!(rule(&d, "smoke-alarm").cooldown_ms, 10_000);
        assert!(d.has_text_rules() && d.has_audio_rules());
    }

    #[test]
    fn include_defaults_and_override() {
        let s = set(
            "include-defaults = true\n[[rule]]\nname = \"dead-air\"\nkind = \"dead-air\"\nseconds = 5\n",
        );
        assert_eq!(s.rules.len(), RuleSet::defaults().rules.len());
        assert!(
            matches!(rule(&s, "dead-air").spec, RuleSpec::DeadAir { seconds, .. } if seconds == 5.0)
        );

        let only = set("[[rule]]\nname = \"x\"\nkind = \"keyword\"\nwords = [\"Budget!\"]\n");
        assert_eq!(only.rules.len(), 1);
        assert!(matches!(&only.rules[0].spec, RuleSpec::Keyword { words } if words == &["budget"]));
        assert!(only.has_text_rules() && !only.has_audio_rules());
        assert!(set("").rules.is_empty());
    }

    #[test]
    fn wake_name_and_defaults() {
        let s = set("[[rule]]\nname = \"w\"\nkind = \"wake\"\nwake-name = \"Jarvis\"\n");
        let w = rule(&s, "w");
        assert_eq!(w.on, Trigger::Final);
        assert_eq!(w.cooldown_ms, 0);
        assert!(
            matches!(&w.spec, RuleSpec::Wake { phrases, require_question: true, follow_up_ms: 6000 } if phrases[0] == "hey Jarvis")
        );
        let s = set(
            "[[rule]]\nname = \"w\"\nkind = \"wake\"\nrequire-question = false\non = \"partial\"\n",
        );
        let w = rule(&s, "w");
        assert_eq!(w.on, Trigger::Partial);
        assert!(
            matches!(&w.spec, RuleSpec::Wake { phrases, require_question: false, .. } if phrases.len() == 1)
        );
    }

    #[test]
    fn errors_name_the_line() {
        #[rustfmt::skip]
        let cases: &[(&str, usize, &str)] = &[
            // syntax
            ("x = = 1\n", 1, "rules.toml:1:"),
            // unknown keys: the typo is on line 7
            ("[[rule]]\nname = \"a\"\nkind = \"keyword\"\nwords = [\"a\"]\n\n# typo below\nword = [\"b\"]\n", 7, "unknown field `word`"),
            ("bogus-top = 1\n", 1, "unknown field `bogus-top`"),
            // wrong types
            ("[[rule]]\nname = 3\n", 2, "expected a string"),
            ("[[rule]]\nname = \"a\"\nkind = \"dead-air\"\nseconds = 1\ncooldown-ms = -1\n", 5, "u32"),
            // unknown kind, listing the valid ones
            ("[[rule]]\nname = \"a\"\nkind = \"sound\"\n", 3, "valid kinds: keyword, phrase"),
            // missing keys: reported at the table header
            ("\n[[rule]]\nkind = \"keyword\"\n", 2, "needs `name`"),
            ("[[rule]]\nname = \"a\"\n", 1, "needs `kind`"),
            ("\n\n[[rule]]\nname = \"a\"\nkind = \"dead-air\"\n", 3, "needs `seconds`"),
            ("[[rule]]\nname = \"a\"\nkind = \"keyword\"\n", 1, "needs `words`"),
            ("[[rule]]\nname = \"a\"\nkind = \"sound-event\"\n", 1, "needs `label`"),
            ("[[rule]]\nname = \"a\"\nkind = \"level\"\n", 1, "needs `condition`"),
            // out of range
            ("[[rule]]\nname = \"a\"\nkind = \"sound-event\"\nlabel = \"x\"\nthreshold = 1.5\n", 5, "`threshold` must be in (0, 1]"),
            ("[[rule]]\nname = \"a\"\nkind = \"sound-event\"\nlabel = \"x\"\nthreshold = 0\n", 5, "`threshold`"),
            ("[[rule]]\nname = \"a\"\nkind = \"dead-air\"\nseconds = 0\n", 4, "`seconds` must be > 0"),
            ("[[rule]]\nname = \"a\"\nkind = \"dead-air\"\nseconds = -3.5\n", 4, "`seconds`"),
            ("[[rule]]\nname = \"a\"\nkind = \"level\"\ncondition = \"clipping\"\nratio = 2.0\n", 5, "`ratio`"),
            ("[[rule]]\nname = \"a\"\nkind = \"level\"\ncondition = \"quiet\"\nwindow-ms = 0\n", 5, "`window-ms` must be > 0"),
            ("[[rule]]\nname = \"a\"\nkind = \"level\"\ncondition = \"loud\"\n", 4, "valid conditions: clipping, quiet"),
            ("[[rule]]\nname = \"a\"\nkind = \"keyword\"\nwords = [\"a\"]\non = \"soon\"\n", 5, "`on` must be"),
            // keys that do not apply to the kind
            ("[[rule]]\nname = \"a\"\nkind = \"sound-event\"\nlabel = \"x\"\nwords = [\"a\"]\n", 5, "`words` does not apply to a sound-event rule"),
            ("[[rule]]\nname = \"a\"\nkind = \"dead-air\"\nseconds = 3\non = \"final\"\n", 5, "`on` does not apply"),
            ("[[rule]]\nname = \"a\"\nkind = \"level\"\ncondition = \"quiet\"\nratio = 0.1\n", 5, "`ratio` does not apply to a level rule with condition `quiet`"),
            ("[[rule]]\nname = \"a\"\nkind = \"wake\"\nphrases = [\"hi\"]\nwake-name = \"bob\"\n", 5, "not both"),
            // duplicates, at the second name
            ("[[rule]]\nname = \"a\"\nkind = \"keyword\"\nwords = [\"x\"]\n[[rule]]\nname = \"a\"\nkind = \"keyword\"\nwords = [\"y\"]\n", 6, "duplicate rule name `a`"),
            // invalid regex, with regex's own message
            ("[[rule]]\nname = \"a\"\nkind = \"regex\"\npattern = \"ticket (\\\\d+\"\n", 4, "unclosed group"),
            // empty or unusable words
            ("[[rule]]\nname = \"a\"\nkind = \"keyword\"\nwords = []\n", 4, "non-empty"),
            ("[[rule]]\nname = \"a\"\nkind = \"keyword\"\nwords = [\"...\"]\n", 4, "no letters"),
            ("[[rule]]\nname = \"a\"\nkind = \"keyword\"\nwords = [\"action item\"]\n", 4, "kind = \"phrase\""),
            ("[[rule]]\nname = \"a\"\nkind = \"phrase\"\nphrases = []\n", 4, "non-empty"),
            ("[[rule]]\nname = \"\"\nkind = \"phrase\"\n", 2, "name is empty"),
        ];
        for &(text, line, needle) in cases {
            let (got, msg) = parse_err(text);
            assert_eq!(got, line, "{msg}\n--- for:\n{text}");
            assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
            assert!(msg.starts_with(&format!("rules.toml:{line}: ")), "{msg}");
        }
    }

    #[test]
    fn load_names_the_path() {
        let path = std::path::Path::new("/nonexistent/alerts/rules.toml");
        let msg = RuleSet::load(path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("/nonexistent/alerts/rules.toml"), "{msg}");

        let dir = std::env::temp_dir().join(format!("soundflow-alerts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rules.toml");
        std::fs::write(&file, "[[rule]]\nname = \"a\"\nkind = \"nope\"\n").unwrap();
        let msg = RuleSet::load(&file)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.starts_with(&format!("{}:3: ", file.display())), "{msg}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

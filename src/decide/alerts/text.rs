//! The text rules (keyword, phrase, regex, wake) over transcript words, and the word
//! normalisation they compare by.

use regex::Regex;

use super::cooldown::Cooldown;
use super::types::{Alert, AlertKind, AssistantMode, RuleSet, RuleSpec, Trigger};
use crate::base::time::ms_to_samples;
use crate::perceive::perception::Word;

/// Two sightings of a rule's match this close (first word starts) are the same occurrence:
/// successive hypotheses re-time the same words slightly.
const DEDUP_TOLERANCE_MS: u32 = 300;
/// How long fired occurrences are remembered; hypotheses never revise older words.
const DEDUP_MEMORY_MS: u32 = 120_000;
/// A wake phrase followed by a question that starts with one of these (or ends with '?')
/// is addressed to the assistant.
const QUESTION_WORDS: &[&str] = &[
    "what", "when", "where", "who", "whom", "whose", "why", "how", "which", "is", "are", "am",
    "was", "were", "do", "does", "did", "can", "could", "will", "would", "should", "shall", "may",
    "might", "have", "has", "had",
];

/// A word as rules compare it: lowercase letters and digits, keeping apostrophes inside
/// the word ("don't", with ’ counting as '), so "Budget," and "budget" agree. Idempotent,
/// and the same for a word and its lowercase form.
pub fn normalize_word(word: &str) -> String {
    let kept: String = word
        .chars()
        .map(|c| if c == '\u{2019}' { '\'' } else { c })
        // Lowercase first: some capitals lower to a letter and a combining mark (U+0130 to
        // i + U+0307), and the filter must see what is kept, or a second pass would differ.
        .flat_map(char::to_lowercase)
        // Σ lowers to σ one letter at a time, while lowercase text ends a word with ς: fold
        // ς to σ (as Unicode case folding does) so that "ΟΔΟΣ" and "οδος" agree.
        .map(|c| if c == 'ς' { 'σ' } else { c })
        .filter(|c| c.is_alphanumeric() || *c == '\'')
        .collect();
    kept.trim_matches('\'').to_string()
}

/// The normalised words of a phrase, dropping what is only punctuation.
pub(super) fn words_of(phrase: &str) -> Vec<String> {
    phrase
        .split_whitespace()
        .map(normalize_word)
        .filter(|w| !w.is_empty())
        .collect()
}

/// Evaluates the text rules (keyword, phrase, regex, wake) over an utterance's words, as
/// partial hypotheses grow and when the final text arrives.
///
/// A rule fires at most once per occurrence: partial hypotheses repeat the words already
/// seen and the final text repeats them again, so each fired (rule, first word start) is
/// remembered, within [`DEDUP_TOLERANCE_MS`], for [`DEDUP_MEMORY_MS`].
#[derive(Debug, Clone)]
pub struct TextAlerts {
    rate: u32,
    rules: Vec<TextRule>,
    /// (rule index, first word start) of the occurrences already handled.
    fired: Vec<(usize, u64)>,
    tolerance: u64,
    memory: u64,
}

#[derive(Debug, Clone)]
struct TextRule {
    name: String,
    assistant: AssistantMode,
    on: Trigger,
    cooldown: Cooldown,
    matcher: Matcher,
    /// A wake rule whose phrase was said alone: the next utterance is the question.
    armed: Option<Armed>,
}

/// A wake phrase heard alone in its utterance, waiting for the question.
#[derive(Debug, Clone)]
struct Armed {
    label: String,
    /// The phrase's end: the question starts after it ...
    after: u64,
    /// ... and by this sample.
    until: u64,
}

#[derive(Debug, Clone)]
enum Matcher {
    Keyword(Vec<String>),
    /// Each phrase as written, with its normalised words.
    Phrase(Vec<(String, Vec<String>)>),
    Regex(Regex),
    Wake {
        phrases: Vec<(String, Vec<String>)>,
        require_question: bool,
        /// Samples after a phrase said alone within which the next utterance is its question.
        follow_up: u64,
    },
}

/// One match of a text rule, before deduplication and the cooldown.
struct Hit {
    kind: AlertKind,
    label: String,
    text: String,
    start: u64,
    end: u64,
}

impl Matcher {
    /// The matcher of a text rule; `None` for an audio rule.
    fn of(spec: &RuleSpec, rate: u32) -> Option<Matcher> {
        let with_words = |phrases: &[String]| -> Vec<(String, Vec<String>)> {
            phrases
                .iter()
                .map(|p| (p.clone(), words_of(p)))
                .filter(|(_, w)| !w.is_empty())
                .collect()
        };
        Some(match spec {
            RuleSpec::Keyword { words } => {
                Matcher::Keyword(words.iter().map(|w| normalize_word(w)).collect())
            }
            RuleSpec::Phrase { phrases } => Matcher::Phrase(with_words(phrases)),
            RuleSpec::Regex { pattern } => Matcher::Regex(pattern.clone()),
            RuleSpec::Wake {
                phrases,
                require_question,
                follow_up_ms,
            } => Matcher::Wake {
                phrases: with_words(phrases),
                require_question: *require_question,
                follow_up: ms_to_samples(*follow_up_ms, rate),
            },
            _ => return None,
        })
    }
}

impl TextAlerts {
    pub fn new(rules: &RuleSet, rate: u32) -> Self {
        let rate = rate.max(1);
        let rules = rules
            .rules
            .iter()
            .filter_map(|r| {
                Some(TextRule {
                    name: r.name.clone(),
                    assistant: r.assistant,
                    on: r.on,
                    cooldown: Cooldown::new(r.cooldown_ms, rate),
                    matcher: Matcher::of(&r.spec, rate)?,
                    armed: None,
                })
            })
            .collect();
        Self {
            rate,
            rules,
            fired: Vec::new(),
            tolerance: ms_to_samples(DEDUP_TOLERANCE_MS, rate),
            memory: ms_to_samples(DEDUP_MEMORY_MS, rate),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// `words`: the utterance's words so far (`is_final` false: the committed words of a
    /// partial hypothesis; true: the final words), timed in stream samples. Returns the
    /// alerts not already reported for the same occurrence, in start order. Rules set to
    /// fire on final text ignore partial pushes.
    pub fn push(&mut self, words: &[Word], is_final: bool) -> Vec<Alert> {
        let norm: Vec<(usize, String)> = words
            .iter()
            .enumerate()
            .map(|(i, w)| (i, normalize_word(&w.text)))
            .filter(|(_, n)| !n.is_empty())
            .collect();
        if let Some(newest) = words.iter().map(|w| w.end).max() {
            let memory = self.memory;
            self.fired.retain(|&(_, s)| s + memory >= newest);
        }

        let mut out = Vec::new();
        for (ri, rule) in self.rules.iter_mut().enumerate() {
            if rule.on == Trigger::Final && !is_final {
                continue;
            }
            let hits = match rule.follow_up(words, &norm, is_final) {
                Some(hits) => hits,
                None => rule.matcher.find(words, &norm),
            };
            for hit in hits {
                let tolerance = self.tolerance;
                let seen = self
                    .fired
                    .iter()
                    .any(|&(r, s)| r == ri && s.abs_diff(hit.start) <= tolerance);
                if seen {
                    continue;
                }
                // Remembered even when the cooldown holds it back, so that it is not
                // reported later from a repeat of the same words.
                self.fired.push((ri, hit.start));
                if rule.cooldown.try_fire(hit.start) {
                    out.push(Alert {
                        kind: hit.kind,
                        rule: rule.name.clone(),
                        label: hit.label,
                        confidence: 1.0,
                        start: hit.start,
                        end: hit.end,
                        rate: self.rate,
                        text: hit.text,
                        assistant: rule.assistant,
                    });
                }
            }
        }
        out.sort_by_key(|a| a.start);
        out
    }

    /// Flush or discontinuity: forgets which occurrences fired (stream positions may
    /// restart) and any wake phrase waiting for its question, keeps the cooldown clocks.
    pub fn reset(&mut self) {
        self.fired.clear();
        for r in &mut self.rules {
            r.armed = None;
        }
    }
}

impl TextRule {
    /// A wake rule's follow-up, on final text: a phrase said alone arms the rule (no hits), and
    /// the next utterance, when it starts in time and holds no wake phrase of its own, is the
    /// question (one hit). None: match the utterance as usual.
    fn follow_up(
        &mut self,
        words: &[Word],
        norm: &[(usize, String)],
        is_final: bool,
    ) -> Option<Vec<Hit>> {
        let Matcher::Wake {
            phrases,
            require_question,
            follow_up,
        } = &self.matcher
        else {
            return None;
        };
        if !is_final || !*require_question || *follow_up == 0 {
            return None;
        }
        let first = norm.first().map(|&(i, _)| &words[i])?;
        let own_phrase = wake_phrase(phrases, norm);
        if let Some(a) = self.armed.take()
            && own_phrase.is_none()
            && first.start > a.after
            && first.start <= a.until
        {
            return Some(vec![Hit {
                kind: AlertKind::Respond,
                label: a.label,
                text: spoken(&words[norm[0].0..]),
                start: first.start,
                end: words.last().map_or(first.end, |w| w.end),
            }]);
        }
        let (label, j, len) = own_phrase?;
        if j + len < norm.len() {
            return None;
        }
        let end = words[norm[j + len - 1].0].end;
        self.armed = Some(Armed {
            label: label.to_string(),
            after: end,
            until: end + follow_up,
        });
        Some(Vec::new())
    }
}

/// The words as spoken, joined by single spaces.
fn spoken(words: &[Word]) -> String {
    let parts: Vec<&str> = words
        .iter()
        .map(|w| w.text.trim())
        .filter(|t| !t.is_empty())
        .collect();
    parts.join(" ")
}

/// Where `seq` occurs as consecutive entries of `norm`: positions in `norm`.
fn occurrences(norm: &[(usize, String)], seq: &[String]) -> Vec<usize> {
    if seq.is_empty() || seq.len() > norm.len() {
        return Vec::new();
    }
    (0..=norm.len() - seq.len())
        .filter(|&j| {
            norm[j..j + seq.len()]
                .iter()
                .zip(seq)
                .all(|((_, n), s)| n == s)
        })
        .collect()
}

impl Matcher {
    fn find(&self, words: &[Word], norm: &[(usize, String)]) -> Vec<Hit> {
        match self {
            Matcher::Keyword(keywords) => norm
                .iter()
                .filter(|(_, n)| keywords.contains(n))
                .map(|(i, n)| Hit {
                    kind: AlertKind::Keyword,
                    label: n.clone(),
                    text: words[*i].text.trim().to_string(),
                    start: words[*i].start,
                    end: words[*i].end,
                })
                .collect(),
            Matcher::Phrase(phrases) => {
                let mut hits = Vec::new();
                for (phrase, seq) in phrases {
                    for j in occurrences(norm, seq) {
                        let (first, last) = (norm[j].0, norm[j + seq.len() - 1].0);
                        hits.push(Hit {
                            kind: AlertKind::Keyword,
                            label: phrase.clone(),
                            text: spoken(&words[first..=last]),
                            start: words[first].start,
                            end: words[last].end,
                        });
                    }
                }
                hits
            }
            Matcher::Regex(regex) => regex_hits(regex, words),
            Matcher::Wake {
                phrases,
                require_question,
                ..
            } => wake_hit(phrases, *require_question, words, norm)
                .into_iter()
                .collect(),
        }
    }
}

/// Matches over the words joined by single spaces; a match is timed by the words its first
/// and last bytes fall in.
fn regex_hits(regex: &Regex, words: &[Word]) -> Vec<Hit> {
    let mut text = String::new();
    // (byte start, byte end, word index) of each word in `text`.
    let mut spans: Vec<(usize, usize, usize)> = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let t = w.text.trim();
        if t.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        spans.push((text.len(), text.len() + t.len(), i));
        text.push_str(t);
    }
    regex
        .find_iter(&text)
        .filter(|m| !m.is_empty())
        .filter_map(|m| {
            let first = spans.iter().find(|&&(_, e, _)| e > m.start())?.2;
            let last = spans.iter().rev().find(|&&(s, _, _)| s < m.end())?.2;
            Some(Hit {
                kind: AlertKind::Keyword,
                label: m.as_str().to_string(),
                text: m.as_str().to_string(),
                start: words[first].start,
                end: words[last.max(first)].end,
            })
        })
        .collect()
}

/// The first wake phrase in the utterance, heard right or nearly: the phrase as written,
/// where in `norm` it starts, and how many words it has.
fn wake_phrase<'a>(
    phrases: &'a [(String, Vec<String>)],
    norm: &[(usize, String)],
) -> Option<(&'a str, usize, usize)> {
    phrases
        .iter()
        .filter_map(|(p, seq)| {
            if seq.is_empty() || seq.len() > norm.len() {
                return None;
            }
            (0..=norm.len() - seq.len())
                .find(|&j| {
                    norm[j..j + seq.len()]
                        .iter()
                        .zip(seq)
                        .all(|((_, heard), want)| near_word(heard, want))
                })
                .map(|j| (p.as_str(), j, seq.len()))
        })
        .min_by_key(|&(_, j, _)| j)
}

/// Whether a heard word may stand for a wake phrase's word: the ASR's near-misses of a name
/// said to a machine ("hi assistant", "h assistant", "a assistant", "hey assistance"), but
/// not other words people say ("his assistant", "her assistant", "an assistant", "the
/// assistant"). A short word (≤ 3 letters: "hey") may be heard cut to one or two letters
/// ("h", "hi"), with one vowel changed ("hay"), or, when it starts with an h, as one or two
/// vowels ("a"); otherwise the first letter must agree, and a longer word be within one edit
/// (4–7 letters) or two (8 or more: "assistant").
fn near_word(heard: &str, want: &str) -> bool {
    if heard == want {
        return true;
    }
    let (h, w): (Vec<char>, Vec<char>) = (heard.chars().collect(), want.chars().collect());
    let vowel = |c: char| "aeiouy".contains(c);
    // The h dropped: "hey" heard as "a" or "ay" (not "an": that is a word before a noun).
    if w.len() <= 3
        && w.first() == Some(&'h')
        && (1..=2).contains(&h.len())
        && h.iter().all(|c| vowel(*c))
    {
        return true;
    }
    if h.first() != w.first() || h.is_empty() {
        return false;
    }
    if w.len() <= 3 {
        let cut = h.len() <= 2 && h.len() < w.len();
        let one_vowel = h.len() == w.len()
            && h.iter()
                .zip(&w)
                .filter(|(a, b)| a != b)
                .all(|(a, b)| vowel(*a) && vowel(*b))
            && h.iter().zip(&w).filter(|(a, b)| a != b).count() == 1;
        return cut || one_vowel;
    }
    let budget = if w.len() >= 8 { 2 } else { 1 };
    edit_distance(&h, &w) <= budget
}

/// Levenshtein distance between two words.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = diag + usize::from(ca != cb);
            diag = row[j + 1];
            row[j + 1] = sub.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// The first wake phrase in the utterance, and what follows it as the question.
fn wake_hit(
    phrases: &[(String, Vec<String>)],
    require_question: bool,
    words: &[Word],
    norm: &[(usize, String)],
) -> Option<Hit> {
    let (phrase, j, len) = wake_phrase(phrases, norm)?;
    let first = norm[j].0;
    let after = norm[j + len - 1].0 + 1;
    // The question starts at its first real word, not at punctuation left after the phrase.
    let question_words = match norm.get(j + len) {
        Some(&(q, _)) => &words[q..],
        None => &words[after.min(words.len())..],
    };
    let question = spoken(question_words);
    if require_question {
        let first_word = norm.get(j + len).map(|(_, n)| n.as_str());
        let asks =
            question.ends_with('?') || first_word.is_some_and(|w| QUESTION_WORDS.contains(&w));
        if first_word.is_none() || !asks {
            return None;
        }
    }
    let end = words.last().map_or(words[first].end, |w| w.end);
    Some(Hit {
        kind: AlertKind::Respond,
        label: phrase.to_string(),
        text: question,
        start: words[first].start,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 16_000;

    /// Words half a second apart from `at` seconds, each 0.4 s long.
    fn words(at: f32, text: &str) -> Vec<Word> {
        let base = (at * RATE as f32) as u64;
        text.split_whitespace()
            .enumerate()
            .map(|(i, t)| Word {
                text: format!(" {t}"),
                start: base + i as u64 * 8000,
                end: base + i as u64 * 8000 + 6400,
            })
            .collect()
    }

    fn text_rules(toml: &str) -> TextAlerts {
        let set = RuleSet::parse(toml, "test").unwrap_or_else(|e| panic!("{e}"));
        TextAlerts::new(&set, RATE)
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalize_word("Budget,"), "budget");
        assert_eq!(normalize_word("\"Don't!\""), "don't");
        assert_eq!(normalize_word("it\u{2019}s"), "it's");
        assert_eq!(normalize_word("'quoted'"), "quoted");
        assert_eq!(normalize_word("--"), "");
        assert_eq!(
            normalize_word("İstanbul"),
            normalize_word(&normalize_word("İstanbul"))
        );
        assert_eq!(words_of("Hey, assistant"), ["hey", "assistant"]);
    }

    #[test]
    fn keyword_fires_once_across_partials_and_final() {
        let mut t = text_rules(
            "[[rule]]\nname = \"b\"\nkind = \"keyword\"\nwords = [\"budget\", \"deadline\"]\n",
        );
        assert!(!t.is_empty());
        assert!(t.push(&words(1.0, "We need the"), false).is_empty());
        let out = t.push(&words(1.0, "We need the Budget, now"), false);
        assert_eq!(out.len(), 1);
        let a = &out[0];
        assert_eq!(
            (a.kind, a.label.as_str(), a.text.as_str()),
            (AlertKind::Keyword, "budget", "Budget,")
        );
        assert_eq!(
            (a.start, a.end),
            (16_000 + 3 * 8000, 16_000 + 3 * 8000 + 6400)
        );
        assert_eq!(a.confidence, 1.0);
        // The same hypothesis again, then the final, re-timed by 0.1 s.
        assert!(
            t.push(&words(1.0, "We need the Budget, now"), false)
                .is_empty()
        );
        assert!(
            t.push(&words(1.1, "We need the budget now and a deadline"), true)
                .len()
                == 1
        );
        // A later occurrence is a new one.
        let out = t.push(&words(10.0, "budget again"), true);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].start, 160_000);
        // Two occurrences in one utterance fire twice, in order.
        let out = t.push(&words(20.0, "deadline or budget"), true);
        let labels: Vec<&str> = out.iter().map(|a| a.label.as_str()).collect();
        assert_eq!(labels, ["deadline", "budget"]);
    }

    #[test]
    fn final_rules_ignore_partials() {
        let mut t = text_rules(
            "[[rule]]\nname = \"b\"\nkind = \"keyword\"\nwords = [\"budget\"]\non = \"final\"\n",
        );
        assert!(t.push(&words(1.0, "the budget"), false).is_empty());
        assert_eq!(t.push(&words(1.0, "the budget"), true).len(), 1);
    }

    #[test]
    fn text_cooldown_and_reset() {
        let mut t = text_rules(
            "[[rule]]\nname = \"b\"\nkind = \"keyword\"\nwords = [\"budget\"]\ncooldown-ms = 5000\n",
        );
        assert_eq!(t.push(&words(1.0, "budget"), true).len(), 1);
        assert!(t.push(&words(3.0, "budget"), true).is_empty());
        assert_eq!(t.push(&words(7.0, "budget"), true).len(), 1);
        // After a flush the timeline restarts: the same positions are new words.
        t.reset();
        assert_eq!(t.push(&words(1.0, "budget"), true).len(), 1);
    }

    #[test]
    fn phrase_timing_and_text() {
        let mut t =
            text_rules("[[rule]]\nname = \"p\"\nkind = \"phrase\"\nphrases = [\"action item\"]\n");
        let w = words(2.0, "please note the Action item. now");
        let out = t.push(&w, false);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].start, out[0].end), (w[3].start, w[4].end));
        assert_eq!(out[0].text, "Action item.");
        assert_eq!(out[0].label, "action item");
        // Not consecutive: no match.
        assert!(t.push(&words(9.0, "action the item"), true).is_empty());
    }

    #[test]
    fn regex_timing() {
        let mut t = text_rules(
            "[[rule]]\nname = \"t\"\nkind = \"regex\"\npattern = \"(?i)ticket \\\\d+\"\n",
        );
        let w = words(0.0, "open Ticket 123 please");
        let out = t.push(&w, true);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].start, out[0].end), (w[1].start, w[2].end));
        assert_eq!(out[0].text, "Ticket 123");
        assert_eq!(out[0].label, "Ticket 123");
        // A match starting inside a word is timed by that word.
        let mut t = text_rules("[[rule]]\nname = \"t\"\nkind = \"regex\"\npattern = \"ket 4\"\n");
        let w = words(0.0, "ticket 42");
        let out = t.push(&w, true);
        assert_eq!((out[0].start, out[0].end), (w[0].start, w[1].end));
    }

    #[test]
    fn wake_with_and_without_question() {
        let mut t = TextAlerts::new(&RuleSet::defaults(), RATE);
        assert!(!t.is_empty());
        let w = words(1.0, "Hey, assistant, what time is it?");
        // The default wake rule fires on final text only.
        assert!(t.push(&w, false).is_empty());
        let out = t.push(&w, true);
        assert_eq!(out.len(), 1);
        let a = &out[0];
        assert_eq!(a.kind, AlertKind::Respond);
        assert_eq!(a.rule, "wake");
        assert_eq!(a.label, "hey assistant");
        assert_eq!(a.text, "what time is it?");
        assert_eq!((a.start, a.end), (w[0].start, w[5].end));
        // Same final again: no repeat.
        assert!(t.push(&w, true).is_empty());

        // Not a question.
        assert!(
            t.push(&words(10.0, "hey assistant turn on the lights"), true)
                .is_empty()
        );
        assert!(t.push(&words(20.0, "hey assistant"), true).is_empty());
        // A question mark makes one.
        let out = t.push(&words(30.0, "so hey assistant the weather tomorrow?"), true);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, "the weather tomorrow?");
        assert_eq!(out[0].start, 30 * 16_000 + 8000);

        let mut free = text_rules(
            "[[rule]]\nname = \"w\"\nkind = \"wake\"\nwake-name = \"Jarvis\"\nrequire-question = false\n",
        );
        let out = free.push(&words(1.0, "hey jarvis turn on the lights"), true);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, "turn on the lights");
        assert_eq!(out[0].label, "hey Jarvis");
        let out = free.push(&words(10.0, "Hey Jarvis."), true);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, "");
    }

    #[test]
    fn a_wake_phrase_alone_makes_the_next_utterance_the_question() {
        let mut t = TextAlerts::new(&RuleSet::defaults(), RATE);
        assert!(t.push(&words(1.0, "Hey, assistant."), true).is_empty());
        // Not a question by its words, but asked right after the wake phrase.
        let q = words(4.0, "Set a timer for five minutes.");
        let out = t.push(&q, true);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            (out[0].rule.as_str(), out[0].label.as_str()),
            ("wake", "hey assistant")
        );
        assert_eq!(out[0].text, "Set a timer for five minutes.");
        assert_eq!((out[0].start, out[0].end), (q[0].start, q[5].end));
        // Used once: the utterance after is not a question.
        assert!(t.push(&words(7.0, "Thanks a lot."), true).is_empty());

        // Too late: the phrase alone 10 s before arms nothing by then.
        assert!(t.push(&words(20.0, "Hey assistant"), true).is_empty());
        assert!(
            t.push(&words(31.0, "Turn off the lights."), true)
                .is_empty()
        );
        // A flush forgets it.
        assert!(t.push(&words(40.0, "Hey assistant"), true).is_empty());
        t.reset();
        assert!(
            t.push(&words(42.0, "Turn off the lights."), true)
                .is_empty()
        );
        // Partial text neither arms nor answers.
        assert!(t.push(&words(50.0, "Hey assistant"), false).is_empty());
        assert!(
            t.push(&words(52.0, "Turn off the lights."), true)
                .is_empty()
        );

        let mut off = text_rules("[[rule]]\nname = \"w\"\nkind = \"wake\"\nfollow-up-ms = 0\n");
        assert!(off.push(&words(1.0, "Hey, assistant."), true).is_empty());
        assert!(off.push(&words(3.0, "What time is it?"), true).is_empty());
    }

    #[test]
    fn near_misses_of_the_wake_phrase_wake_and_other_words_do_not() {
        for heard in [
            "hi assistant, what time is it?",
            "h assistant, what time is it?",
            "A assistant, what time is it?",
            "Hay assistant what time is it?",
            "hey assistance, what time is it?",
            "Hey, assistants, what time is it?",
        ] {
            let mut t = TextAlerts::new(&RuleSet::defaults(), RATE);
            let out = t.push(&words(1.0, heard), true);
            assert_eq!(out.len(), 1, "{heard}: {out:?}");
            assert_eq!(out[0].text, "what time is it?", "{heard}");
        }
        for heard in [
            "his assistant will call you back",
            "her assistant is on leave, is that right?",
            "the assistant is here",
            "I need an assistant who can type",
            "they assist and what is it?",
            "hey resistant what is it?",
        ] {
            let mut t = TextAlerts::new(&RuleSet::defaults(), RATE);
            assert!(t.push(&words(1.0, heard), true).is_empty(), "{heard}");
        }
        assert!(near_word("hey", "hey") && near_word("he", "hey") && !near_word("her", "hey"));
        assert!(near_word("assisstant", "assistant") && !near_word("assist", "assistant"));
    }
}

//! Profanity masking for what the loop shows: cues, subtitle files, bus text.
//!
//! A listed word keeps its first letter and the marks around it; its other letters become
//! `*` ("Fuck," → "F***,"), so a caption keeps its length and rhythm and the word's timing is
//! untouched. Alert rules are matched before masking, on what was said.

use std::collections::HashSet;
use std::path::Path;

use crate::perceive::perception::Word;

/// The built-in English list (`profanity-filter=default`).
pub const BUILTIN_EN: &str = include_str!("profanity-en.txt");

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfanityFilter {
    exact: HashSet<String>,
    /// Terms written with a trailing `*`: every word starting with one is masked.
    prefixes: Vec<String>,
}

impl ProfanityFilter {
    /// Parses a word list: one term per line, `#` starts a comment, a trailing `*` makes a
    /// prefix. A term with a space or nothing but marks is an error naming its line: it
    /// could never match one word, and silently ignoring it would leave a word unmasked.
    pub fn parse(text: &str, origin: &str) -> crate::Result<Self> {
        let mut f = Self::default();
        for (n, line) in text.lines().enumerate() {
            let term = line.split('#').next().unwrap_or("").trim();
            if term.is_empty() {
                continue;
            }
            let (body, prefix) = match term.strip_suffix('*') {
                Some(b) => (b, true),
                None => (term, false),
            };
            let key = normalize(body);
            let word_chars = key
                .chars()
                .all(|c| c.is_alphanumeric() || c == '\'' || c == '-');
            if key.is_empty() || !word_chars || key != body.to_lowercase() {
                return Err(crate::Error::InvalidArgument(format!(
                    "{origin}:{}: \"{term}\" is not one word (letters, digits and inner \
                     apostrophes or hyphens, an optional trailing *)",
                    n + 1
                )));
            }
            if prefix {
                f.prefixes.push(key);
            } else {
                f.exact.insert(key);
            }
        }
        if f.is_empty() {
            return Err(crate::Error::InvalidArgument(format!(
                "{origin}: the word list has no term"
            )));
        }
        Ok(f)
    }

    pub fn builtin_english() -> Self {
        // The list is part of the crate and parsed by a test, so this cannot fail.
        Self::parse(BUILTIN_EN, "built-in list").unwrap_or_default()
    }

    /// `default` for the built-in English list, otherwise a word-list file.
    pub fn load(spec: &str) -> crate::Result<Self> {
        if spec == "default" {
            return Ok(Self::builtin_english());
        }
        let path = Path::new(spec);
        let text = std::fs::read_to_string(path).map_err(|e| {
            crate::Error::InvalidArgument(format!("cannot read word list {}: {e}", path.display()))
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }

    fn listed(&self, key: &str) -> bool {
        !key.is_empty()
            && (self.exact.contains(key) || self.prefixes.iter().any(|p| key.starts_with(p)))
    }

    /// One token of text, masked if listed, else as it is.
    pub fn mask_token(&self, token: &str) -> String {
        let (lead, core, trail) = split_marks(token);
        if !self.listed(&core.to_lowercase()) {
            return token.to_string();
        }
        let mut out = String::with_capacity(token.len());
        out.push_str(lead);
        for (i, c) in core.chars().enumerate() {
            out.push(if i == 0 || !c.is_alphanumeric() {
                c
            } else {
                '*'
            });
        }
        out.push_str(trail);
        out
    }

    /// Text masked token by token; the spacing between tokens is kept.
    pub fn mask_text(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while !rest.is_empty() {
            let ws = rest.len() - rest.trim_start().len();
            out.push_str(&rest[..ws]);
            rest = &rest[ws..];
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push_str(&self.mask_token(&rest[..end]));
            rest = &rest[end..];
        }
        out
    }

    /// Words masked one by one, their times unchanged.
    pub fn mask_words(&self, words: &[Word]) -> Vec<Word> {
        words
            .iter()
            .map(|w| Word {
                text: self.mask_text(&w.text),
                ..w.clone()
            })
            .collect()
    }
}

/// A token's leading marks, its word, its trailing marks. The word keeps inner apostrophes
/// and hyphens ("don't", "mother-in-law").
fn split_marks(token: &str) -> (&str, &str, &str) {
    let start = token.find(char::is_alphanumeric).unwrap_or(token.len());
    let end = token.rfind(char::is_alphanumeric).map_or(start, |i| {
        i + token[i..].chars().next().map_or(1, char::len_utf8)
    });
    (
        &token[..start],
        &token[start..end.max(start)],
        &token[end.max(start)..],
    )
}

fn normalize(word: &str) -> String {
    split_marks(word).1.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, start: u64) -> Word {
        Word {
            text: text.into(),
            start,
            end: start + 100,
        }
    }

    #[test]
    fn the_builtin_list_parses_and_masks_its_words_not_their_neighbours() {
        let f = ProfanityFilter::parse(BUILTIN_EN, "built-in").expect("the built-in list parses");
        assert_eq!(f, ProfanityFilter::builtin_english());
        assert_eq!(
            f.mask_text("Well, fuck. That was SHIT, you bastards!"),
            "Well, f***. That was S***, you b*******!"
        );
        assert_eq!(
            f.mask_text("Motherfucking  weather"),
            "M************  weather"
        );
        // Plain words that share letters with a listed one stay.
        assert_eq!(
            f.mask_text("Ask the assistant to pass the class glass; Dick shitake pissarro"),
            "Ask the assistant to pass the class glass; Dick shitake pissarro"
        );
    }

    #[test]
    fn a_file_list_takes_prefixes_and_comments_and_rejects_what_cannot_match() {
        let f = ProfanityFilter::parse("# house words\nfrak*\nsmeg # mild\n", "t").expect("parses");
        assert_eq!(
            f.mask_text("Frakking smeg, smegma."),
            "F******* s***, smegma."
        );
        for bad in ["two words\n", "!!!\n", "# nothing\n\n", "fr*k\n"] {
            let e = ProfanityFilter::parse(bad, "list.txt").expect_err(bad);
            assert!(e.to_string().contains("list.txt"), "{e}");
        }
    }

    #[test]
    fn masked_words_keep_their_times() {
        let f = ProfanityFilter::builtin_english();
        let words = vec![word("oh", 0), word("shit,", 100), word("sorry", 200)];
        let masked = f.mask_words(&words);
        assert_eq!(
            masked.iter().map(|w| w.text.as_str()).collect::<Vec<_>>(),
            ["oh", "s***,", "sorry"]
        );
        assert_eq!(
            masked.iter().map(|w| (w.start, w.end)).collect::<Vec<_>>(),
            words.iter().map(|w| (w.start, w.end)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_missing_file_is_a_clear_error() {
        let e = ProfanityFilter::load("/nonexistent/words.txt").expect_err("no file");
        assert!(e.to_string().contains("/nonexistent/words.txt"), "{e}");
        assert!(
            !ProfanityFilter::load("default")
                .expect("built in")
                .is_empty()
        );
    }
}

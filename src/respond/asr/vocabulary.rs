//! A vocabulary the ASR favours (names, product names, jargon), by contextual biasing of the
//! greedy decoder over a token trie: every term is tokenized as the model writes it (as it
//! is, capitalised, lower case), and at each decoding step the tokens that start a term, or
//! continue a term whose first tokens were just written, get a bonus on their logits. A
//! term the audio does not support still loses to what was said: the bonus is a nudge of a few
//! logits, not a forced path.
//!
//! The file: one term per line (a word or a phrase), `#` starts a comment, and an optional
//! weight after a tab (`Comedian Mail<TAB>2`, default 1; 0 to 5) scales the term's bonus.

use std::collections::HashMap;
use std::path::Path;

use crate::{Error, Result};

/// Logits added per token of a term under way, at weight 1. On the 600 s of real prompts
/// (benchmarks.md, "A vocabulary") 2 wrote every listed term for WER +0.07 points; 3 gave
/// +0.13; a full bonus on first tokens, +0.33 to +0.73.
pub const BONUS: f32 = 2.0;
/// The share of the bonus a term's (distinctive) first token gets.
pub const START_SHARE: f32 = 0.5;

/// A term's words joined by single spaces.
fn normalize(term: &str) -> String {
    term.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vocabulary {
    pub terms: Vec<(String, f32)>,
}

impl Vocabulary {
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let mut terms = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("");
            let (term, weight) = match line.split_once('\t') {
                Some((t, w)) => {
                    let w: f32 = w.trim().parse().map_err(|_| {
                        Error::InvalidArgument(format!(
                            "{origin}:{}: weight {:?} is not a number",
                            n + 1,
                            w.trim()
                        ))
                    })?;
                    if !(0.0..=5.0).contains(&w) {
                        return Err(Error::InvalidArgument(format!(
                            "{origin}:{}: weight {w} is outside 0 to 5",
                            n + 1
                        )));
                    }
                    (t.trim(), w)
                }
                None => (line.trim(), 1.0),
            };
            if term.is_empty() {
                continue;
            }
            terms.push((normalize(term), weight));
        }
        if terms.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{origin}: the vocabulary has no term"
            )));
        }
        Ok(Self { terms })
    }

    /// Adds `term` (its words joined by single spaces) at `weight`, unless it is already
    /// there in any case or has no word; returns whether it was added.
    pub fn add(&mut self, term: &str, weight: f32) -> bool {
        let term = normalize(term);
        if term.is_empty()
            || self
                .terms
                .iter()
                .any(|(t, _)| t.eq_ignore_ascii_case(&term))
        {
            return false;
        }
        self.terms.push((term, weight));
        true
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::InvalidArgument(format!("cannot read vocabulary {}: {e}", path.display()))
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Every spelling of every term as token ids (`encode` gives a spelling's ids), with the
    /// term's weight: what [`Bias::new`] builds its trie from.
    pub fn token_sequences(
        &self,
        encode: impl Fn(&str) -> Result<Vec<u32>>,
    ) -> Result<Vec<(Vec<u32>, f32)>> {
        let mut seqs = Vec::new();
        for (term, weight) in &self.terms {
            for spelling in Self::spellings(term) {
                let ids = encode(&spelling)?;
                if !ids.is_empty() {
                    seqs.push((ids, *weight));
                }
            }
        }
        Ok(seqs)
    }

    /// The spellings a decoder may write a term in: as listed, with a capital first letter
    /// (a sentence's start), all lower case.
    pub fn spellings(term: &str) -> Vec<String> {
        let mut out = vec![term.to_string()];
        let mut c = term.chars();
        if let Some(first) = c.next() {
            out.push(first.to_uppercase().chain(c).collect());
        }
        out.push(term.to_lowercase());
        out.dedup();
        let mut seen = std::collections::HashSet::new();
        out.retain(|s| seen.insert(s.clone()));
        out
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Node {
    children: HashMap<u32, usize>,
    /// The largest weight of the terms through this node.
    weight: f32,
    /// A term's first token that may be favoured before the term is under way.
    starts: bool,
}

/// The token trie of a vocabulary, and the biasing it does.
#[derive(Debug, Clone, PartialEq)]
pub struct Bias {
    nodes: Vec<Node>,
    bonus: f32,
}

/// Where a decode stands in the trie: the nodes its last tokens reached.
#[derive(Debug, Clone, Default)]
pub struct BiasState {
    active: Vec<usize>,
}

impl Bias {
    /// A trie of token sequences, each with its weight. `distinctive` says whether a first
    /// token is specific enough to favour on its own (a piece of a letter or two, "D" of
    /// "Dictation", starts too many words).
    pub fn new(
        sequences: &[(Vec<u32>, f32)],
        bonus: f32,
        distinctive: impl Fn(u32) -> bool,
    ) -> Self {
        let mut nodes = vec![Node::default()];
        for (seq, w) in sequences {
            let mut at = 0;
            for &t in seq {
                let next = match nodes[at].children.get(&t) {
                    Some(&n) => n,
                    None => {
                        nodes.push(Node::default());
                        let n = nodes.len() - 1;
                        nodes[at].children.insert(t, n);
                        n
                    }
                };
                nodes[next].weight = nodes[next].weight.max(*w);
                if at == 0 {
                    nodes[next].starts = distinctive(t);
                }
                at = next;
            }
        }
        Self { nodes, bonus }
    }

    pub fn is_empty(&self) -> bool {
        self.nodes[0].children.is_empty()
    }

    /// Adds the bonus to the tokens that continue a term under way, and a share of it
    /// ([`START_SHARE`]) to those that start one: a term's first token is often an everyday
    /// word's too ("con" of conference), which a full bonus would pull in everywhere.
    pub fn boost(&self, state: &BiasState, logits: &mut [f32]) {
        let share = START_SHARE;
        for (&t, &child) in &self.nodes[0].children {
            if !self.nodes[child].starts {
                continue;
            }
            if let Some(l) = logits.get_mut(t as usize) {
                *l += share * self.bonus * self.nodes[child].weight;
            }
        }
        for &n in &state.active {
            for (&t, &child) in &self.nodes[n].children {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l += self.bonus * self.nodes[child].weight;
                }
            }
        }
    }

    /// Moves the state on by the token written.
    pub fn advance(&self, state: &mut BiasState, token: u32) {
        let next: Vec<usize> = std::iter::once(&0)
            .chain(&state.active)
            .filter_map(|&n| self.nodes[n].children.get(&token).copied())
            .filter(|&c| !self.nodes[c].children.is_empty())
            .collect();
        state.active = next;
        state.active.sort_unstable();
        state.active.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_gives_terms_and_weights_and_bad_lines_are_errors() {
        let v = Vocabulary::parse("# names\nComedian  Mail\t2\nAsterisk\n\n", "v.txt").expect("ok");
        assert_eq!(
            v.terms,
            vec![
                ("Comedian Mail".to_string(), 2.0),
                ("Asterisk".to_string(), 1.0)
            ]
        );
        for bad in ["x\tlots\n", "x\t9\n", "# none\n"] {
            let e = Vocabulary::parse(bad, "v.txt").expect_err(bad);
            assert!(e.to_string().contains("v.txt"), "{e}");
        }
        assert_eq!(
            Vocabulary::spellings("comedian Mail"),
            ["comedian Mail", "Comedian Mail", "comedian mail"]
        );
    }

    #[test]
    fn the_trie_boosts_starts_and_continuations_only() {
        // Terms [5, 6, 7] (weight 1) and [5, 9] (weight 2).
        let b = Bias::new(
            &[(vec![5, 6, 7], 1.0), (vec![5, 9], 2.0), (vec![4, 8], 1.0)],
            3.0,
            |t| t != 4,
        );
        let mut st = BiasState::default();
        let mut l = vec![0.0f32; 12];
        b.boost(&st, &mut l);
        assert_eq!(
            l[5], 3.0,
            "a start takes a share of the largest weight through it"
        );
        assert_eq!(l[6] + l[7] + l[9], 0.0, "no continuation before a start");
        assert_eq!(l[4], 0.0, "a start that is not distinctive is not favoured");
        b.advance(&mut st, 5);
        let mut l = vec![0.0f32; 12];
        b.boost(&st, &mut l);
        assert_eq!((l[6], l[9], l[5]), (3.0, 6.0, 3.0));
        b.advance(&mut st, 6);
        let mut l = vec![0.0f32; 12];
        b.boost(&st, &mut l);
        assert_eq!(l[7], 3.0);
        b.advance(&mut st, 7);
        let mut l = vec![0.0f32; 12];
        b.boost(&st, &mut l);
        assert_eq!(l[7], 0.0, "a finished term starts over");
        b.advance(&mut st, 11);
        assert!(st.active.is_empty());
    }
}

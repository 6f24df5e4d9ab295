//! Whisper's byte-level BPE tokenizer, loaded from a Hugging Face `tokenizer.json`.
//!
//! Token ids below `<|endoftext|>` (50257 in multilingual models, 50256 in the `.en` ones) are
//! text; `<|endoftext|>` and everything above it are special: `<|startoftranscript|>`, the
//! language tokens, `<|transcribe|>`, `<|translate|>`, `<|startofprev|>`, `<|nocaptions|>`
//! (called `<|nospeech|>` in newer vocabularies), `<|notimestamps|>` and then the timestamp
//! tokens `<|0.00|>`, `<|0.02|>`, … in steps of 20 ms. Many `tokenizer.json` files stop at
//! `<|notimestamps|>`; the first timestamp token is then the id after it, as in whisper's
//! tiktoken vocabulary.

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

/// What can go wrong loading or using a Whisper tokenizer. Converts into [`crate::Error`]
/// (as [`crate::Error::Manifest`], naming the file) for callers that return the crate's error.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("Whisper tokenizer file {path} cannot be read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("Whisper tokenizer file {path} is not a valid Hugging Face tokenizer.json: {reason}")]
    Parse { path: PathBuf, reason: String },

    #[error(
        "{path} is not a Whisper tokenizer: it has no {token} token (a Whisper tokenizer.json \
         has <|endoftext|>, <|startoftranscript|> and <|notimestamps|> among its added tokens)"
    )]
    MissingToken { path: PathBuf, token: String },

    #[error("Whisper tokenizer {path}: cannot encode the text: {reason}")]
    Encode { path: PathBuf, reason: String },

    #[error("Whisper tokenizer {path}: cannot decode the tokens: {reason}")]
    Decode { path: PathBuf, reason: String },
}

impl TokenizerError {
    fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. }
            | Self::Parse { path, .. }
            | Self::MissingToken { path, .. }
            | Self::Encode { path, .. }
            | Self::Decode { path, .. } => path,
        }
    }
}

impl From<TokenizerError> for crate::Error {
    fn from(e: TokenizerError) -> Self {
        crate::Error::Manifest {
            path: e.path().to_path_buf(),
            reason: e.to_string(),
        }
    }
}

/// Seconds per timestamp token step.
pub const TIMESTAMP_STEP_S: f32 = 0.02;

/// A Whisper tokenizer: text ↔ ids, and the ids of the special tokens a decoder prompt needs.
pub struct WhisperTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    eot: u32,
    sot: u32,
    no_timestamps: u32,
    timestamp_begin: u32,
}

impl std::fmt::Debug for WhisperTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperTokenizer")
            .field("path", &self.path)
            .field("eot", &self.eot)
            .field("timestamp_begin", &self.timestamp_begin)
            .finish_non_exhaustive()
    }
}

impl WhisperTokenizer {
    /// Loads a Hugging Face `tokenizer.json` of a Whisper model. Fails, naming the file, when it
    /// cannot be read, is not a tokenizer.json, or lacks Whisper's special tokens.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| TokenizerError::Read {
            path: path.clone(),
            source,
        })?;
        let parse_error = |reason: String| TokenizerError::Parse {
            path: path.clone(),
            reason,
        };
        let mut json: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| parse_error(e.to_string()))?;
        if restore_first_merge(&mut json) {
            log::debug!(
                "{}: merge list lacks the first GPT-2 merge \"Ġ t\"; restored it",
                path.display()
            );
        }
        let mut inner: Tokenizer =
            serde_json::from_value(json).map_err(|e| parse_error(e.to_string()))?;
        // Text that spells a special token ("<|en|>") is encoded as text, never as the special
        // id: a prompt cannot smuggle control tokens in (tiktoken with disallowed_special=()).
        inner.set_encode_special_tokens(true);
        let required = |token: &str| {
            inner
                .token_to_id(token)
                .ok_or_else(|| TokenizerError::MissingToken {
                    path: path.clone(),
                    token: token.to_string(),
                })
        };
        let eot = required("<|endoftext|>")?;
        let sot = required("<|startoftranscript|>")?;
        let no_timestamps = required("<|notimestamps|>")?;
        let timestamp_begin = inner
            .token_to_id("<|0.00|>")
            .unwrap_or(no_timestamps.saturating_add(1));
        Ok(Self {
            inner,
            path,
            eot,
            sot,
            no_timestamps,
            timestamp_begin,
        })
    }

    /// The file this tokenizer was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Text → ids, with no special tokens added (no `<|startoftranscript|>` … prefix, no
    /// `<|endoftext|>`). Errors only if the pre-tokenizer's regex gives up on pathological text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        self.inner
            .encode_fast(text, false)
            .map(|enc| enc.get_ids().to_vec())
            .map_err(|e| TokenizerError::Encode {
                path: self.path.clone(),
                reason: e.to_string(),
            })
    }

    /// Ids → text, skipping every special token (ids ≥ `<|endoftext|>`, timestamps included).
    /// Ids the vocabulary does not know are skipped too; bytes that do not form UTF-8 (a
    /// character cut between tokens) become U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        self.try_decode(ids).unwrap_or_else(|e| {
            log::warn!("{e}");
            String::new()
        })
    }

    /// [`decode`](Self::decode), reporting a decoder failure instead of returning "".
    pub fn try_decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let text: Vec<u32> = ids.iter().copied().filter(|&id| id < self.eot).collect();
        self.inner
            .decode(&text, true)
            .map_err(|e| TokenizerError::Decode {
                path: self.path.clone(),
                reason: e.to_string(),
            })
    }

    /// The id of a token, e.g. `"<|startoftranscript|>"`, `"<|en|>"`, `"<|transcribe|>"`,
    /// `"<|notimestamps|>"`, `"<|nocaptions|>"`; `None` if the vocabulary lacks it. Exact match:
    /// see [`no_speech`](Self::no_speech) for the token whose name changed between vocabularies.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The token for an id, special tokens included (`None` for ids beyond the vocabulary,
    /// timestamp tokens of vocabularies that do not list them).
    pub fn id_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// `<|endoftext|>`: 50257 in multilingual vocabularies, 50256 in English-only ones.
    pub fn eot(&self) -> u32 {
        self.eot
    }

    /// `<|startoftranscript|>`.
    pub fn sot(&self) -> u32 {
        self.sot
    }

    /// `<|notimestamps|>`.
    pub fn no_timestamps(&self) -> u32 {
        self.no_timestamps
    }

    /// `<|transcribe|>`, if the vocabulary has it.
    pub fn transcribe(&self) -> Option<u32> {
        self.token_id("<|transcribe|>")
    }

    /// `<|translate|>`, if the vocabulary has it.
    pub fn translate(&self) -> Option<u32> {
        self.token_id("<|translate|>")
    }

    /// `<|startofprev|>` (starts a previous-text prompt), if the vocabulary has it.
    pub fn sot_prev(&self) -> Option<u32> {
        self.token_id("<|startofprev|>")
    }

    /// The no-speech token: `<|nospeech|>` in newer vocabularies, `<|nocaptions|>` in older.
    pub fn no_speech(&self) -> Option<u32> {
        self.token_id("<|nospeech|>")
            .or_else(|| self.token_id("<|nocaptions|>"))
    }

    /// The language token for a code such as `"en"` or `"de"`, if the vocabulary has it.
    pub fn language(&self, code: &str) -> Option<u32> {
        self.token_id(&format!("<|{code}|>"))
    }

    /// The first timestamp token, `<|0.00|>`.
    pub fn timestamp_begin(&self) -> u32 {
        self.timestamp_begin
    }

    /// Whether `id` is a timestamp token.
    pub fn is_timestamp(&self, id: u32) -> bool {
        id >= self.timestamp_begin
    }

    /// The time a timestamp token stands for, in seconds from the window start.
    pub fn timestamp_seconds(&self, id: u32) -> Option<f32> {
        id.checked_sub(self.timestamp_begin)
            .map(|steps| steps as f32 * TIMESTAMP_STEP_S)
    }
}

/// The Hugging Face `tokenizer.json` files of Whisper (openai/whisper-* and the copies
/// faster-whisper packages ship) lack the first merge of the GPT-2 byte-level BPE, `"Ġ t"` (the
/// token `Ġt`, id 256): the conversion from `merges.txt` dropped the first line as if it were
/// the `#version` header. Without it every word starting with " t" is encoded as `Ġ` + the rest
/// (" the" → [220, 3322] instead of [264]), unlike whisper's own tiktoken vocabulary. Decoding is
/// unaffected. This puts the merge back, at rank 0, when the vocabulary has `Ġt` and no merge
/// makes it; returns whether it did.
fn restore_first_merge(json: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    let Some(model) = json.get_mut("model") else {
        return false;
    };
    if model.get("type").and_then(Value::as_str) != Some("BPE")
        || model.get("vocab").and_then(|v| v.get("Ġt")).is_none()
    {
        return false;
    }
    let Some(merges) = model.get_mut("merges").and_then(Value::as_array_mut) else {
        return false;
    };
    let is_g_t = |m: &Value| match m {
        Value::String(s) => s == "Ġ t",
        Value::Array(pair) => {
            pair.len() == 2 && pair[0].as_str() == Some("Ġ") && pair[1].as_str() == Some("t")
        }
        _ => false,
    };
    if merges.iter().any(is_g_t) {
        return false;
    }
    // Keep the file's notation: "a b" strings (older files) or ["a", "b"] pairs (newer).
    let entry = if merges.first().is_some_and(Value::is_array) {
        Value::Array(vec![Value::from("Ġ"), Value::from("t")])
    } else {
        Value::from("Ġ t")
    };
    merges.insert(0, entry);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the Whisper base tokenizer.json is looked for: the installed model package
    /// ($XDG_DATA_HOME/lalm/models/whisper-base/, default ~/.local/share/lalm/...), then
    /// ${LALM_CACHE_DIR:-~/.cache/lalm}/whisper/.
    fn candidates() -> Vec<PathBuf> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let non_empty = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let data =
            non_empty("XDG_DATA_HOME").or_else(|| home.as_ref().map(|h| h.join(".local/share")));
        let cache =
            non_empty("LALM_CACHE_DIR").or_else(|| home.as_ref().map(|h| h.join(".cache/lalm")));
        let mut out = Vec::new();
        if let Some(d) = data {
            out.push(d.join("lalm/models/whisper-base/tokenizer.json"));
        }
        if let Some(c) = cache {
            out.push(c.join("whisper/tokenizer.json"));
        }
        out
    }

    fn tokenizer() -> WhisperTokenizer {
        let candidates = candidates();
        let Some(path) = candidates.iter().find(|p| p.is_file()) else {
            panic!(
                "Whisper tokenizer.json not found; looked at {}. Install the whisper-base model \
                 package (scripts/setup.sh) or put the tokenizer.json of Whisper base at the \
                 second path.",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        WhisperTokenizer::from_file(path).expect("load tokenizer.json")
    }

    #[test]
    fn special_token_ids() {
        let tok = tokenizer();
        for (token, id) in [
            ("<|endoftext|>", 50257),
            ("<|startoftranscript|>", 50258),
            ("<|en|>", 50259),
            ("<|de|>", 50261),
            ("<|transcribe|>", 50359),
            ("<|translate|>", 50358),
            ("<|startofprev|>", 50361),
            ("<|nocaptions|>", 50362),
            ("<|notimestamps|>", 50363),
        ] {
            assert_eq!(tok.token_id(token), Some(id), "{token}");
        }
        assert_eq!(tok.token_id("<|nosuchtoken|>"), None);
        assert_eq!(
            (tok.eot(), tok.sot(), tok.no_timestamps()),
            (50257, 50258, 50363)
        );
        assert_eq!(tok.transcribe(), Some(50359));
        assert_eq!(tok.language("en"), Some(50259));
        assert_eq!(tok.no_speech(), Some(50362));
        assert_eq!(tok.timestamp_begin(), 50364);
        assert!(tok.is_timestamp(50364) && !tok.is_timestamp(50363));
        assert_eq!(tok.timestamp_seconds(50364 + 150), Some(3.0));
        assert_eq!(tok.timestamp_seconds(50000), None);
        assert_eq!(
            tok.id_token(50258).as_deref(),
            Some("<|startoftranscript|>")
        );
    }

    /// Ids from whisper's own vocabulary (assets/multilingual.tiktoken, tiktoken's BPE with
    /// whisper's split pattern), computed in Python.
    #[test]
    fn encode_matches_whisper_tiktoken() {
        let tok = tokenizer();
        for (text, want) in [
            (
                " Hello world, this is a test.",
                &[2425u32, 1002, 11, 341, 307, 257, 1500, 13][..],
            ),
            (
                " The quick brown fox jumps over the lazy dog.",
                &[440, 1702, 6292, 21026, 16704, 670, 264, 14847, 3000, 13],
            ),
            (
                " Grüße aus Köln, 東京 🎉",
                &[
                    38908, 11451, 3437, 591, 13072, 77, 11, 220, 18413, 31375, 19034, 231,
                ],
            ),
            (
                " It's 3:45pm, isn't it?  Twenty-two   tests.",
                &[
                    467, 311, 805, 25, 8465, 14395, 11, 1943, 380, 309, 30, 220, 28789, 12, 20534,
                    220, 220, 6921, 13,
                ],
            ),
        ] {
            assert_eq!(tok.encode(text).unwrap(), want, "{text:?}");
            assert_eq!(tok.decode(want), text);
        }
    }

    #[test]
    fn first_merge_is_restored_once() {
        let mut strings = serde_json::json!({"model": {"type": "BPE",
            "vocab": {"Ġ": 220, "t": 83, "Ġt": 256}, "merges": ["Ġ a", "Ġt h"]}});
        assert!(restore_first_merge(&mut strings));
        assert_eq!(strings["model"]["merges"][0], "Ġ t");
        assert!(!restore_first_merge(&mut strings));
        let mut pairs = serde_json::json!({"model": {"type": "BPE",
            "vocab": {"Ġt": 256}, "merges": [["Ġ", "a"]]}});
        assert!(restore_first_merge(&mut pairs));
        assert_eq!(pairs["model"]["merges"][0], serde_json::json!(["Ġ", "t"]));
        let mut other = serde_json::json!({"model": {"type": "WordLevel", "vocab": {"Ġt": 1}}});
        assert!(!restore_first_merge(&mut other));
    }

    #[test]
    fn round_trip_and_special_tokens_skipped() {
        let tok = tokenizer();
        let text = " Hello world, this is a test.";
        let ids = tok.encode(text).unwrap();
        eprintln!("{text:?} -> {ids:?}");
        assert!(
            !ids.is_empty() && ids.iter().all(|&id| id < tok.eot()),
            "{ids:?}"
        );
        assert_eq!(tok.decode(&ids), text);

        // A full decoder output: prompt, timestamps, text, end — only the text remains.
        let mut seq = vec![50258, 50259, 50359, 50364];
        seq.extend(&ids);
        seq.extend([50364 + 100, 50257, 99_999]);
        assert_eq!(tok.decode(&seq), text);

        // Non-ASCII and text that spells a special token stay text.
        for text in [" Grüße aus Köln, 東京 🎉", " say <|en|> please"] {
            let ids = tok.encode(text).unwrap();
            assert!(ids.iter().all(|&id| id < tok.eot()), "{text:?}: {ids:?}");
            assert_eq!(tok.decode(&ids), text);
        }
        assert!(tok.encode("").unwrap().is_empty());
        assert_eq!(tok.decode(&[]), "");
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir =
            std::env::temp_dir().join(format!("soundflow-whisper-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        let missing = dir.join("absent.json");
        let e = WhisperTokenizer::from_file(&missing).unwrap_err();
        assert!(matches!(e, TokenizerError::Read { .. }), "{e}");
        assert!(e.to_string().contains("absent.json"), "{e}");
        let e: crate::Error = e.into();
        assert!(e.to_string().contains("absent.json"), "{e}");

        let garbage = dir.join("garbage.json");
        std::fs::write(&garbage, b"{ not json").unwrap();
        let e = WhisperTokenizer::from_file(&garbage).unwrap_err();
        assert!(matches!(e, TokenizerError::Parse { .. }), "{e}");

        // A valid tokenizer.json without Whisper's special tokens.
        let plain = dir.join("plain.json");
        std::fs::write(
            &plain,
            br#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
                "normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":null,
                "model":{"type":"WordLevel","vocab":{"a":0,"[UNK]":1},"unk_token":"[UNK]"}}"#,
        )
        .unwrap();
        let e = WhisperTokenizer::from_file(&plain).unwrap_err();
        assert!(matches!(e, TokenizerError::MissingToken { .. }), "{e}");
        assert!(e.to_string().contains("<|endoftext|>"), "{e}");

        std::fs::remove_dir_all(&dir).unwrap();
    }
}

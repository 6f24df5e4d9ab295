//! The interaction model: a decoder language model with a KV cache (`interaction-model`
//! packages, converted from GGUF by `models/llm/convert.py`). It reads what the loop perceived
//! as chat turns and answers in text.
//!
//! A [`Context`] is a conversation held in the model's cache: appending a turn costs only that
//! turn's tokens, so a question at the end of a long meeting is answered after a prefill of
//! the question alone. Prompts are ChatML; the special tokens are spliced in as ids and the
//! text around them is encoded with special-token text treated as plain text, so nothing said
//! in the room can open or close a turn.

use std::borrow::Cow;
use std::sync::Arc;

use ort::session::SessionInputValue;
use ort::value::{DynValue, Tensor, TensorRef};

use crate::base::cancel::CancelFlag;
use crate::models::contract::{Elem, ModelFamily, Signature, TensorSig};
use crate::models::package::ModelPackage;
use crate::models::runtime::{Runtime, SessionInfo, SessionOptions, SharedSession};
use crate::{Error, Result};

pub const FAMILY: &str = crate::models::family::INTERACTION;

#[derive(Debug, Clone, PartialEq)]
pub struct ModelParams {
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Longest context, in tokens, the package's rotary tables cover.
    pub context: usize,
    pub im_start: u32,
    pub im_end: u32,
    /// Tokens that end a reply.
    pub stop: Vec<u32>,
}

pub struct LanguageModel {
    session: Arc<SharedSession>,
    tokenizer: tokenizers::Tokenizer,
    params: ModelParams,
    newline: Vec<u32>,
    info: SessionInfo,
    name: String,
}

impl std::fmt::Debug for LanguageModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanguageModel")
            .field("name", &self.name)
            .field("params", &self.params)
            .finish()
    }
}

fn infer(e: ort::Error) -> Error {
    Error::Inference(format!("interaction model: {e}"))
}

/// A conversation in the model's cache: the tokens fed so far and, per layer, their keys and
/// values as ONNX Runtime returned them (handed back on the next run without a copy).
pub struct Context {
    past: Vec<DynValue>,
    tokens: Vec<u32>,
    logits: Vec<f32>,
}

impl Context {
    /// Tokens held, the prompt's and the replies'.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }
}

/// What [`LanguageModel::reply`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub text: String,
    pub tokens: Vec<u32>,
    /// It ended on a stop token (not on the token limit).
    pub finished: bool,
}

impl ModelFamily for LanguageModel {
    const NAME: &'static str = FAMILY;
}

impl LanguageModel {
    pub fn load(pkg: &ModelPackage, rt: &Runtime, opts: &SessionOptions) -> Result<Self> {
        Self::open(pkg)?;
        let bad = |reason: String| Error::Manifest {
            path: pkg.manifest_path.clone(),
            reason,
        };
        let int = |k: &str| -> Result<i64> {
            match pkg.manifest.params.get(k) {
                Some(toml::Value::Integer(i)) if *i > 0 => Ok(*i),
                Some(other) => Err(bad(format!(
                    "params.{k} must be a positive integer, found {other}"
                ))),
                None => Err(bad(format!("params.{k} is missing"))),
            }
        };
        let template = pkg
            .manifest
            .params
            .get("template")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if template != "chatml" {
            return Err(bad(format!(
                "params.template is {template:?}; only \"chatml\" prompts are supported"
            )));
        }
        let stop: Vec<u32> = match pkg.manifest.params.get("stop") {
            Some(toml::Value::Array(a)) => a
                .iter()
                .map(|v| v.as_integer().and_then(|i| u32::try_from(i).ok()))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("params.stop must list token ids".into()))?,
            _ => {
                return Err(bad(
                    "params.stop (the ids that end a reply) is missing".into()
                ));
            }
        };
        let id = |k: &str| -> Result<u32> {
            u32::try_from(int(k)?).map_err(|_| bad(format!("params.{k} is not a token id")))
        };
        let params = ModelParams {
            layers: int("layers")? as usize,
            kv_heads: int("kv_heads")? as usize,
            head_dim: int("head_dim")? as usize,
            context: int("context")? as usize,
            im_start: id("im_start")?,
            im_end: id("im_end")?,
            stop,
        };
        // Every file is there before anything loads.
        pkg.file("model")?;
        let tokenizer_path = pkg.file("tokenizer")?;
        let mut tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| bad(format!("cannot read {}: {e}", tokenizer_path.display())))?;
        // "<|im_end|>" said aloud and transcribed stays text; turns are opened and closed by
        // the ids spliced in here.
        tokenizer.set_encode_special_tokens(true);
        // Tokens and their mask in, with one key and one value of cache per layer; the
        // logits out.
        let sig = Signature::new()
            .input(TensorSig::i64("input_ids").rank(2))
            .input(TensorSig::i64("attention_mask").rank(2))
            .input(TensorSig::new("past_key_values.0.key", Elem::Any))
            .output(TensorSig::f32("logits"))
            .count_inputs(".key", params.layers, "layers of cache");
        let (session, _) = Self::session(
            rt,
            pkg,
            "model",
            &SessionOptions {
                // Every run has another length.
                memory_pattern: false,
                ..opts.clone()
            },
            &sig,
        )?;
        let info = session.info().clone();
        let mut m = Self {
            session,
            tokenizer,
            params,
            newline: Vec::new(),
            info,
            name: pkg.display_name(),
        };
        m.newline = m.encode("\n")?;
        Ok(m)
    }

    pub fn params(&self) -> &ModelParams {
        &self.params
    }

    pub fn session_info(&self) -> &SessionInfo {
        &self.info
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Plain text to tokens (special-token text stays text).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::Inference(format!("interaction model tokenizer: {e}")))
    }

    pub fn decode(&self, tokens: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(tokens, true)
            .map_err(|e| Error::Inference(format!("interaction model tokenizer: {e}")))
    }

    /// One ChatML turn: `<|im_start|>role\ntext<|im_end|>\n`.
    pub fn turn(&self, role: &str, text: &str) -> Result<Vec<u32>> {
        let mut ids = vec![self.params.im_start];
        ids.extend(self.encode(&format!("{role}\n{text}"))?);
        ids.push(self.params.im_end);
        ids.extend(&self.newline);
        Ok(ids)
    }

    /// The opening of the assistant's turn, after which the model writes its reply.
    pub fn reply_prefix(&self) -> Result<Vec<u32>> {
        let mut ids = vec![self.params.im_start];
        ids.extend(self.encode("assistant\n")?);
        Ok(ids)
    }

    pub fn new_context(&self) -> Result<Context> {
        let p = &self.params;
        let past = (0..2 * p.layers)
            .map(|_| {
                Tensor::<f32>::from_array(([1usize, p.kv_heads, 0, p.head_dim], Vec::new()))
                    .map(|t| t.into_dyn())
                    .map_err(infer)
            })
            .collect::<Result<_>>()?;
        Ok(Context {
            past,
            tokens: Vec::new(),
            logits: Vec::new(),
        })
    }

    /// Feeds `ids` into the context; the logits of the last one are kept for the next token.
    pub fn feed(&self, ctx: &mut Context, ids: &[u32]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let total = ctx.tokens.len() + ids.len();
        if total > self.params.context {
            return Err(Error::InvalidArgument(format!(
                "the conversation would hold {total} tokens, more than the model's {}",
                self.params.context
            )));
        }
        let input: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
        let mask = vec![1i64; total];
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = vec![
            (
                "input_ids".into(),
                TensorRef::from_array_view(([1usize, input.len()], &input[..]))
                    .map_err(infer)?
                    .into(),
            ),
            (
                "attention_mask".into(),
                TensorRef::from_array_view(([1usize, total], &mask[..]))
                    .map_err(infer)?
                    .into(),
            ),
        ];
        for (i, v) in ctx.past.iter().enumerate() {
            let kind = if i % 2 == 0 { "key" } else { "value" };
            inputs.push((format!("past_key_values.{}.{kind}", i / 2).into(), v.into()));
        }
        let mut session = self.session.lock();
        let mut out = session.run(inputs).map_err(infer)?;
        let (_, logits) = out["logits"].try_extract_tensor::<f32>().map_err(infer)?;
        ctx.logits = logits.to_vec();
        for i in 0..ctx.past.len() {
            let kind = if i % 2 == 0 { "key" } else { "value" };
            let name = format!("present.{}.{kind}", i / 2);
            ctx.past[i] = out.remove(name.as_str()).ok_or_else(|| {
                Error::Inference(format!("interaction model: no output '{name}'"))
            })?;
        }
        ctx.tokens.extend_from_slice(ids);
        Ok(())
    }

    /// Greedy reply from where the context stands (after [`Self::reply_prefix`]), at most
    /// `max_tokens`; `on_text` gets the reply so far each time it grows by whole characters.
    /// The reply's tokens stay in the context, closed with `<|im_end|>`.
    pub fn reply(
        &self,
        ctx: &mut Context,
        max_tokens: usize,
        cancel: &CancelFlag,
        mut on_text: impl FnMut(&str),
    ) -> Result<Reply> {
        if ctx.logits.is_empty() {
            return Err(Error::InvalidArgument(
                "nothing was fed to the conversation before asking for a reply".into(),
            ));
        }
        let mut tokens = Vec::new();
        let mut shown = String::new();
        let mut finished = false;
        for _ in 0..max_tokens {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let next = argmax(&ctx.logits);
            if self.params.stop.contains(&next) {
                finished = true;
                break;
            }
            tokens.push(next);
            self.feed(ctx, &[next])?;
            // A multi-byte character split over tokens decodes to U+FFFD until complete.
            let text = self.decode(&tokens)?;
            if text.len() > shown.len() && !text.ends_with('\u{fffd}') {
                shown = text;
                on_text(&shown);
            }
        }
        // Close the turn as the template would (also one cut at the limit), so the next turn
        // reads naturally.
        let mut close = vec![self.params.im_end];
        close.extend(self.newline.clone());
        self.feed(ctx, &close)?;
        let text = self.decode(&tokens)?.trim().to_string();
        Ok(Reply {
            text,
            tokens,
            finished,
        })
    }
}

fn argmax(v: &[f32]) -> u32 {
    v.iter()
        .enumerate()
        .fold((0usize, f32::NEG_INFINITY), |acc, (i, x)| {
            if *x > acc.1 { (i, *x) } else { acc }
        })
        .0 as u32
}

/// Keeps a conversation of what the loop heard in the model's cache and asks the model when
/// something calls for it. What was heard goes into an open user turn, a line at a time, as
/// it comes (prefilled then, so that a request later costs only its own tokens); a request
/// closes that turn, adds its own and opens the assistant's. Replies stay in the cache, so
/// later requests see them. Nearing the context limit, the conversation is rebuilt from the
/// system prompt and the newest lines and exchanges that fit in half of it.
pub struct Assistant {
    model: Arc<LanguageModel>,
    ctx: Context,
    system: Vec<u32>,
    /// A user turn is open in the cache.
    open: bool,
    history: std::collections::VecDeque<Part>,
    /// Tokens kept free for a request and its reply.
    reserve: usize,
}

/// What the conversation holds, for a rebuild.
enum Part {
    Heard(Vec<u32>),
    Exchange { request: Vec<u32>, reply: Vec<u32> },
}

impl Assistant {
    pub fn new(model: Arc<LanguageModel>, system: &str, reserve: usize) -> Result<Self> {
        let system = model.turn("system", system)?;
        if system.len() + 2 * reserve > model.params().context {
            return Err(Error::InvalidArgument(format!(
                "a context of {} tokens cannot hold the system prompt ({} tokens) and twice the reserve ({reserve})",
                model.params().context,
                system.len()
            )));
        }
        let mut ctx = model.new_context()?;
        model.feed(&mut ctx, &system)?;
        Ok(Self {
            model,
            ctx,
            system,
            open: false,
            history: Default::default(),
            reserve,
        })
    }

    pub fn model(&self) -> &LanguageModel {
        &self.model
    }

    /// Tokens in the cache now.
    pub fn len(&self) -> usize {
        self.ctx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ctx.is_empty()
    }

    /// The tokens in the cache, system prompt first.
    pub fn tokens(&self) -> &[u32] {
        self.ctx.tokens()
    }

    /// Adds a line of what was heard (`[01:05] Alice: the release moves`).
    pub fn hear(&mut self, line: &str) -> Result<()> {
        let part = Part::Heard(self.model.encode(&format!("{line}\n"))?);
        let mut ids = self.render(&part, self.open)?;
        if self.make_room(ids.len())? {
            // After a rebuild a user turn may stand open where none did.
            ids = self.render(&part, self.open)?;
        }
        self.model.feed(&mut self.ctx, &ids)?;
        self.open = true;
        self.history.push_back(part);
        Ok(())
    }

    /// Closes the turn of what was heard, adds `line` (the request) as a user turn of its own
    /// and has the model reply in at most `max_tokens`; `on_text` gets the reply so far as it
    /// grows.
    pub fn ask(
        &mut self,
        line: &str,
        max_tokens: usize,
        cancel: &CancelFlag,
        on_text: impl FnMut(&str),
    ) -> Result<Reply> {
        let request = self.model.encode(line)?;
        let mut part = Part::Exchange {
            request,
            reply: Vec::new(),
        };
        let mut ids = self.render(&part, self.open)?;
        // Without the reply and its end: the model writes those.
        let unwritten = 1 + self.model.newline.len();
        ids.truncate(ids.len() - unwritten);
        if self.make_room(ids.len() + max_tokens)? {
            ids = self.render(&part, self.open)?;
            ids.truncate(ids.len() - unwritten);
        }
        self.model.feed(&mut self.ctx, &ids)?;
        self.open = false;
        match self.model.reply(&mut self.ctx, max_tokens, cancel, on_text) {
            Ok(reply) => {
                if let Part::Exchange { reply: r, .. } = &mut part {
                    r.clone_from(&reply.tokens);
                }
                self.history.push_back(part);
                Ok(reply)
            }
            Err(e) => {
                // A reply cut short leaves the cache mid-turn: rebuild without it.
                self.rebuild()?;
                Err(e)
            }
        }
    }

    fn open_user(&self, open: bool) -> Result<Vec<u32>> {
        if open {
            return Ok(Vec::new());
        }
        let mut ids = vec![self.model.params.im_start];
        ids.extend(self.model.encode("user\n")?);
        Ok(ids)
    }

    /// The ids `part` adds after a user turn was (`open`) or was not left open. A request
    /// is a user turn of its own, after the turn of what was heard: small models asked at
    /// the end of a long turn of heard lines tend to repeat those lines instead of answering.
    fn render(&self, part: &Part, open: bool) -> Result<Vec<u32>> {
        let p = &self.model.params;
        let mut ids = Vec::new();
        match part {
            Part::Heard(line) => {
                ids.extend(self.open_user(open)?);
                ids.extend(line);
            }
            Part::Exchange { request, reply } => {
                if open {
                    ids.push(p.im_end);
                    ids.extend(&self.model.newline);
                }
                ids.extend(self.open_user(false)?);
                ids.extend(request);
                ids.push(p.im_end);
                ids.extend(&self.model.newline);
                ids.extend(self.model.reply_prefix()?);
                ids.extend(reply);
                ids.push(p.im_end);
                ids.extend(&self.model.newline);
            }
        }
        Ok(ids)
    }

    /// Rebuilds when `more` tokens and the reserve would not fit; says whether it did.
    fn make_room(&mut self, more: usize) -> Result<bool> {
        if self.ctx.len() + more + self.reserve <= self.model.params().context {
            return Ok(false);
        }
        self.rebuild()?;
        Ok(true)
    }

    /// The system prompt and the newest history that fits in half the context.
    fn rebuild(&mut self) -> Result<()> {
        let budget = self.model.params().context / 2;
        let mut kept = 0;
        let mut keep_from = self.history.len();
        for (i, part) in self.history.iter().enumerate().rev() {
            let n = self.render(part, false)?.len();
            if kept + n > budget {
                break;
            }
            kept += n;
            keep_from = i;
        }
        self.history.drain(..keep_from);
        let mut ids = self.system.clone();
        let mut open = false;
        for part in &self.history {
            ids.extend(self.render(part, open)?);
            open = matches!(part, Part::Heard(_));
        }
        let mut ctx = self.model.new_context()?;
        self.model.feed(&mut ctx, &ids)?;
        self.ctx = ctx;
        self.open = open;
        Ok(())
    }
}

/// `[mm:ss]` (or `[h:mm:ss]`) for a time in seconds, how heard lines are stamped.
pub fn stamp(seconds: f64) -> String {
    let t = seconds.max(0.0).round() as u64;
    let (h, m, s) = (t / 3600, t / 60 % 60, t % 60);
    if h > 0 {
        format!("[{h}:{m:02}:{s:02}]")
    } else {
        format!("[{m:02}:{s:02}]")
    }
}

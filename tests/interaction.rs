//! The interaction model through the real ONNX Runtime, on the `tiny-random` package that
//! scripts/setup.sh builds with the project's converter (models/llm/build_package.sh: random
//! weights in every GGUF block type, converted and checked against a numpy forward pass). The
//! converter records the prompt ids and greedy replies onnxruntime gave in Python
//! (selfcheck.json); the Rust side must build the same ChatML ids and give the same replies,
//! fed at once or turn by turn through its cache. Bad packages are clear errors.

use soundflow::base::cancel::CancelFlag;
use soundflow::models::package::ModelPackage;
use soundflow::models::runtime::{ExecutionProvider, Runtime, SessionOptions};
use soundflow::respond::assistant::interaction::{Assistant, LanguageModel, stamp};

fn opts() -> SessionOptions {
    SessionOptions {
        provider: ExecutionProvider::Cpu,
        intra_threads: 2,
        shared: false,
        ..Default::default()
    }
}

fn package(name: &str) -> ModelPackage {
    ModelPackage::find(name)
        .unwrap_or_else(|e| panic!("{name} package (run scripts/setup.sh): {e}"))
}

fn load(pkg: &ModelPackage) -> LanguageModel {
    let rt = Runtime::get(None).expect("ONNX Runtime (run scripts/setup.sh)");
    LanguageModel::load(pkg, &rt, &opts()).expect("the model loads")
}

struct Record {
    prompt: String,
    system: String,
    ids: Vec<u32>,
    shipped: Vec<u32>,
}

fn records(pkg: &ModelPackage) -> Vec<Record> {
    let path = pkg.dir.join("selfcheck.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("selfcheck.json parses");
    let ids = |x: &serde_json::Value| -> Vec<u32> {
        x.as_array()
            .expect("a list of ids")
            .iter()
            .map(|i| i.as_u64().expect("an id") as u32)
            .collect()
    };
    v.as_array()
        .expect("a list of records")
        .iter()
        .map(|r| Record {
            prompt: r["prompt"].as_str().expect("prompt").to_string(),
            system: r["system"].as_str().expect("system").to_string(),
            ids: ids(&r["ids"]),
            shipped: ids(&r["shipped"]),
        })
        .collect()
}

fn prompt_ids(m: &LanguageModel, r: &Record) -> Vec<Vec<u32>> {
    let mut parts = Vec::new();
    if !r.system.is_empty() {
        parts.push(m.turn("system", &r.system).expect("system turn"));
    }
    parts.push(m.turn("user", &r.prompt).expect("user turn"));
    parts.push(m.reply_prefix().expect("assistant prefix"));
    parts
}

/// The reply as the converter recorded it: the tokens before the stop token.
fn expected(m: &LanguageModel, r: &Record) -> (Vec<u32>, bool) {
    let stop = &m.params().stop;
    match r.shipped.iter().position(|t| stop.contains(t)) {
        Some(i) => (r.shipped[..i].to_vec(), true),
        None => (r.shipped.clone(), false),
    }
}

#[test]
fn replies_match_what_the_converter_recorded_fed_at_once_or_turn_by_turn() {
    let pkg = package("tiny-random");
    let m = load(&pkg);
    let recs = records(&pkg);
    assert!(recs.len() >= 2, "selfcheck.json has {} records", recs.len());
    for r in &recs {
        let parts = prompt_ids(&m, r);
        let all: Vec<u32> = parts.concat();
        assert_eq!(all, r.ids, "ChatML ids for {:?}", r.prompt);
        let (want, finished) = expected(&m, r);
        let budget = r.shipped.len();

        let mut ctx = m.new_context().expect("context");
        m.feed(&mut ctx, &all).expect("prefill");
        let mut partial = Vec::new();
        let reply = m
            .reply(&mut ctx, budget, &CancelFlag::default(), |t| {
                partial.push(t.to_string())
            })
            .expect("reply");
        assert_eq!(reply.tokens, want, "reply to {:?}", r.prompt);
        assert_eq!(reply.finished, finished);
        assert!(
            partial.windows(2).all(|w| w[1].starts_with(&w[0])),
            "partial texts only grow: {partial:?}"
        );
        // The reply and its closing <|im_end|>\n stay in the conversation.
        assert_eq!(ctx.len(), all.len() + want.len() + 2);

        let mut ctx = m.new_context().expect("context");
        for p in &parts {
            m.feed(&mut ctx, p).expect("turn");
        }
        let again = m
            .reply(&mut ctx, budget, &CancelFlag::default(), |_| {})
            .expect("reply");
        assert_eq!(again.tokens, want, "turn by turn, reply to {:?}", r.prompt);
    }
}

#[test]
fn a_conversation_goes_on_after_a_reply_and_stops_at_the_context_limit() {
    let pkg = package("tiny-random");
    let m = load(&pkg);
    let mut ctx = m.new_context().expect("context");
    let turn = m
        .turn("user", "[00:01] Alice: the release moves to the 14th")
        .expect("turn");
    m.feed(&mut ctx, &turn).expect("feed");
    m.feed(&mut ctx, &m.reply_prefix().expect("prefix"))
        .expect("feed");
    m.reply(&mut ctx, 4, &CancelFlag::default(), |_| {})
        .expect("first reply");
    let held = ctx.len();
    m.feed(&mut ctx, &m.turn("user", "when is it?").expect("turn"))
        .expect("second turn");
    assert!(ctx.len() > held);

    // Past the context the model was built for: an error, and the conversation is unchanged.
    let limit = m.params().context;
    let long = vec![turn[1]; limit];
    let before = ctx.len();
    let err = m.feed(&mut ctx, &long).expect_err("over the context");
    assert!(err.to_string().contains("more than the model's"), "{err}");
    assert_eq!(ctx.len(), before);

    let cancel = CancelFlag::default();
    cancel.cancel();
    m.feed(&mut ctx, &m.reply_prefix().expect("prefix"))
        .expect("feed");
    assert!(matches!(
        m.reply(&mut ctx, 4, &cancel, |_| {}),
        Err(soundflow::Error::Cancelled)
    ));
}

#[test]
fn special_token_text_in_a_turn_stays_text() {
    let pkg = package("tiny-random");
    let m = load(&pkg);
    let ids = m.turn("user", "say <|im_end|> please").expect("turn");
    let im_end = m.params().im_end;
    assert_eq!(ids.iter().filter(|&&t| t == im_end).count(), 1, "{ids:?}");
}

#[test]
fn bad_packages_are_clear_errors() {
    let pkg = package("tiny-random");
    let rt = Runtime::get(None).expect("ONNX Runtime");
    let dir = std::env::temp_dir().join(format!("lalm-interaction-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    for f in ["model.toml", "tokenizer.json"] {
        std::fs::copy(pkg.dir.join(f), dir.join(f)).expect("copy");
    }
    // No model file.
    let p = ModelPackage::load(&dir).expect("manifest");
    let err = LanguageModel::load(&p, &rt, &opts()).expect_err("no model.onnx");
    assert!(err.to_string().contains("model.onnx"), "{err}");
    // A model file that is not ONNX.
    std::fs::write(dir.join("model.onnx"), b"not a model").expect("write");
    let err = LanguageModel::load(&p, &rt, &opts()).expect_err("corrupt model.onnx");
    assert!(err.to_string().contains("model.onnx"), "{err}");
    // Another prompt format.
    let toml = std::fs::read_to_string(pkg.dir.join("model.toml")).expect("read");
    std::fs::write(
        dir.join("model.toml"),
        toml.replace("template = \"chatml\"", "template = \"llama2\""),
    )
    .expect("write");
    let p = ModelPackage::load(&dir).expect("manifest");
    let err = LanguageModel::load(&p, &rt, &opts()).expect_err("llama2 template");
    assert!(err.to_string().contains("chatml"), "{err}");
    // An audio model's package is not a language model.
    let vad = package("silero-vad");
    let err = LanguageModel::load(&vad, &rt, &opts()).expect_err("wrong family");
    assert!(err.to_string().contains("interaction-model"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_assistant_keeps_the_newest_lines_when_the_context_fills() {
    let m = std::sync::Arc::new(load(&package("tiny-random")));
    let context = m.params().context;
    let reserve = 48;
    let mut a = Assistant::new(m.clone(), "You listen to a meeting.", reserve).expect("assistant");
    for i in 0..120 {
        a.hear(&format!(
            "{} Alice: line {i} of the meeting",
            stamp(i as f64 * 3.0)
        ))
        .expect("hear");
        assert!(
            a.len() + reserve <= context,
            "{} tokens held at line {i}",
            a.len()
        );
    }
    let text = m.decode(a.tokens()).expect("decode");
    assert!(text.contains("line 119 of"), "the newest line is kept");
    assert!(!text.contains("line 0 of"), "the oldest line is gone");
    assert!(text.starts_with("system\nYou listen"), "{text:.40}");

    // A reply from the rebuilt cache equals one from a fresh cache fed the same tokens.
    let r = a
        .ask(
            "[06:00] Bob: what was said?",
            6,
            &CancelFlag::default(),
            |_| {},
        )
        .expect("ask");
    let held = a.tokens().to_vec();
    // Four turns: the system prompt, what was heard, the request (a turn of its own) and
    // the reply.
    let starts = held.iter().filter(|&&t| t == m.params().im_start).count();
    assert_eq!(starts, 4, "{:?}", m.decode(&held));
    // The reply is closed with <|im_end|>\n.
    let close = 1 + m.encode("\n").expect("encode").len();
    let before = held.len() - r.tokens.len() - close;
    let mut fresh = m.new_context().expect("context");
    m.feed(&mut fresh, &held[..before]).expect("feed");
    let again = m
        .reply(&mut fresh, 6, &CancelFlag::default(), |_| {})
        .expect("reply");
    assert_eq!(again.tokens, r.tokens);
    assert_eq!(fresh.tokens(), &held[..]);

    // The next heard line opens a new user turn after the reply.
    a.hear("[06:05] Alice: thanks").expect("hear");
    let tail = m.decode(&a.tokens()[held.len()..]).expect("decode");
    assert_eq!(tail, "user\n[06:05] Alice: thanks\n");
}

#[test]
fn stamps_read_as_minutes_and_seconds() {
    assert_eq!(stamp(0.4), "[00:00]");
    assert_eq!(stamp(65.0), "[01:05]");
    assert_eq!(stamp(3725.0), "[1:02:05]");
}

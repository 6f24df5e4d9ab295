//! lalm-perceive: serialized events and queries stay in order with the chunks queued for the
//! worker, a model error does not lock the element up, and caps follow the model's rate.
//! Runs the real Silero VAD (installed by scripts/setup.sh).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, Once};
use std::time::Duration;

use gst::prelude::*;
use gst_check::Harness;

const F32_CAPS: &str = "audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved";
const S16_CAPS: &str = "audio/x-raw,format=S16LE,rate=16000,channels=1,layout=interleaved";
const CHUNK: usize = 6400;
/// How long a test waits for something that happens at once when the code is right.
const PATIENCE: Duration = Duration::from_secs(20);

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().expect("gst init");
        gstlalm::plugin_register_static().expect("register plugin");
    });
}

/// A 400 ms chunk of a constant at -40 dBFS in `format`, at chunk position `i`.
fn chunk(i: u64, s16: bool) -> gst::Buffer {
    let bytes: Vec<u8> = if s16 {
        (0..CHUNK).flat_map(|_| 328i16.to_le_bytes()).collect()
    } else {
        (0..CHUNK).flat_map(|_| 0.01f32.to_le_bytes()).collect()
    };
    let mut b = gst::Buffer::from_mut_slice(bytes);
    let buf = b.get_mut().expect("writable");
    buf.set_pts(gst::ClockTime::from_mseconds(400 * i));
    buf.set_duration(gst::ClockTime::from_mseconds(400));
    b
}

fn perception(b: &gst::Buffer) -> soundflow::perceive::perception::Perception {
    let s =
        gstlalm::meta::get_structure(b, gstlalm::meta::PERCEPTION_META).expect("perception meta");
    gstlalm::meta::perception_from(&s).expect("parses")
}

/// Holds the worker at its first push downstream until opened, and counts the chunks that
/// went on downstream.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cond: Condvar,
    held: Mutex<bool>,
    passed: AtomicUsize,
}

impl Gate {
    fn install(element: &gst::Element) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        let g = gate.clone();
        element.static_pad("src").expect("src pad").add_probe(
            gst::PadProbeType::BUFFER,
            move |_, _| {
                *g.held.lock().expect("lock") = true;
                g.cond.notify_all();
                // No panic on this thread when a test fails: the test's GateGuard opens it.
                let open = g.open.lock().expect("lock");
                let _open = g.cond.wait_while(open, |o| !*o).expect("lock");
                g.passed.fetch_add(1, Ordering::SeqCst);
                gst::PadProbeReturn::Ok
            },
        );
        gate
    }

    /// Waits until the worker is held at the gate with its first chunk.
    fn wait_held(&self) {
        let held = self.held.lock().expect("lock");
        let (_held, timeout) = self
            .cond
            .wait_timeout_while(held, PATIENCE, |h| !*h)
            .expect("lock");
        assert!(!timeout.timed_out(), "the worker never pushed a chunk");
    }

    fn open(&self) {
        *self.open.lock().expect("lock") = true;
        self.cond.notify_all();
    }
}

/// Opens the gate when the test ends, failed or not, so the worker can stop.
struct GateGuard(Arc<Gate>);

impl Drop for GateGuard {
    fn drop(&mut self) {
        self.0.open();
    }
}

impl std::ops::Deref for GateGuard {
    type Target = Arc<Gate>;
    fn deref(&self) -> &Arc<Gate> {
        &self.0
    }
}

/// A harness around lalm-perceive (VAD alone) with three F32 chunks pushed while its worker
/// is held at the gate with the first: chunks 1 and 2 wait in its queue (or are dropped).
fn held_with_three_chunks(props: &[(&str, &str)]) -> (Harness, GateGuard) {
    init();
    let mut h = Harness::new("lalm-perceive");
    let e = h.element().expect("element");
    e.set_property_from_str("tagger", "none");
    for (k, v) in props {
        e.set_property_from_str(k, v);
    }
    let gate = Gate::install(&e);
    h.set_src_caps_str(F32_CAPS);
    h.play();
    h.push(chunk(0, false)).expect("push");
    gate.wait_held();
    h.push(chunk(1, false)).expect("push");
    h.push(chunk(2, false)).expect("push");
    (h, GateGuard(gate))
}

#[test]
fn a_caps_change_applies_only_to_the_chunks_after_it() {
    // Chunks 1 and 2 wait in the queue, F32 like the caps before them, when S16 caps come.
    let (mut h, gate) = held_with_three_chunks(&[("overload", "block")]);
    assert!(h.push_event(gst::event::Caps::new(
        &S16_CAPS.parse::<gst::Caps>().expect("caps")
    )));
    h.push(chunk(3, true)).expect("push");
    gate.open();
    let mut windows = 0;
    for i in 0..4 {
        let p = perception(&h.pull().expect("chunk"));
        assert!(!p.windows.is_empty(), "chunk {i} has windows");
        for w in &p.windows {
            // Read in the wrong format, the -40 dBFS chunk is about -7 dBFS of noise.
            assert!(
                (w.level_db + 40.0).abs() < 0.5,
                "chunk {i} read in its own format: window at {} is {} dBFS",
                w.start,
                w.level_db
            );
        }
        windows += p.windows.len();
    }
    assert_eq!(windows, 4 * CHUNK / 512);
}

#[test]
fn a_drain_query_returns_only_after_the_chunks_before_it_came_out() {
    let (mut h, gate) = held_with_three_chunks(&[("overload", "block")]);
    let sinkpad = h
        .element()
        .expect("element")
        .static_pad("sink")
        .expect("sink");
    let (tx, rx) = mpsc::channel();
    let g = Arc::clone(&gate);
    std::thread::spawn(move || {
        let mut q = gst::query::Drain::new();
        let answered = sinkpad.query(&mut q);
        let _ = tx.send((answered, g.passed.load(Ordering::SeqCst)));
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "the drain query overtook three chunks still in the element"
    );
    gate.open();
    let (answered, passed) = rx.recv_timeout(PATIENCE).expect("the drain query returns");
    assert!(answered);
    assert_eq!(
        passed, 3,
        "every chunk before the query was pushed when it returned"
    );
    for _ in 0..3 {
        h.pull().expect("chunk");
    }
}

#[test]
fn a_dropped_chunk_restarts_the_models_on_the_next_chunk_not_on_earlier_ones() {
    // Chunk 1 fills the queue of one, chunk 2 is dropped.
    let (mut h, gate) = held_with_three_chunks(&[("overload", "drop"), ("max-queue", "1")]);
    gate.open();
    let first = perception(&h.pull().expect("chunk 0"));
    let second = h.pull().expect("chunk 1");
    assert_eq!(second.pts(), Some(gst::ClockTime::from_mseconds(400)));
    h.push(chunk(3, false)).expect("push");
    let fourth = h.pull().expect("chunk 3");
    assert_eq!(fourth.pts(), Some(gst::ClockTime::from_mseconds(1200)));
    assert!(first.reset, "the stream starts with a reset");
    assert!(
        !perception(&second).reset,
        "chunk 1 was queued before the drop: it continues the model state"
    );
    assert!(
        perception(&fourth).reset,
        "chunk 3 comes after the hole: the models restart"
    );
}

/// A package in a fresh folder for the installed Silero model file, declared at `rate` with
/// the extra manifest lines `params`.
fn vad_package(name: &str, rate: u32, params: &str) -> std::path::PathBuf {
    let model = soundflow::models::package::ModelPackage::find("silero-vad")
        .expect("silero-vad installed")
        .file("model")
        .expect("model file");
    let dir = common::tmpdir(name);
    std::fs::write(
        dir.join("model.toml"),
        format!(
            "family = \"silero-vad\"\nsample_rate = {rate}\n[files]\nmodel = \"{}\"\n{params}",
            model.display()
        ),
    )
    .expect("manifest");
    dir
}

/// The pipeline `description` and its element named `p`.
fn launch(description: &str) -> (gst::Element, gst::Element) {
    init();
    let p = gst::parse::launch(description).expect("parses");
    let named = p
        .downcast_ref::<gst::Bin>()
        .expect("bin")
        .by_name("p")
        .expect("an element named p");
    (p, named)
}

#[test]
fn stats_can_be_read_from_a_sync_bus_handler_when_the_model_fails() {
    // A window too short for the model's own padding: it loads, and fails at inference.
    let dir = vad_package("failing-vad", 16000, "[params]\nwindow = 16\ncontext = 0\n");
    let (p, perceive) = launch(&format!(
        "audiotestsrc num-buffers=3 ! audio/x-raw,rate=16000,channels=1,format=F32LE \
         ! lalm-perceive name=p tagger=none model={} ! fakesink",
        dir.display()
    ));
    let bus = p.bus().expect("bus");
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    bus.set_sync_handler(move |_, msg| {
        if let gst::MessageView::Error(e) = msg.view()
            && e.error().to_string().contains("Perception model failed")
        {
            // On the worker's thread, as an application's handler would run.
            let stats = perceive.property::<gst::Structure>("stats");
            let _ = tx
                .lock()
                .expect("lock")
                .send(stats.get::<u64>("chunks").expect("chunks"));
        }
        gst::BusSyncReply::Pass
    });
    p.set_state(gst::State::Playing).expect("plays");
    match rx.recv_timeout(PATIENCE) {
        Ok(chunks) => assert_eq!(chunks, 0, "the failed chunk is not counted"),
        Err(_) => {
            // The worker is stuck: shutting the pipeline down would hang too.
            std::mem::forget(p);
            panic!("reading stats from the error's sync handler deadlocked");
        }
    }
    bus.unset_sync_handler();
    p.set_state(gst::State::Null).expect("stops");
}

fn rates(caps: &gst::Caps) -> Vec<Option<i32>> {
    caps.iter().map(|s| s.get::<i32>("rate").ok()).collect()
}

#[test]
fn caps_queries_answer_the_models_rate_once_it_is_loaded() {
    init();
    let e = gst::ElementFactory::make("lalm-perceive")
        .property_from_str("tagger", "none")
        .build()
        .expect("element");
    let any = e.static_pad("sink").expect("sink").query_caps(None);
    assert!(
        !any.is_fixed()
            && any
                .structure(0)
                .is_some_and(|s| s.get::<i32>("rate").is_err()),
        "before a model is loaded any rate goes: {any}"
    );
    e.set_state(gst::State::Ready).expect("READY");
    for pad in ["sink", "src"] {
        let caps = e.static_pad(pad).expect("pad").query_caps(None);
        assert!(!caps.is_empty(), "{pad}: {caps}");
        for s in caps.iter() {
            assert_eq!(s.get::<i32>("rate"), Ok(16000), "{pad}: {caps}");
            assert_eq!(s.get::<i32>("channels"), Ok(1), "{pad}: {caps}");
        }
    }
    let f32_44k = "audio/x-raw,format=F32LE,rate=44100,channels=1,layout=interleaved"
        .parse::<gst::Caps>()
        .expect("caps");
    let f32_16k = F32_CAPS.parse::<gst::Caps>().expect("caps");
    let sink = e.static_pad("sink").expect("sink");
    assert!(!sink.query_accept_caps(&f32_44k));
    assert!(sink.query_accept_caps(&f32_16k));
    e.set_state(gst::State::Null).expect("NULL");
}

/// Runs `upstream ! audioconvert ! audioresample ! lalm-perceive model=... ! fakesink` to
/// EOS; returns the caps lalm-perceive got and the chunks it analysed.
fn negotiate(upstream_rate: u32, model: &str) -> (gst::Caps, u64) {
    let (p, perceive) = launch(&format!(
        "audiotestsrc num-buffers=20 ! audio/x-raw,rate={upstream_rate} ! audioconvert \
         ! audioresample ! lalm-perceive name=p tagger=none model={model} ! fakesink"
    ));
    p.set_state(gst::State::Playing).expect("plays");
    let msg = p.bus().expect("bus").timed_pop_filtered(
        gst::ClockTime::from_seconds(30),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let caps = perceive
        .static_pad("sink")
        .expect("sink")
        .current_caps()
        .unwrap_or_else(gst::Caps::new_empty);
    let chunks = perceive
        .property::<gst::Structure>("stats")
        .get::<u64>("chunks")
        .expect("chunks");
    p.set_state(gst::State::Null).expect("stops");
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => panic!(
            "{upstream_rate} Hz into {model}: {} ({:?})",
            e.error(),
            e.debug()
        ),
        _ => panic!("{upstream_rate} Hz into {model}: no EOS"),
    }
    (caps, chunks)
}

#[test]
fn upstream_resamples_to_the_models_rate() {
    for upstream in [8000, 48000] {
        let (caps, chunks) = negotiate(upstream, "silero-vad");
        assert_eq!(rates(&caps), vec![Some(16000)], "{caps}");
        assert!(chunks > 0);
    }
    // The same model file declared at 8 kHz: the rate comes from the package, not a default.
    let dir = vad_package("vad-8k", 8000, "");
    let (caps, chunks) = negotiate(48000, &dir.display().to_string());
    assert_eq!(rates(&caps), vec![Some(8000)], "{caps}");
    assert!(chunks > 0);
}

/// Runs `description` (with an element named `p`, the lalm-perceive) to EOS; returns that
/// element's stats and the lalm-alert messages posted.
fn run_to_eos(description: &str) -> (gst::Structure, usize) {
    init();
    let pipeline = gst::parse::launch(description)
        .expect("pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let bus = pipeline.bus().expect("bus");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let mut alerts = 0;
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(300)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}: {:?}", e.error(), e.debug()),
            gst::MessageView::Element(el)
                if el.structure().is_some_and(|s| s.name() == "lalm-alert") =>
            {
                alerts += 1
            }
            _ => {}
        }
    }
    let stats = pipeline
        .by_name("p")
        .expect("perceive")
        .property::<gst::Structure>("stats");
    pipeline.set_state(gst::State::Null).expect("null");
    (stats, alerts)
}

/// lalm-decide tells lalm-perceive which tagger labels its rules act on (a custom query as
/// the stream starts), and while none of them comes near on real speech the tagger scores
/// one abutting 2 s window after another instead of one every 0.5 s. Without lalm-decide
/// downstream, or with `tagger-calm-hop-ms=0`, every window is scored.
#[test]
fn the_tagger_looks_coarsely_where_no_rule_could_fire() {
    let wav = common::asterisk_live_wav();
    let desc = |calm: &str, decide: &str| {
        format!(
            "filesrc location=\"{}\" ! wavparse ! audioconvert ! audioresample ! lalm-chunker \
             ! lalm-perceive name=p {calm} ! {decide} fakesink",
            wav.display()
        )
    };
    let scored = |s: &gst::Structure| s.get::<u64>("tagger-scored").expect("tagger-scored");
    let (calm, alerts_calm) = run_to_eos(&desc("", "lalm-decide !"));
    let (full, alerts_full) = run_to_eos(&desc("tagger-calm-hop-ms=0", "lalm-decide !"));
    let (alone, _) = run_to_eos(&desc("", ""));
    eprintln!("calm hop: {calm}\nfull: {full}\nno lalm-decide: {alone}");
    assert!(scored(&full) > 200, "{full}");
    assert!(
        scored(&calm) * 3 < scored(&full),
        "calm hop {} windows against {}",
        scored(&calm),
        scored(&full)
    );
    assert_eq!(
        scored(&alone),
        scored(&full),
        "unanswered, every window is scored"
    );
    // Speech raises no sound alert either way.
    assert_eq!((alerts_calm, alerts_full), (0, 0));
}

/// The tagger's 527 label names go with the stream's first chunk and with the chunks that
/// carry tag frames, not with every chunk; the frames' chunks always have them.
#[test]
fn tagger_labels_come_with_the_first_chunk_and_with_frames_only() {
    init();
    let mut h = Harness::new("lalm-perceive");
    h.set_src_caps_str(F32_CAPS);
    h.play();
    let mut seen = Vec::new();
    for i in 0..12 {
        h.push(chunk(i, false)).expect("push");
        let p = perception(&h.pull().expect("a chunk"));
        seen.push((p.reset, p.labels.len(), p.tags.len()));
    }
    eprintln!("(reset, labels, frames) per chunk: {seen:?}");
    assert!(seen[0].0, "the first chunk restarts the models");
    assert_eq!(seen[0].1, 527, "the first chunk names the labels");
    assert!(seen.iter().any(|s| s.2 > 0), "frames came");
    for (i, (_, labels, frames)) in seen.iter().enumerate().skip(1) {
        assert_eq!(*labels, if *frames > 0 { 527 } else { 0 }, "chunk {i}");
    }
}

//! `lalm-chunker` with gst_check::Harness: long GAPs stream chunk by chunk with exact
//! timestamps and bounded memory, times at the end of the clock's range, caps queries that
//! carry downstream's rate upstream, and allocation queries that are not proxied.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};

use gst::prelude::*;
use gst_check::Harness;

const RATE: u64 = 16000;
const F32_CAPS: &str = "audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved";
/// 400 ms at 16 kHz, the default chunk.
const CHUNK: u64 = 6400;

/// The system allocator, counting the bytes in use and their peak, so a test can see how
/// much memory an event took while it was handled.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The tests of this file run one at a time, so the allocation counts are one test's.
static SERIAL: Mutex<()> = Mutex::new(());

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().expect("gst init");
        gstlalm::plugin_register_static().expect("register plugin");
    });
}

/// A chunker in a harness, for a test that runs alone (see [`SERIAL`]) while the guard lives.
fn chunker() -> (MutexGuard<'static, ()>, Harness) {
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    init();
    (serial, Harness::new("lalm-chunker"))
}

/// A chunker fed 16 kHz F32 whose chunks are recorded and dropped (see [`record_and_drop`]).
fn recording_chunker() -> (MutexGuard<'static, ()>, Harness, Arc<Mutex<Vec<Out>>>) {
    let (serial, mut h) = chunker();
    h.set_src_caps_str(F32_CAPS);
    let seen = record_and_drop(&h);
    (serial, h, seen)
}

fn pad(h: &Harness, name: &str) -> gst::Pad {
    h.element()
        .and_then(|e| e.static_pad(name))
        .expect("chunker pad")
}

/// What the tests check of each chunk that came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Out {
    pts: gst::ClockTime,
    duration: gst::ClockTime,
    offset: u64,
    offset_end: u64,
    discont: bool,
    start: u64,
    valid: u32,
    padded: bool,
    silent: bool,
}

/// Records every chunk the chunker pushes and drops it there, so only what the chunker itself
/// holds counts in memory.
fn record_and_drop(h: &Harness) -> Arc<Mutex<Vec<Out>>> {
    // Room for every chunk of the tests, taken before anything is measured.
    let seen = Arc::new(Mutex::new(Vec::with_capacity(10_000)));
    let sink = Arc::clone(&seen);
    pad(h, "src").add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(b) = info.buffer() {
            let c = gstlalm::meta::chunk_info(b).expect("chunk meta");
            let silent = b
                .map_readable()
                .map(|m| m.iter().all(|&x| x == 0))
                .unwrap_or(false);
            sink.lock().unwrap().push(Out {
                pts: b.pts().expect("pts"),
                duration: b.duration().expect("duration"),
                offset: b.offset(),
                offset_end: b.offset_end(),
                discont: b.flags().contains(gst::BufferFlags::DISCONT),
                start: c.start,
                valid: c.valid,
                padded: c.padded,
                silent,
            });
        }
        gst::PadProbeReturn::Drop
    });
    seen
}

fn ns(samples: u64) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(samples * 1_000_000_000 / RATE)
}

fn audio(samples: u64, pts: gst::ClockTime) -> gst::Buffer {
    let bytes: Vec<u8> = (0..samples).flat_map(|_| 0.25f32.to_le_bytes()).collect();
    let mut b = gst::Buffer::from_mut_slice(bytes);
    b.get_mut().expect("writable").set_pts(pts);
    b
}

/// Consecutive chunks tile the stream: each starts where the one before ended, in time and
/// in samples.
fn assert_contiguous(out: &[Out]) {
    for w in out.windows(2) {
        assert_eq!(
            w[0].pts + w[0].duration,
            w[1].pts,
            "{:?} then {:?}",
            w[0],
            w[1]
        );
        assert_eq!(
            w[0].offset + CHUNK,
            w[1].offset,
            "{:?} then {:?}",
            w[0],
            w[1]
        );
        assert_eq!(w[0].offset_end, w[1].offset, "{:?} then {:?}", w[0], w[1]);
    }
}

#[test]
fn an_hour_long_gap_streams_exact_chunks_in_bounded_memory() {
    let (_serial, mut h, seen) = recording_chunker();
    // 100 ms of audio, then an hour in which nothing was heard.
    assert_eq!(h.push(audio(1600, ns(0))), Ok(gst::FlowSuccess::Ok));
    let hour = 3600 * RATE;

    let before = IN_USE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    assert!(
        h.push_event(
            gst::event::Gap::builder(ns(1600))
                .duration(ns(hour))
                .build()
        )
    );
    let grew = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    // An hour of 16 kHz F32 is 230 MB; chunk by chunk the gap needs a chunk or two (25.6 KB
    // each) plus GStreamer's bookkeeping.
    assert!(
        grew < 4 << 20,
        "the gap took {grew} bytes at its peak: it was framed all at once"
    );

    h.push_event(gst::event::Eos::new());
    let out = seen.lock().unwrap().clone();
    let total = 1600 + hour;
    assert_eq!(out.len() as u64, total / CHUNK + 1);
    assert_contiguous(&out);
    for (k, o) in out.iter().enumerate() {
        let start = k as u64 * CHUNK;
        assert_eq!(o.pts, ns(start), "chunk {k}");
        assert_eq!((o.start, o.offset), (start, start), "chunk {k}");
        assert_eq!(o.discont, k == 0, "chunk {k}");
        assert_eq!(o.silent, k > 0, "chunk {k}");
    }
    let last = out.last().expect("chunks");
    assert!(last.padded);
    assert_eq!(last.start + last.valid as u64, total);
    assert_eq!(last.pts + last.duration, ns(total));
    assert_eq!(last.offset_end, total);
}

#[test]
fn a_gap_ending_past_the_clock_range_is_clamped() {
    let (_serial, mut h, seen) = recording_chunker();
    // timestamp + duration overflows: the gap covers the last second of the range.
    let ts = gst::ClockTime::MAX - gst::ClockTime::SECOND;
    let gap = gst::event::Gap::builder(ts)
        .duration(10 * gst::ClockTime::SECOND)
        .build();
    assert!(h.push_event(gap));
    h.push_event(gst::event::Eos::new());
    let out = seen.lock().unwrap().clone();
    // One second is 16000 samples: two whole chunks and a padded one.
    assert_eq!(out.len(), 3, "{out:?}");
    assert_contiguous(&out);
    assert!(out[0].pts >= ts && out[0].pts < ts + gst::ClockTime::MSECOND);
    let last = out[2];
    assert!(last.padded && last.valid == 3200);
    assert_eq!(last.pts + last.duration, gst::ClockTime::MAX);
}

#[test]
fn audio_at_the_end_of_the_clock_range_is_clamped() {
    let (_serial, mut h, seen) = recording_chunker();
    // 10 ms before the end of the range, 800 ms of audio: its chunks' ends are past it.
    let pts = gst::ClockTime::MAX - 10 * gst::ClockTime::MSECOND;
    assert_eq!(h.push(audio(2 * CHUNK, pts)), Ok(gst::FlowSuccess::Ok));
    h.push_event(gst::event::Eos::new());
    let out = seen.lock().unwrap().clone();
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out[0].pts >= pts);
    assert_eq!(out[0].pts + out[0].duration, gst::ClockTime::MAX);
    assert_eq!(
        (out[1].pts, out[1].duration),
        (gst::ClockTime::MAX, gst::ClockTime::ZERO)
    );
    assert_eq!(out[1].offset, out[0].offset + CHUNK);
}

#[test]
fn a_huge_upstream_latency_saturates() {
    let (_serial, mut h) = chunker();
    h.set_src_caps_str(F32_CAPS);
    h.set_upstream_latency(gst::ClockTime::MAX - 100 * gst::ClockTime::MSECOND);
    assert_eq!(h.query_latency(), Some(gst::ClockTime::MAX));
}

#[test]
fn a_rate_that_makes_a_huge_chunk_is_refused() {
    let (_serial, mut h) = chunker();
    h.element()
        .expect("chunker")
        .set_property("chunk-ms", 60_000u32);
    // 60 s at 1 GHz is 6e10 samples, 240 GB a chunk: refused, not allocated.
    h.set_src_caps_str("audio/x-raw,format=F32LE,rate=1000000000,channels=1,layout=interleaved");
    let gap = gst::event::Gap::builder(gst::ClockTime::ZERO)
        .duration(gst::ClockTime::SECOND)
        .build();
    h.push_event(gap);
    assert_eq!(
        h.push(audio(16, gst::ClockTime::ZERO)),
        Err(gst::FlowError::NotNegotiated)
    );
}

#[test]
fn caps_queries_carry_downstreams_rate_upstream() {
    let (_serial, mut h) = chunker();
    h.set_sink_caps_str(F32_CAPS);
    let sink = pad(&h, "sink");
    let caps = sink.query_caps(None);
    assert!(!caps.is_empty() && !caps.is_any(), "{caps}");
    for s in caps.iter() {
        assert_eq!(s.get::<i32>("rate"), Ok(16000), "{caps}");
        assert_eq!(s.get::<i32>("channels"), Ok(1), "{caps}");
    }
    let cd: gst::Caps = "audio/x-raw,format=F32LE,rate=44100,channels=1,layout=interleaved"
        .parse()
        .expect("caps");
    assert!(!sink.query_accept_caps(&cd));
    assert!(sink.query_accept_caps(&F32_CAPS.parse::<gst::Caps>().expect("caps")));
}

/// `audioresample ! lalm-chunker ! <16 kHz only>` negotiates 16 kHz: the chunker's caps
/// query passes downstream's rate up to the resampler (as `lalm-perceive` will ask for its
/// model's rate).
#[test]
fn a_resampler_before_the_chunker_converts_to_downstreams_rate() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    init();
    let pipeline = gst::parse::launch(
        "audiotestsrc num-buffers=20 samplesperbuffer=4410 \
         ! audio/x-raw,format=F32LE,rate=44100,channels=1 ! audioresample ! lalm-chunker \
         ! capsfilter caps=audio/x-raw,rate=16000 ! fakesink name=sink",
    )
    .expect("pipeline");
    let pipeline = pipeline.downcast::<gst::Pipeline>().expect("a pipeline");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let bus = pipeline.bus().expect("bus");
    let msg = bus
        .timed_pop_filtered(
            10 * gst::ClockTime::SECOND,
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS or an error within 10 s");
    let error = match msg.view() {
        gst::MessageView::Error(e) => Some(format!("{} ({:?})", e.error(), e.debug())),
        _ => None,
    };
    let caps = pipeline
        .by_name("sink")
        .and_then(|s| s.static_pad("sink"))
        .and_then(|p| p.current_caps());
    pipeline.set_state(gst::State::Null).expect("null");
    assert_eq!(error, None);
    let caps = caps.expect("negotiated caps");
    assert_eq!(
        caps.structure(0).and_then(|s| s.get::<i32>("rate").ok()),
        Some(16000)
    );
}

#[test]
fn allocation_queries_are_not_proxied_downstream() {
    let (_serial, mut h) = chunker();
    h.set_caps_str(F32_CAPS, F32_CAPS);
    // Downstream offers a meta for buffers of its own (chunk-sized) allocation.
    h.add_propose_allocation_meta(gst::ReferenceTimestampMeta::meta_api(), None);
    let caps: gst::Caps = F32_CAPS.parse().expect("caps");
    let mut q = gst::query::Allocation::new(Some(&caps), true);
    let sink = pad(&h, "sink");
    sink.query(&mut q);
    // Upstream's buffers are copied into chunks: nothing downstream offers applies to them.
    assert!(q.allocation_metas().len() == 0, "{q:?}");
    assert!(q.allocation_pools().len() == 0, "{q:?}");
    assert!(q.allocation_params().len() == 0, "{q:?}");
}

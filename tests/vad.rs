//! Silero VAD through the real ONNX Runtime on speech the test makes with espeak-ng.
//! Needs the setup command's ONNX Runtime and model package.

mod common;

use soundflow::decide::decision::{Decider, DecisionConfig, Event};
use soundflow::models::package::ModelPackage;
use soundflow::models::runtime::{ExecutionProvider, Runtime, SessionOptions};
use soundflow::perceive::vad::{SileroVad, WindowProb};

fn load() -> SileroVad {
    let pkg = ModelPackage::find("silero-vad").expect("silero-vad package (run scripts/setup.sh)");
    let rt = Runtime::get(None).expect("ONNX Runtime (run scripts/setup.sh)");
    SileroVad::load(
        &pkg,
        &rt,
        &SessionOptions {
            provider: ExecutionProvider::Cpu,
            ..Default::default()
        },
    )
    .expect("VAD loads")
}

#[test]
fn speech_and_silence_are_told_apart() {
    let dir = common::tmpdir("vad");
    let speech = common::speak(
        &dir,
        "Good morning everyone, let us begin the meeting.",
        "en-us",
        160,
    );
    let mut audio = vec![0.0f32; 16000];
    audio.extend_from_slice(&speech);
    audio.extend(std::iter::repeat_n(0.0, 16000));
    let mut vad = load();
    let probs = vad.process(0, &audio).expect("inference");
    assert_eq!(probs.len(), audio.len() / 512);
    let (a, b) = common::active_span(&speech);
    let (a, b) = (a + 16000, b + 16000);
    let inside: Vec<f32> = probs
        .iter()
        .filter(|w| w.start as usize > a + 2000 && (w.start as usize) + 512 < b - 2000)
        .map(|w| w.prob)
        .collect();
    let outside: Vec<f32> = probs
        .iter()
        .filter(|w| (w.start as usize) + 512 < a - 3000 || w.start as usize > b + 6000)
        .map(|w| w.prob)
        .collect();
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!(mean(&inside) > 0.7, "speech mean {}", mean(&inside));
    assert!(mean(&outside) < 0.1, "silence mean {}", mean(&outside));

    // Any split of the same samples gives the same windows: the state is carried across calls.
    let mut vad2 = load();
    let mut split = Vec::new();
    let mut pos = 0usize;
    for part in audio.chunks(1000 + 37) {
        split.extend(vad2.process(pos as u64, part).expect("inference"));
        pos += part.len();
    }
    assert_same_windows(&split, &probs, "split input");

    // After a reset the same audio gives the same probabilities again. The lengths first: a
    // zip of an empty (or short) result would compare nothing and pass.
    vad.reset();
    let again = vad.process(0, &audio).expect("inference");
    assert_same_windows(&again, &probs, "after a reset");

    // The decision state machine finds exactly this utterance.
    let mut d = Decider::new(DecisionConfig::default(), 16000, 512).expect("decider");
    let events: Vec<Event> = probs.iter().filter_map(|w| d.push(*w)).collect();
    let turns: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::TurnEnd { start, end } => Some((*start, *end)),
            _ => None,
        })
        .collect();
    assert_eq!(turns.len(), 1, "{events:?}");
    assert!(
        (turns[0].0 as i64 - a as i64).abs() < 2400,
        "start {} vs {a}",
        turns[0].0
    );
    assert!(
        (turns[0].1 as i64 - b as i64).abs() < 2400,
        "end {} vs {b}",
        turns[0].1
    );
}

/// `got` has exactly the windows of `want` (same count, same starts) with the same
/// probabilities.
fn assert_same_windows(got: &[WindowProb], want: &[WindowProb], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: window count");
    for (i, (x, y)) in got.iter().zip(want).enumerate() {
        assert_eq!(x.start, y.start, "{what}: window {i} start");
        assert!(
            (x.prob - y.prob).abs() < 1e-5,
            "{what}: window {i}: {} vs {}",
            x.prob,
            y.prob
        );
    }
}

#[test]
fn a_model_with_other_inputs_is_refused_by_name() {
    let seq = std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/lalm/silero_vad_16k_sequence.onnx");
    let seq = std::env::var_os("LALM_CACHE_DIR")
        .map(|d| std::path::PathBuf::from(d).join("silero_vad_16k_sequence.onnx"))
        .filter(|p| p.is_file())
        .unwrap_or(seq);
    assert!(
        seq.is_file(),
        "{} missing: run scripts/setup.sh",
        seq.display()
    );
    let dir = common::tmpdir("vad-mismatch");
    std::fs::copy(&seq, dir.join("m.onnx")).expect("copy");
    std::fs::write(
        dir.join("model.toml"),
        "family = \"silero-vad\"\nsample_rate = 16000\n[files]\nmodel = \"m.onnx\"\n",
    )
    .expect("manifest");
    let pkg = ModelPackage::load(&dir).expect("manifest loads");
    let rt = Runtime::get(None).expect("runtime");
    let err = SileroVad::load(&pkg, &rt, &SessionOptions::default())
        .expect_err("must be refused")
        .to_string();
    assert!(
        err.contains("no input 'state'") && err.contains("m.onnx"),
        "{err}"
    );
}

#[test]
fn cuda_request_falls_back_to_cpu_and_says_why() {
    let pkg = ModelPackage::find("silero-vad").expect("package");
    let rt = Runtime::get(None).expect("runtime");
    let vad = SileroVad::load(
        &pkg,
        &rt,
        &SessionOptions {
            provider: ExecutionProvider::Cuda,
            ..Default::default()
        },
    )
    .expect("loads on CPU");
    let info = vad.session_info();
    assert_eq!(info.requested, ExecutionProvider::Cuda);
    // Either CUDA was there and is used, or the model runs on CPU and says why; nothing else
    // may come of a CUDA request.
    match info.active {
        ExecutionProvider::Cuda => {}
        ExecutionProvider::Cpu => {
            let why = info.fallback_reason.clone().unwrap_or_default();
            assert!(why.contains("cuda"), "{why}");
        }
        other => panic!("a CUDA request ended on {other:?}"),
    }
}

fn load_with(shared: bool) -> SileroVad {
    let pkg = ModelPackage::find("silero-vad").expect("package");
    let rt = Runtime::get(None).expect("runtime");
    SileroVad::load(
        &pkg,
        &rt,
        &SessionOptions {
            provider: ExecutionProvider::Cpu,
            shared,
            ..Default::default()
        },
    )
    .expect("VAD loads")
}

/// Streams that share one model and run their windows in one batch get exactly what each
/// would get alone: the recurrent state of every stream stays its own.
#[test]
fn batched_streams_get_the_probabilities_they_get_alone() {
    use soundflow::base::batch::BatchPolicy;
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    let dir = common::tmpdir("vad-batch");
    let sentences = [
        "Please send the report before noon.",
        "Is anyone else hearing an echo on this line?",
        "The budget review moves to Thursday.",
        "Thank you, that is all from me today.",
    ];
    let streams: Vec<Vec<f32>> = sentences
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut a = vec![0.0f32; 2000 * (i + 1)];
            a.extend(common::speak(&dir, s, "en-us", 150 + 10 * i as u32));
            a.extend(std::iter::repeat_n(0.0, 8000));
            a
        })
        .collect();
    // The streams run in lock step below, so they must have as many chunks each.
    let longest = streams.iter().map(Vec::len).max().unwrap_or(0);
    let streams: Vec<Vec<f32>> = streams
        .into_iter()
        .map(|mut a| {
            a.resize(longest, 0.0);
            a
        })
        .collect();
    // Alone: a private session each, one chunk of 6400 samples at a time.
    let chunk = 6400;
    let alone: Vec<Vec<f32>> = streams
        .iter()
        .map(|a| {
            let mut vad = load_with(false);
            a.chunks(chunk)
                .enumerate()
                .flat_map(|(k, c)| vad.process((k * chunk) as u64, c).expect("inference"))
                .map(|w| w.prob)
                .collect()
        })
        .collect();
    // Together: one shared model, the streams in lock step so their chunks batch.
    let vads: Vec<SileroVad> = streams.iter().map(|_| load_with(true)).collect();
    let before = vads[0].batch_counts();
    let barrier = Arc::new(Barrier::new(streams.len()));
    let handles: Vec<_> = vads
        .into_iter()
        .zip(streams.clone())
        .map(|(mut vad, a)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                vad.set_batch_policy(BatchPolicy {
                    wait: Duration::from_millis(200),
                    max_jobs: 16,
                });
                let mut probs = Vec::new();
                for (k, c) in a.chunks(chunk).enumerate() {
                    barrier.wait();
                    probs.extend(
                        vad.process((k * chunk) as u64, c)
                            .expect("inference")
                            .into_iter()
                            .map(|w| w.prob),
                    );
                }
                // Keep the streams registered until all are done, so none waits for a
                // stream that has left.
                barrier.wait();
                (probs, vad.batch_counts())
            })
        })
        .collect();
    let mut counts = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        let (probs, c) = h.join().expect("stream thread");
        counts.push(c);
        assert_eq!(probs.len(), alone[i].len());
        let worst = probs
            .iter()
            .zip(&alone[i])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "stream {i}: batched differs by {worst}");
    }
    let after = counts.iter().map(|c| c.jobs).max().unwrap_or(0);
    let batches = counts.iter().map(|c| c.batches).max().unwrap_or(0) - before.batches;
    let jobs = after - before.jobs;
    // Chunks were released together, so calls held several streams' windows.
    assert!(
        jobs as f64 / batches.max(1) as f64 > 1.5,
        "{jobs} jobs in {batches} batches"
    );
}

/// Two runs of one shared model at once: the second takes a session of its own from the pool
/// instead of waiting for the first (which held the one session's lock through its run).
#[test]
fn a_shared_session_runs_two_calls_at_once() {
    let pkg = ModelPackage::find("silero-vad").expect("silero-vad package (run scripts/setup.sh)");
    let rt = Runtime::get(None).expect("ONNX Runtime (run scripts/setup.sh)");
    let path = pkg.file("model").expect("model file");
    let opts = SessionOptions {
        provider: ExecutionProvider::Cpu,
        intra_threads: 1,
        // A pool of this test's own: another test's runs cannot take its sessions.
        shared: false,
        ..Default::default()
    };
    let shared = rt.shared_session(&path, &opts).expect("session");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(shared.max_sessions(), cores, "one session per core");
    if cores < 2 {
        eprintln!("one core: nothing can run beside a run");
        return;
    }
    let first = shared.lock();
    let (tx, rx) = std::sync::mpsc::channel();
    let other = shared.clone();
    let t = std::thread::spawn(move || {
        let second = other.lock();
        tx.send(second.inputs().len()).expect("send");
        // Hold it until the main thread has looked at the pool.
        std::thread::sleep(std::time::Duration::from_millis(200));
    });
    // The old lock never let go while `first` lived: this wait would run out.
    let inputs = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("a second run does not wait for the first");
    assert_eq!(inputs, first.inputs().len());
    assert_eq!(shared.sessions(), 2);
    drop(first);
    t.join().expect("thread");
    // Given back, not dropped: the next runs reuse them.
    let (_a, _b) = (shared.lock(), shared.lock());
    assert_eq!(shared.sessions(), 2);
}

//! The models on a real Triton server over KServe v2 gRPC (the nvidia-pytriton wheel's
//! tritonserver, started by scripts/triton-server.sh) against the same models on local
//! ONNX Runtime, on real recordings: equal results, clear errors, and a server killed and
//! restarted under a running stream.

mod common;

use std::time::{Duration, Instant};

use soundflow::Error;
use soundflow::models::package::ModelPackage;
use soundflow::models::remote::{Fallback, RemoteSpec};
use soundflow::models::runtime::{ExecutionProvider, Runtime, SessionOptions};
use soundflow::perceive::tagger::AudioTagger;
use soundflow::perceive::vad::SileroVad;

fn opts(remote: Option<RemoteSpec>) -> SessionOptions {
    SessionOptions {
        provider: ExecutionProvider::Cpu,
        // Local and remote models must not be one shared object.
        shared: false,
        remote,
        ..Default::default()
    }
}

fn vad(remote: Option<RemoteSpec>) -> soundflow::Result<SileroVad> {
    let pkg = ModelPackage::find("silero-vad").expect("silero-vad package (run scripts/setup.sh)");
    let rt = Runtime::get(None).expect("ONNX Runtime (run scripts/setup.sh)");
    SileroVad::load(&pkg, &rt, &opts(remote))
}

fn tagger(remote: Option<RemoteSpec>) -> soundflow::Result<AudioTagger> {
    let pkg = ModelPackage::find("ced-tiny").expect("ced-tiny package (run scripts/setup.sh)");
    let rt = Runtime::get(None).expect("ONNX Runtime (run scripts/setup.sh)");
    AudioTagger::load(&pkg, &rt, &opts(remote))
}

fn spec(address: &str, fallback: Fallback) -> RemoteSpec {
    RemoteSpec {
        fallback,
        timeout: Duration::from_millis(1500),
        ..RemoteSpec::new(address)
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Real speech (the Asterisk prompts) with a real siren in the middle.
fn real_audio() -> Vec<f32> {
    let dir = common::tmpdir("remote-audio");
    let (speech, _) = common::asterisk_prompts();
    let mut audio = speech[..(speech.len()).min(16000 * 40)].to_vec();
    audio.extend(common::real_clip(&dir, "siren-scorched-policecar"));
    audio.extend_from_slice(&speech[speech.len().min(16000 * 40)..speech.len().min(16000 * 60)]);
    audio
}

#[test]
fn server_results_equal_local_inference() {
    let triton = common::Triton::start(18210, &["silero-vad", "ced-tiny"]);
    let audio = real_audio();
    // Chunks of 400 ms, as lalm-perceive hands them over: the VAD state crosses every call.
    let run_vad = |mut v: SileroVad| {
        let mut probs = Vec::new();
        for (i, c) in audio.chunks(6400).enumerate() {
            probs.extend(v.process((i * 6400) as u64, c).expect("VAD inference"));
        }
        (probs, v.remote_status())
    };
    let (local, _) = run_vad(vad(None).unwrap());
    let (remote, status) = run_vad(vad(Some(spec(&triton.grpc(), Fallback::Error))).unwrap());
    let status = status.expect("a remote model");
    assert!(status.up && status.local_runs == 0, "{status:?}");
    assert!(
        status.requests >= (audio.len() / 6400) as u64 - 1,
        "{status:?}"
    );
    let p =
        |w: &[soundflow::perceive::vad::WindowProb]| w.iter().map(|w| w.prob).collect::<Vec<_>>();
    assert_eq!(local.len(), remote.len());
    let d = max_diff(&p(&local), &p(&remote));
    println!("VAD: {} windows, largest difference {d:e}", local.len());
    assert!(d <= 1e-4, "VAD probabilities differ by {d}");
    assert!(p(&local).iter().any(|&x| x > 0.9), "no speech found");

    let run_tags = |mut t: AudioTagger| {
        let mut frames = Vec::new();
        for (i, c) in audio.chunks(6400).enumerate() {
            frames.extend(t.process((i * 6400) as u64, c).expect("tagger inference"));
        }
        frames
    };
    let local = run_tags(tagger(None).unwrap());
    let remote = run_tags(tagger(Some(spec(&triton.grpc(), Fallback::Error))).unwrap());
    assert_eq!(local.len(), remote.len());
    assert!(!local.is_empty());
    let mut d = 0.0f32;
    for (a, b) in local.iter().zip(&remote) {
        assert_eq!((a.start, a.end), (b.start, b.end));
        d = d.max(max_diff(&a.scores, &b.scores));
    }
    println!("tagger: {} windows, largest difference {d:e}", local.len());
    assert!(d <= 1e-4, "tagger scores differ by {d}");
}

#[test]
fn the_served_decode_loop_gives_the_local_transcripts() {
    use soundflow::base::cancel::CancelFlag;
    use soundflow::respond::asr::moonshine::MoonshineModel;
    let triton = common::Triton::start(18240, &["moonshine-base"]);
    let pkg = ModelPackage::find("moonshine-base").expect("moonshine-base (run scripts/setup.sh)");
    let rt = Runtime::get(None).expect("ONNX Runtime");
    let local = MoonshineModel::load(&pkg, &rt, &opts(None)).unwrap();
    let remote = MoonshineModel::load(
        &pkg,
        &rt,
        &opts(Some(spec(&triton.grpc(), Fallback::Error))),
    )
    .unwrap();
    let (speech, prompts) = common::asterisk_prompts();
    let cancel = CancelFlag::default();
    let mut seconds = 0.0;
    for (a, b, truth) in prompts.iter().take(6) {
        let audio = &speech[*a..*b];
        seconds += audio.len() as f64 / 16000.0;
        let want = local.transcribe(audio, &cancel).unwrap();
        let got = remote.transcribe(audio, &cancel).unwrap();
        println!("{got:?} (truth {truth:?})");
        assert_eq!(got, want);
        assert!(!got.is_empty());
    }
    let st = remote.remote_status().unwrap();
    assert!(st.up && st.requests == 6 && st.local_runs == 0, "{st:?}");
    // One request per utterance: the audio out, the token ids back; the caches stay there.
    println!(
        "{seconds:.1} s of speech: {} bytes out, {} bytes in",
        st.bytes_out, st.bytes_in
    );
    assert!(
        (st.bytes_out as f64) < seconds * 16000.0 * 4.0 * 1.05,
        "{st:?}"
    );
    assert!(st.bytes_in < 6 * 1000, "{st:?}");
}

#[test]
fn bad_addresses_unknown_models_and_mismatches_are_clear_errors() {
    let triton = common::Triton::start(18220, &["silero-vad", "ced-tiny"]);
    let err = vad(Some(spec("127.0.0.1", Fallback::Error))).unwrap_err();
    assert!(matches!(err, Error::RemoteAddress { .. }), "{err}");
    assert!(err.to_string().contains("no port"), "{err}");

    // Nothing listens there: with fallback=error the model does not start ...
    let err = vad(Some(spec("127.0.0.1:18299", Fallback::Error))).unwrap_err();
    assert!(matches!(err, Error::RemoteUnavailable { .. }), "{err}");
    println!("unreachable: {err}");
    // ... with fallback=local it starts, runs locally and says the server is down.
    let mut v = vad(Some(spec("127.0.0.1:18299", Fallback::Local))).unwrap();
    v.process(0, &vec![0.0; 16000]).expect("local inference");
    let st = v.remote_status().unwrap();
    assert!(!st.up && st.local_runs > 0, "{st:?}");

    let mut s = spec(&triton.grpc(), Fallback::Local);
    s.models = RemoteSpec::parse_models("vad=no-such-model").unwrap();
    let err = vad(Some(s)).unwrap_err();
    println!("unknown model: {err}");
    assert!(matches!(err, Error::RemoteModel { .. }), "{err}");
    assert!(err.to_string().contains("no-such-model"), "{err}");

    // The tagger's model served under the VAD's role: its inputs are not the VAD's.
    let mut s = spec(&triton.grpc(), Fallback::Local);
    s.models = RemoteSpec::parse_models("vad=ced-tiny").unwrap();
    let err = vad(Some(s)).unwrap_err();
    println!("mismatch: {err}");
    assert!(matches!(err, Error::RemoteModel { .. }), "{err}");
    assert!(err.to_string().contains("no input named"), "{err}");

    // The HTTP port speaks no gRPC.
    let err = vad(Some(spec(
        &format!("127.0.0.1:{}", triton.base),
        Fallback::Error,
    )))
    .unwrap_err();
    println!("HTTP port: {err}");
}

#[test]
fn a_killed_server_falls_back_and_a_restarted_one_is_used_again() {
    let mut triton = common::Triton::start(18230, &["silero-vad"]);
    let audio = real_audio();
    let mut local = vad(None).unwrap();
    let mut remote = vad(Some(spec(&triton.grpc(), Fallback::Local))).unwrap();
    let mut failing = vad(Some(spec(&triton.grpc(), Fallback::Error))).unwrap();
    let chunks: Vec<&[f32]> = audio.chunks(6400).collect();
    let n = chunks.len();
    let mut d = 0.0f32;
    let mut phases = Vec::new();
    let mut error_seen = None;
    for (i, c) in chunks.iter().enumerate() {
        let pos = (i * 6400) as u64;
        if i == n / 3 {
            triton.kill();
        }
        if i == 2 * n / 3 {
            triton.restart();
            // The next probe finds it within its period.
            std::thread::sleep(Duration::from_millis(700));
        }
        let t = Instant::now();
        let a = local.process(pos, c).unwrap();
        let b = remote
            .process(pos, c)
            .expect("fallback=local never fails a chunk");
        let took = t.elapsed();
        // A chunk waits at most the 1.5 s timeout for a dead server, then runs locally; the
        // bound is far above that so a loaded machine passes, and still catches a chunk
        // that hangs on the dead server.
        assert!(took < Duration::from_secs(30), "chunk {i} took {took:?}");
        assert_eq!(a.len(), b.len(), "chunk {i}: windows lost");
        for (x, y) in a.iter().zip(&b) {
            d = d.max((x.prob - y.prob).abs());
        }
        phases.push(remote.remote_status().unwrap());
        if error_seen.is_none()
            && let Err(e) = failing.process(pos, c)
        {
            error_seen = Some((i, e));
        }
    }
    println!("largest difference over the whole stream: {d:e}");
    assert!(d <= 1e-4, "probabilities jumped by {d} across the switches");
    let before = &phases[n / 3 - 1];
    let during = &phases[n / 3 + 1];
    let after = phases.last().unwrap();
    assert!(before.up && before.local_runs == 0, "{before:?}");
    assert!(!during.up && during.local_runs > 0, "{during:?}");
    println!("while down: {:?}", during.last_error);
    assert!(after.up, "not reconnected: {after:?}");
    assert!(
        after.requests > during.requests + (n / 3) as u64 - 5,
        "the restarted server got too few requests: {after:?}"
    );
    assert!(after.generation >= 2, "{after:?}");
    let (at, e) = error_seen.expect("fallback=error fails when the server dies");
    assert_eq!(at, n / 3, "fallback=error failed at chunk {at}");
    // The error crossed the cross-stream batcher, which hands errors on as text.
    assert!(e.to_string().contains("unreachable"), "{e}");
}

//! Execution providers: CUDA and TensorRT requested on a machine without them fall back to CPU,
//! logged, and the loop still runs, with the same output as on CPU (docs/GPU.md).
//!
//! The in-process tests use the ONNX Runtime library the process finds (scripts/setup.sh
//! installs the CPU build). When the GPU build from scripts/setup-gpu.sh is installed, a child
//! process (one process loads one ONNX Runtime library) shows the CUDA and TensorRT providers'
//! own load errors in the warning; that test is ignored (reported as not run) unless asked for
//! with `--ignored`, as scripts/setup.sh does not install that build. `gpu_probe` (ignored) is
//! the runner scripts/gpu-check.sh uses on a GPU machine.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use gst::prelude::*;

const TINY: &str = "whisper-tiny-random";
/// Transcript settings for runs whose output is compared: finals only, and no partial decodes.
/// A final keeps the words its partials already committed, and which partials run depends on
/// how fast the machine decodes (the cadence adapts, a final drops queued partials); on a
/// random-weight model two partials rarely agree the same way twice, so only finals from the
/// whole utterance compare equal across runs. No utterance here is near 60 s.
const COMPARED: &str = "finals-only=true partial-interval-ms=60000";
/// How far a VAD probability may move between two runs on the same CPU kernels.
const PROB_TOLERANCE: f32 = 1e-6;

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().expect("gst init");
        gstlalm::plugin_register_static().expect("register plugin");
    });
}

/// Half a second of silence, a sentence, a pause, another sentence, a second of silence.
fn speech_wav() -> &'static Path {
    static WAV: OnceLock<PathBuf> = OnceLock::new();
    WAV.get_or_init(|| {
        let dir = common::tmpdir("providers");
        let mut audio = vec![0.0; 8000];
        audio.extend(common::speak(
            &dir,
            "The train to Edinburgh leaves from platform nine.",
            "en-us",
            160,
        ));
        audio.extend(vec![0.0; 16000]);
        audio.extend(common::speak(
            &dir,
            "Please set a timer for twelve minutes.",
            "en-gb",
            160,
        ));
        audio.extend(vec![0.0; 16000]);
        let wav = dir.join("speech.wav");
        common::write_wav(&wav, &audio);
        wav
    })
}

/// The GPU build of ONNX Runtime where scripts/setup-gpu.sh installs it.
fn gpu_library() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".local/share")
        });
    data.join("lalm/onnxruntime-gpu/libonnxruntime.so.1.31.1")
}

/// Whether this process runs the CPU-only ONNX Runtime build (the one scripts/setup.sh
/// installs), whose fallback reasons are known in advance.
fn cpu_only_library() -> bool {
    let rt = soundflow::models::runtime::Runtime::get(None).expect("ONNX Runtime loads");
    !rt.library_path()
        .to_string_lossy()
        .contains("onnxruntime-gpu")
}

#[derive(Debug, Clone)]
struct Warning {
    /// Name of the element that posted it.
    from: String,
    text: String,
    debug: String,
}

/// What one run of a pipeline gave.
#[derive(Debug, Default)]
struct Run {
    /// `active-execution-provider` of every element that has it, by element name.
    active: Vec<(String, Option<String>)>,
    warnings: Vec<Warning>,
    /// VAD windows: (stream sample, speech probability).
    probs: Vec<(u64, f32)>,
    /// Tagger windows: (stream sample, label scores).
    tags: Vec<(u64, Vec<f32>)>,
    /// `lalm-decision` messages: "kind start end".
    decisions: Vec<String>,
    /// Final `lalm-transcript` messages: "start end text".
    transcripts: Vec<String>,
    /// Text buffers that reached the sink: "pts duration final text".
    cues: Vec<String>,
    /// `lalm-perceive`'s `stats`, read at EOS.
    stats: Option<gst::Structure>,
    /// NULL → READY: the models' sessions are built here.
    load: Duration,
    /// READY → EOS.
    wall: Duration,
}

impl Run {
    fn active_of(&self, element: &str) -> Option<&str> {
        self.active
            .iter()
            .find(|(n, _)| n == element)
            .and_then(|(_, a)| a.as_deref())
    }

    fn warnings_from(&self, element: &str) -> Vec<&Warning> {
        self.warnings.iter().filter(|w| w.from == element).collect()
    }

    /// The output as text, one line per item, for a file or a comparison.
    fn output_lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .probs
            .iter()
            .map(|(s, p)| format!("prob {s} {p:.6}"))
            .collect();
        out.extend(self.tags.iter().map(|(s, v)| {
            let max = v.iter().copied().fold(0.0f32, f32::max);
            format!("tag {s} max {max:.4}")
        }));
        out.extend(self.decisions.iter().map(|d| format!("decision {d}")));
        out.extend(self.transcripts.iter().map(|t| format!("transcript {t}")));
        out.extend(self.cues.iter().map(|c| format!("cue {c}")));
        out
    }

    fn stat(&self, field: &str) -> String {
        self.stats
            .as_ref()
            .and_then(|s| s.get::<u64>(field).ok())
            .map_or_else(|| "-".into(), |v| v.to_string())
    }
}

fn field_u64(s: &gst::StructureRef, name: &str) -> u64 {
    s.get::<u64>(name)
        .or_else(|_| s.get::<i64>(name).map(|v| v as u64))
        .or_else(|_| s.get::<gst::ClockTime>(name).map(gst::ClockTime::nseconds))
        .unwrap_or(u64::MAX)
}

/// Runs `description` (a pipeline from a file to EOS) and records what came out. Elements that
/// matter are named: `perceive` (its src pad is watched), `sink` (a fakesink for the text).
/// Returns the error text instead when the pipeline fails.
fn try_run(description: &str) -> Result<Run, String> {
    init();
    let pipeline = gst::parse::launch(description)
        .map_err(|e| format!("cannot parse `{description}`: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    let probs = Arc::new(Mutex::new(Vec::new()));
    let tags = Arc::new(Mutex::new(Vec::new()));
    let cues = Arc::new(Mutex::new(Vec::new()));
    if let Some(perceive) = pipeline.by_name("perceive") {
        let (probs, tags) = (probs.clone(), tags.clone());
        perceive
            .static_pad("src")
            .expect("src pad")
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(gst::PadProbeData::Buffer(b)) = &info.data
                    && let Some(s) = gstlalm::meta::get_structure(b, gstlalm::meta::PERCEPTION_META)
                    && let Some(p) = gstlalm::meta::perception_from(&s)
                {
                    probs
                        .lock()
                        .expect("probs")
                        .extend(p.windows.iter().map(|w| (w.start, w.prob)));
                    tags.lock()
                        .expect("tags")
                        .extend(p.tags.iter().map(|t| (t.start, t.scores.clone())));
                }
                gst::PadProbeReturn::Ok
            })
            .expect("probe");
    }
    if let Some(sink) = pipeline.by_name("sink") {
        let cues = cues.clone();
        sink.static_pad("sink")
            .expect("sink pad")
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(gst::PadProbeData::Buffer(b)) = &info.data {
                    let fin = gstlalm::meta::get_structure(b, gstlalm::meta::CUE_META)
                        .and_then(|m| m.get::<bool>("final").ok())
                        .unwrap_or(false);
                    let text = b
                        .map_readable()
                        .map(|m| String::from_utf8_lossy(&m).into_owned())
                        .unwrap_or_default();
                    cues.lock().expect("cues").push(format!(
                        "{} {} {fin} {}",
                        b.pts().map_or(u64::MAX, gst::ClockTime::nseconds),
                        b.duration().map_or(u64::MAX, gst::ClockTime::nseconds),
                        text.trim()
                    ));
                }
                gst::PadProbeReturn::Ok
            })
            .expect("probe");
    }

    let bus = pipeline.bus().expect("bus");
    let mut run = Run::default();
    let result = (|| -> Result<(), String> {
        let started = Instant::now();
        pipeline.set_state(gst::State::Ready).map_err(|_| {
            format!(
                "READY failed{}",
                pump(&bus, &mut run, None).err().unwrap_or_default()
            )
        })?;
        run.load = started.elapsed();
        pipeline.set_state(gst::State::Playing).map_err(|_| {
            format!(
                "PLAYING failed{}",
                pump(&bus, &mut run, None).err().unwrap_or_default()
            )
        })?;
        pump(&bus, &mut run, Some(gst::MessageType::Eos))?;
        run.wall = started.elapsed();
        Ok(())
    })();
    run.active = pipeline
        .iterate_recurse()
        .into_iter()
        .flatten()
        .filter(|e| e.find_property("active-execution-provider").is_some())
        .map(|e| {
            (
                e.name().to_string(),
                e.property::<Option<String>>("active-execution-provider"),
            )
        })
        .collect();
    run.stats = pipeline
        .by_name("perceive")
        .map(|p| p.property::<gst::Structure>("stats"));
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    run.probs = std::mem::take(&mut *probs.lock().expect("probs"));
    run.tags = std::mem::take(&mut *tags.lock().expect("tags"));
    run.cues = std::mem::take(&mut *cues.lock().expect("cues"));
    Ok(run)
}

fn run_pipeline(description: &str) -> Run {
    try_run(description).unwrap_or_else(|e| panic!("{description}: {e}"))
}

/// Collects the bus messages into `run` until one of type `until` (or, with `None`, until the
/// bus is empty); an error message ends it with the error's text.
fn pump(bus: &gst::Bus, run: &mut Run, until: Option<gst::MessageType>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let msg = match until {
            Some(_) => {
                let left = deadline.saturating_duration_since(Instant::now());
                bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64))
                    .ok_or("no EOS within 300 s")?
            }
            None => match bus.pop() {
                Some(m) => m,
                None => return Ok(()),
            },
        };
        let from = msg.src().map_or_else(String::new, |s| s.name().to_string());
        match msg.view() {
            gst::MessageView::Error(e) => {
                return Err(format!(
                    ": {} ({})",
                    e.error(),
                    e.debug().map_or_else(String::new, |d| d.to_string())
                ));
            }
            gst::MessageView::Warning(w) => run.warnings.push(Warning {
                from,
                text: w.error().to_string(),
                debug: w.debug().map_or_else(String::new, |d| d.to_string()),
            }),
            gst::MessageView::Element(el) => {
                if let Some(s) = el.structure() {
                    let kind = s.get::<String>("kind").unwrap_or_default();
                    let (start, end) = (field_u64(s, "start"), field_u64(s, "end"));
                    match s.name().as_str() {
                        "lalm-decision" => run.decisions.push(format!("{kind} {start} {end}")),
                        "lalm-transcript" if s.get::<bool>("final").unwrap_or(false) => {
                            let text = s.get::<String>("text").unwrap_or_default();
                            run.transcripts
                                .push(format!("{start} {end} {}", text.trim()));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        if until.is_some_and(|t| msg.type_() == t) {
            return Ok(());
        }
    }
}

/// The loop element by element: `perceive` and `respond` get their own properties.
fn loop_description(wav: &Path, perceive: &str, respond: &str) -> String {
    format!(
        "filesrc location=\"{}\" ! wavparse ! audioconvert ! audioresample \
         ! audio/x-raw,format=F32LE,rate=16000,channels=1 ! lalm-chunker \
         ! lalm-perceive name=perceive overload=block {perceive} ! lalm-decide \
         ! lalm-respond name=respond {respond} ! fakesink name=sink sync=false",
        wav.display()
    )
}

/// `lalm-interact` with the bin's own properties.
fn interact_description(wav: &Path, props: &str) -> String {
    format!(
        "filesrc location=\"{}\" ! wavparse ! lalm-interact name=interact {props} \
         ! fakesink name=sink sync=false",
        wav.display()
    )
}

/// A fresh folder for a TensorRT engine cache; never written on a machine without TensorRT.
fn trt_cache(name: &str) -> PathBuf {
    common::tmpdir(&format!("trt-cache-{name}"))
}

/// The two runs gave the same output: the same VAD windows and probabilities, tagger scores,
/// decisions, transcripts and cues.
fn assert_same_output(what: &str, cpu: &Run, other: &Run) {
    assert!(
        !cpu.probs.is_empty(),
        "{what}: the CPU run perceived nothing"
    );
    assert_eq!(
        cpu.probs.len(),
        other.probs.len(),
        "{what}: as many VAD windows as on CPU"
    );
    for ((sa, pa), (sb, pb)) in cpu.probs.iter().zip(&other.probs) {
        assert_eq!(sa, sb, "{what}: the same windows");
        assert!(
            (pa - pb).abs() <= PROB_TOLERANCE,
            "{what}: window {sa}: {pb} against {pa} on CPU"
        );
    }
    assert_eq!(cpu.tags.len(), other.tags.len(), "{what}: tagger windows");
    for ((sa, va), (sb, vb)) in cpu.tags.iter().zip(&other.tags) {
        assert_eq!(sa, sb, "{what}: the same tagger windows");
        for (a, b) in va.iter().zip(vb) {
            assert!(
                (a - b).abs() <= 1e-5,
                "{what}: tagger window {sa}: {b} against {a}"
            );
        }
    }
    assert_eq!(cpu.decisions, other.decisions, "{what}: decisions");
    assert_eq!(cpu.transcripts, other.transcripts, "{what}: transcripts");
    assert_eq!(cpu.cues, other.cues, "{what}: cues");
}

/// The fallback warning `element` posted: it names the provider asked for and CPU, and its
/// debug text gives every reason, in the order the providers were tried.
fn assert_fallback_warning(run: &Run, element: &str, requested: &str, tried: &[&str]) {
    let warnings = run.warnings_from(element);
    let w = warnings
        .iter()
        .find(|w| w.text.contains("Execution provider"))
        .unwrap_or_else(|| panic!("{element} posted no fallback warning: {:#?}", run.warnings));
    assert!(
        w.text.contains(&format!(
            "Execution provider {requested} is not available, running on cpu"
        )),
        "{}",
        w.text
    );
    let mut at = 0;
    for p in tried {
        let needle = format!("{p} unavailable: ");
        let i = w.debug[at..]
            .find(&needle)
            .unwrap_or_else(|| panic!("no '{needle}' (in order) in the reason: {}", w.debug));
        at += i + needle.len();
    }
    if cpu_only_library() {
        for p in tried {
            let what = if *p == "tensorrt" { "TensorRT" } else { "CUDA" };
            assert!(
                w.debug.contains(&format!(
                    "this ONNX Runtime library was built without {what}"
                )),
                "{}",
                w.debug
            );
        }
    }
}

fn cpu_baseline_perceive() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let run = run_pipeline(&loop_description(
            speech_wav(),
            "execution-provider=cpu",
            "mode=turn-end",
        ));
        assert_eq!(run.active_of("perceive"), Some("cpu"));
        assert!(run.warnings.is_empty(), "{:#?}", run.warnings);
        assert!(
            run.decisions
                .iter()
                .filter(|d| d.starts_with("turn-end"))
                .count()
                >= 2,
            "both sentences are found: {:?}",
            run.decisions
        );
        run
    })
}

/// The documented fall back (docs/GPU.md, "How a fall back is reported"), in this process,
/// which runs the CPU build of ONNX Runtime, so no GPU provider can be had whatever the
/// hardware: the provider asked for stays set, `active-execution-provider` reads `cpu`, the
/// warning names the provider and gives the reason for each one tried, and the loop runs on
/// the CPU kernels, so its output is the CPU run's. The comparison with a GPU is
/// [`gpu_against_cpu`]'s, in a child process with the GPU build.
#[test]
fn perceive_cuda_without_a_gpu_falls_back_to_cpu_with_the_reason() {
    assert!(cpu_only_library(), "this process must run the CPU build");
    let cpu = cpu_baseline_perceive();
    let cuda = run_pipeline(&loop_description(
        speech_wav(),
        "execution-provider=cuda",
        "mode=turn-end",
    ));
    assert_eq!(cuda.active_of("perceive"), Some("cpu"));
    assert_fallback_warning(&cuda, "perceive", "cuda", &["cuda"]);
    assert_eq!(cuda.warnings.len(), 1, "one warning: {:#?}", cuda.warnings);
    assert_same_output("perceive cuda", cpu, &cuda);
    gpu_against_cpu("cuda");
}

#[test]
fn perceive_tensorrt_without_a_gpu_falls_back_to_cpu_with_both_reasons() {
    assert!(cpu_only_library(), "this process must run the CPU build");
    let cpu = cpu_baseline_perceive();
    let cache = trt_cache("perceive");
    let trt = run_pipeline(&loop_description(
        speech_wav(),
        &format!(
            "execution-provider=tensorrt device-id=0 trt-fp16=true trt-cache-dir=\"{}\"",
            cache.display()
        ),
        "mode=turn-end",
    ));
    assert_eq!(trt.active_of("perceive"), Some("cpu"));
    // TensorRT, then CUDA, then CPU.
    assert_fallback_warning(&trt, "perceive", "tensorrt", &["tensorrt", "cuda"]);
    assert_eq!(trt.warnings.len(), 1, "one warning: {:#?}", trt.warnings);
    // Nothing was built for TensorRT: no engine in the cache.
    assert_eq!(
        std::fs::read_dir(&cache).map_or(0, |d| d.count()),
        0,
        "an engine cache was written without TensorRT"
    );
    assert_same_output("perceive tensorrt", cpu, &trt);
    gpu_against_cpu("tensorrt");
}

/// Whether the GPU comparison can run here: an NVIDIA device and the GPU build of ONNX
/// Runtime (scripts/setup-gpu.sh). Says why not when it cannot.
fn gpu_present() -> bool {
    let device = Path::new("/dev/nvidia0").exists();
    let library = gpu_library().is_file();
    if !device || !library {
        eprintln!(
            "SKIPPED the GPU comparison: {}",
            if device {
                format!(
                    "an NVIDIA device but no GPU build of ONNX Runtime at {} (bash \
                     scripts/setup-gpu.sh --with-cuda-wheels installs it)",
                    gpu_library().display()
                )
            } else {
                "no GPU on this machine (/dev/nvidia0)".to_string()
            }
        );
    }
    device && library
}

/// With a GPU: lalm-interact asked for `provider` with the GPU build runs on the GPU (no fall
/// back warning) and decides and transcribes as on CPU, within what GPU kernels move a
/// probability (a decision within two VAD windows, 64 ms).
fn gpu_against_cpu(provider: &str) {
    if !gpu_present() {
        return;
    }
    let lib = gpu_library();
    let base = format!("asr-model={TINY} {COMPARED}");
    let (ok, cpu) = child_run(&format!("{base} execution-provider=cpu"), Some(&lib));
    assert!(ok, "{cpu}");
    let (ok, gpu) = child_run(&format!("{base} execution-provider={provider}"), Some(&lib));
    assert!(ok, "{gpu}");
    assert!(
        !gpu.contains("is not available, running on"),
        "{provider} with a GPU and the GPU build fell back:\n{gpu}"
    );
    let (a, b) = (
        common::messages(&cpu, "lalm-decision"),
        common::messages(&gpu, "lalm-decision"),
    );
    assert!(a.len() >= 4, "{cpu}");
    assert_eq!(
        a.len(),
        b.len(),
        "{provider}: decisions {b:?} against {a:?} on CPU"
    );
    for (x, y) in a.iter().zip(&b) {
        assert!(
            x.0 == y.0 && x.1.abs_diff(y.1) <= 64_000_000 && x.2.abs_diff(y.2) <= 64_000_000,
            "{provider}: decision {y:?} against {x:?} on CPU"
        );
    }
    eprintln!("{provider} on the GPU: {} decisions as on CPU", b.len());
}

#[test]
fn perceive_keeps_the_gpu_settings() {
    init();
    let e = gst::ElementFactory::make("lalm-perceive")
        .property_from_str("execution-provider", "tensorrt")
        .property("device-id", 3i32)
        .property("trt-fp16", true)
        .property("trt-cache-dir", "/var/cache/lalm-trt")
        .build()
        .expect("lalm-perceive");
    assert_eq!(e.property::<i32>("device-id"), 3);
    assert!(e.property::<bool>("trt-fp16"));
    assert_eq!(
        e.property::<Option<String>>("trt-cache-dir").as_deref(),
        Some("/var/cache/lalm-trt")
    );
    let fresh = gst::ElementFactory::make("lalm-perceive")
        .build()
        .expect("lalm-perceive");
    assert_eq!(fresh.property::<i32>("device-id"), 0, "device 0 by default");
    assert!(!fresh.property::<bool>("trt-fp16"), "fp32 by default");
    assert_eq!(
        fresh.property::<Option<String>>("trt-cache-dir"),
        None,
        "no engine cache by default"
    );
    assert_eq!(
        fresh.property::<Option<String>>("active-execution-provider"),
        None,
        "not known before READY"
    );
}

#[test]
fn auto_on_the_cpu_library_runs_on_cpu_without_a_warning() {
    init();
    // scripts/setup.sh always installs the CPU build, and the other in-process tests here
    // expect it too: a process that loaded another library fails instead of passing unrun.
    assert!(
        cpu_only_library(),
        "this process loaded {}, not the CPU build of ONNX Runtime (scripts/setup.sh); unset \
         LALM_ORT_LIBRARY",
        soundflow::models::runtime::Runtime::get(None)
            .expect("ONNX Runtime loads")
            .library_path()
            .display()
    );
    let run = run_pipeline(&loop_description(speech_wav(), "", "mode=turn-end"));
    assert_eq!(run.active_of("perceive"), Some("cpu"));
    // A library built without CUDA is not even tried: nothing to warn about.
    assert!(run.warnings.is_empty(), "{:#?}", run.warnings);
    assert_same_output("perceive auto", cpu_baseline_perceive(), &run);
}

fn cpu_baseline_respond() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let run = run_pipeline(&loop_description(
            speech_wav(),
            "execution-provider=cpu",
            &format!("model={TINY} {COMPARED} execution-provider=cpu"),
        ));
        assert!(run.warnings.is_empty(), "{:#?}", run.warnings);
        assert_eq!(run.transcripts.len(), 2, "one final per sentence: {run:#?}");
        run
    })
}

/// One `lalm-respond` run on a GPU provider: its properties, the provider asked for, the
/// providers its fall back reason should name in order, and what it gave.
struct GpuRun {
    props: String,
    requested: &'static str,
    tried: &'static [&'static str],
    run: Run,
}

/// `lalm-respond` asked for `cuda`, and for `tensorrt` with the device, fp16 and a cache.
fn respond_gpu_runs() -> &'static [GpuRun] {
    static RUNS: OnceLock<Vec<GpuRun>> = OnceLock::new();
    RUNS.get_or_init(|| {
        let cache = trt_cache("respond");
        [
            (
                "execution-provider=cuda device-id=0".to_string(),
                "cuda",
                &["cuda"][..],
            ),
            (
                format!(
                    "execution-provider=tensorrt device-id=0 trt-fp16=true trt-cache-dir=\"{}\"",
                    cache.display()
                ),
                "tensorrt",
                &["tensorrt", "cuda"][..],
            ),
        ]
        .into_iter()
        .map(|(props, requested, tried)| {
            let run = run_pipeline(&loop_description(
                speech_wav(),
                "execution-provider=cpu",
                &format!("model={TINY} {COMPARED} {props}"),
            ));
            GpuRun {
                props,
                requested,
                tried,
                run,
            }
        })
        .collect()
    })
}

#[test]
fn respond_cuda_and_tensorrt_run_on_cpu_with_the_same_cues() {
    let cpu = cpu_baseline_respond();
    for r in respond_gpu_runs() {
        assert!(
            r.run.warnings_from("perceive").is_empty(),
            "perceive was asked for CPU"
        );
        assert_same_output(&format!("respond {}", r.props), cpu, &r.run);
    }
}

#[test]
fn respond_reports_its_fall_back_like_perceive() {
    for r in respond_gpu_runs() {
        assert_eq!(
            r.run.active_of("respond"),
            Some("cpu"),
            "{}: lalm-respond's active-execution-provider",
            r.props
        );
        assert_fallback_warning(&r.run, "respond", r.requested, r.tried);
    }
}

#[test]
fn interact_with_tensorrt_settings_runs_on_cpu_with_the_same_output() {
    let wav = speech_wav();
    let common_props = format!("asr-model={TINY} {COMPARED}");
    let cpu = run_pipeline(&interact_description(
        wav,
        &format!("{common_props} execution-provider=cpu"),
    ));
    assert!(cpu.warnings.is_empty(), "{:#?}", cpu.warnings);
    assert_eq!(cpu.transcripts.len(), 2, "{cpu:#?}");
    let cache = trt_cache("interact");
    // `device-id` is left at its default: interact_passes_the_gpu_settings_on_to_both_children
    // checks that the bin has it.
    let trt = run_pipeline(&interact_description(
        wav,
        &format!(
            "{common_props} execution-provider=tensorrt trt-fp16=true trt-cache-dir=\"{}\"",
            cache.display()
        ),
    ));
    assert_eq!(trt.active_of("interact"), Some("cpu"));
    assert_eq!(trt.active_of("perceive"), Some("cpu"));
    assert_fallback_warning(&trt, "perceive", "tensorrt", &["tensorrt", "cuda"]);
    assert_same_output("interact tensorrt", &cpu, &trt);
}

#[test]
fn interact_passes_the_gpu_settings_on_to_both_children() {
    init();
    let bin = gst::ElementFactory::make("lalm-interact")
        .build()
        .expect("lalm-interact");
    for name in ["device-id", "trt-fp16", "trt-cache-dir"] {
        assert!(
            bin.find_property(name).is_some(),
            "lalm-interact has no {name} property"
        );
    }
    bin.set_property("device-id", 1i32);
    bin.set_property("trt-fp16", true);
    bin.set_property("trt-cache-dir", "/tmp/engines");
    let bin = bin.downcast::<gst::Bin>().expect("bin");
    for child in ["perceive", "respond"] {
        let c = bin.by_name(child).expect("child");
        assert_eq!(c.property::<i32>("device-id"), 1, "{child}");
        assert!(c.property::<bool>("trt-fp16"), "{child}");
        assert_eq!(
            c.property::<Option<String>>("trt-cache-dir").as_deref(),
            Some("/tmp/engines"),
            "{child}"
        );
    }
    assert_eq!(bin.property::<i32>("device-id"), 1);
}

/// gst-launch-1.0 -m over the speech with `props` on lalm-interact, with `library` as
/// `LALM_ORT_LIBRARY` (`None`: the default search, which finds the CPU build).
fn child_run(props: &str, library: Option<&Path>) -> (bool, String) {
    let wav = speech_wav();
    let location = format!("location={}", wav.display());
    let mut args = vec![
        "-m",
        "filesrc",
        &location,
        "!",
        "wavparse",
        "!",
        "lalm-interact",
    ];
    args.extend(props.split_whitespace());
    args.extend(["!", "fakesink", "sync=false"]);
    let lib = library.map_or_else(String::new, |l| l.display().to_string());
    // Empty counts as unset, so a LALM_ORT_LIBRARY of the caller's does not leak in.
    let out = common::gst_launch(&args, &[("LALM_ORT_LIBRARY", &lib)]);
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Needs the GPU build of ONNX Runtime, which scripts/setup.sh does not install (it is
/// scripts/setup-gpu.sh's, a large download made for GPU machines): ignored, so the runner
/// reports it as not run; `cargo test --release -p gst-plugin-lalm --test providers --
/// --ignored gpu_library` runs it where that build is installed.
#[test]
#[ignore = "needs the GPU build of ONNX Runtime (bash scripts/setup-gpu.sh); run with --ignored"]
fn gpu_library_in_a_child_process_falls_back_with_the_providers_load_error() {
    let lib = gpu_library();
    assert!(
        lib.is_file(),
        "no GPU build of ONNX Runtime at {} (bash scripts/setup-gpu.sh installs it)",
        lib.display()
    );
    let base = format!("asr-model={TINY} {COMPARED}");
    let (ok, cpu) = child_run(&format!("{base} execution-provider=cpu"), Some(&lib));
    assert!(ok, "{cpu}");
    assert!(!cpu.contains("WARNING"), "{cpu}");
    let cpu_decisions = common::messages(&cpu, "lalm-decision");
    assert!(cpu_decisions.len() >= 4, "{cpu}");
    // The GPU build's CPU provider computes what the CPU build does.
    let (ok, cpu_build) = child_run(&format!("{base} execution-provider=cpu"), None);
    assert!(ok, "{cpu_build}");
    assert_eq!(
        common::messages(&cpu_build, "lalm-decision"),
        cpu_decisions,
        "the CPU build and the GPU build on CPU decide alike"
    );
    assert_eq!(transcripts_of(&cpu_build), transcripts_of(&cpu));

    for (requested, provider_lib) in [
        ("cuda", "libonnxruntime_providers_cuda.so"),
        ("tensorrt", "libonnxruntime_providers_tensorrt.so"),
    ] {
        let (ok, out) = child_run(
            &format!("{base} execution-provider={requested}"),
            Some(&lib),
        );
        assert!(ok, "{out}");
        assert!(
            out.contains(&format!(
                "Execution provider {requested} is not available, running on cpu"
            )),
            "{out}"
        );
        // The provider's own error: its library could not be loaded for want of a CUDA,
        // cuDNN or TensorRT library (or, with those present, of the driver's libcuda.so.1).
        assert!(
            out.contains(provider_lib) && out.contains("cannot open shared object file"),
            "{out}"
        );
        let missing = [
            "libcublas",
            "libcudart",
            "libcuda.so.1",
            "libcurand",
            "libcudnn",
            "libnvinfer",
        ];
        let named = missing.iter().find(|m| out.contains(*m));
        assert!(named.is_some(), "the missing library is named: {out}");
        println!(
            "{requested}: {}",
            out.lines()
                .find(|l| l.starts_with(&format!("{requested} unavailable: ")))
                .unwrap_or_default()
                .trim()
        );
        assert_eq!(
            common::messages(&out, "lalm-decision"),
            cpu_decisions,
            "{requested}: the same decisions as on CPU"
        );
        assert_eq!(
            transcripts_of(&out),
            transcripts_of(&cpu),
            "{requested}: the same transcripts as on CPU"
        );
    }
}

/// The final `lalm-transcript` texts in gst-launch -m output.
fn transcripts_of(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains("(element): lalm-transcript,") && l.contains("final=(boolean)true"))
        .filter_map(|l| {
            let i = l.find(" text=(string)")? + " text=(string)".len();
            Some(l[i..].split(", start=").next()?.to_string())
        })
        .collect()
}

/// Not a test: the runner scripts/gpu-check.sh starts once per configuration, each in its own
/// process, on a GPU machine. Settings come from the environment:
///
/// - `LALM_PROBE_WAV` (required): a 16-bit WAV file
/// - `LALM_PROBE_PROVIDER`: `cpu`, `cuda`, `tensorrt` or `auto` (default `cuda`), for both
///   lalm-perceive and lalm-respond
/// - `LALM_PROBE_PROPS`: more properties for both, e.g. `device-id=0 trt-fp16=true
///   trt-cache-dir=/tmp/engines`
/// - `LALM_PROBE_ASR_PROVIDER`: another provider for lalm-respond alone (default: the same)
/// - `LALM_PROBE_ASR`: the Whisper model package (default `whisper-base`)
/// - `LALM_PROBE_OUT`: a file to write the output to, one line per window, decision and cue
///
/// It prints the library loaded, the active providers, the warnings, the load and wall times
/// and `lalm-perceive`'s per-chunk statistics.
#[test]
#[ignore = "the GPU check's runner: scripts/gpu-check.sh"]
fn gpu_probe() {
    // Run by hand (or by --ignored) without its settings, it fails: nothing was probed.
    let wav = std::env::var_os("LALM_PROBE_WAV")
        .map(PathBuf::from)
        .expect("LALM_PROBE_WAV is not set: nothing to probe (scripts/gpu-check.sh sets it)");
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let provider = env("LALM_PROBE_PROVIDER", "cuda");
    let props = env("LALM_PROBE_PROPS", "");
    let asr_provider = env("LALM_PROBE_ASR_PROVIDER", &provider);
    let asr = env("LALM_PROBE_ASR", "whisper-base");
    init();
    let rt = soundflow::models::runtime::Runtime::get(None).expect("ONNX Runtime loads");
    println!("probe: library {}", rt.library_path().display());
    let description = loop_description(
        &wav,
        &format!("execution-provider={provider} {props}"),
        &format!("model={asr} {COMPARED} execution-provider={asr_provider} {props}"),
    );
    println!("probe: pipeline {description}");
    let run = match try_run(&description) {
        Ok(r) => r,
        Err(e) => panic!("probe: pipeline failed{e}"),
    };
    for (name, active) in &run.active {
        println!(
            "probe: {name} active-execution-provider={}",
            active.as_deref().unwrap_or("-")
        );
    }
    for w in &run.warnings {
        // The debug text: where it was posted, a newline, the reasons.
        let reasons = w
            .debug
            .split_once('\n')
            .map_or(w.debug.as_str(), |(_, r)| r);
        println!(
            "probe: warning from {}: {} | {}",
            w.from,
            w.text,
            reasons.trim().replace('\n', " ")
        );
    }
    let audio_s = run.probs.last().map_or(0.0, |(s, _)| *s as f64 / 16000.0);
    println!(
        "probe: load_ms={} wall_ms={} audio_s={audio_s:.1} rtf={:.4}",
        run.load.as_millis(),
        run.wall.as_millis(),
        run.wall.as_secs_f64() / audio_s.max(1e-9)
    );
    println!(
        "probe: perceive chunks={} mean_us={} p50_us={} p99_us={} max_us={} tagger_mean_us={}",
        run.stat("chunks"),
        run.stat("mean-us"),
        run.stat("p50-us"),
        run.stat("p99-us"),
        run.stat("max-us"),
        run.stat("tagger-mean-us")
    );
    println!(
        "probe: windows={} decisions={} finals={}",
        run.probs.len(),
        run.decisions.len(),
        run.transcripts.len()
    );
    for t in &run.transcripts {
        println!("probe: final {t}");
    }
    if let Ok(out) = std::env::var("LALM_PROBE_OUT") {
        let mut text = run.output_lines().join("\n");
        text.push('\n');
        std::fs::write(&out, text).expect("write LALM_PROBE_OUT");
        println!("probe: output written to {out}");
    }
}

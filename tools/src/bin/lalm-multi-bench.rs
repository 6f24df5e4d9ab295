//! lalm-multi-bench: many perceive → decide loops in one process, as a conferencing server
//! runs one per participant. For each stream count N it runs, in a fresh child process (so
//! memory figures start clean), N pipelines
//! `appsrc ! lalm-chunker ! lalm-perceive ! lalm-decide ! appsink` with the default VAD and
//! sound-event tagger, twice: with shared, batched sessions (the default) and with a private
//! session per element (`share-session=false`, the baseline).
//!
//! - Throughput: every stream is fed its audio as fast as it goes (20 ms buffers). Streams in
//!   real time per core = audio seconds processed / CPU seconds used; for the machine =
//!   audio seconds / wall seconds.
//! - Latency: every stream is fed at real time (a live source); per chunk, the time from the
//!   push of its last sample to its arrival at the sink, p50 and p99 over all streams;
//!   dropped chunks (lalm-perceive drops in live pipelines when its worker falls behind).
//!   N streams are sustained in real time when nothing is dropped and p99 stays under a chunk.
//! - Memory: resident memory with the N pipelines built and run, less the process before them,
//!   per stream; and what each stream beyond the first adds.
//!
//! - ASR memory: N `lalm-respond` elements with their default model loaded (READY), shared and
//!   private sessions: what each element beyond the first adds (`--asr-streams`).
//!
//! - Served (`--modes server --server HOST:PORT`): the same shared, batched pipelines with
//!   lalm-perceive's models on a KServe v2 (Triton) server, N streams split over `--procs M`
//!   processes run at once, as a pool of media nodes would share one server. Beside the
//!   client figures: the server's own CPU time (`--server-pid`), the mean batch its
//!   scheduler ran per model (from its metrics endpoint, `--metrics URL`: inferences per
//!   execution, over the whole run), and the network cost per stream (protobuf bytes both
//!   ways, from lalm-perceive's stats). `--procs` applies to every mode, so the local modes
//!   run the same processes with the same streams for the comparison.
//!
//! The audio is a meeting from `lalm-meeting` (or `--audio WAV`, a 16 kHz mono recording) (next to this program: speech in several
//! voices, alarms, bells, phones, noise); stream k starts at a different point of it.
//!
//! Usage: lalm-multi-bench [--streams 1,8,32,128] [--seconds S] [--paced-seconds P]
//!                         [--modes shared,private] [--batch-wait-ms W] [--threads T]
//!                         [--tagger PKG] [--active PERCENT] [--asr-streams N]
//!                         [--procs M] [--server HOST:PORT] [--server-pid PID]
//!                         [--metrics URL] [--audio WAV] [--decide PROPS] [--perceive PROPS]

use std::collections::VecDeque;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use parking_lot::Mutex;

use lalm_tools::pipeline::{error_text, init};
use lalm_tools::proc::rss_mib;
use lalm_tools::{Res, meeting, wav};

const RATE: u64 = 16000;
const BUFFER_SAMPLES: usize = 320;
const CHUNK_MS: u64 = 400;

const USAGE: &str = concat!(
    "usage: lalm-multi-bench [--streams 1,8,32,128] [--seconds S] [--paced-seconds P]\n",
    "                        [--modes shared,private] [--batch-wait-ms W] [--threads T]\n",
    "                        [--tagger PKG] [--active PERCENT] [--asr-streams N]\n",
    "                        [--procs M] [--server HOST:PORT] [--server-pid PID]\n",
    "                        [--metrics URL] [--audio WAV] [--decide PROPS] [--perceive PROPS]\n",
    "  --streams        stream counts to run (default 1,8,32,128)\n",
    "  --seconds        audio per stream in the throughput run (default 60)\n",
    "  --paced-seconds  audio per stream in the real-time latency run (default 20; 0 skips)\n",
    "  --modes          shared (one batched session per model), private and/or server (shared,\n",
    "                   the models on --server) (default shared,private)\n",
    "  --batch-wait-ms  lalm-perceive batch-wait-ms (default 5)\n",
    "  --threads        ONNX Runtime intra-op threads per session (default 1)\n",
    "  --tagger         lalm-perceive's tagger (default: its default, ced-tiny; none: VAD only)\n",
    "  --active         percent of streams carrying the meeting; the rest are muted, -80 dBFS\n",
    "                   noise, which the tagger's level gate skips (default 100)\n",
    "  --asr-streams    lalm-respond elements loaded for the ASR memory figure (default 4; 0 skips)\n",
    "  --procs          processes the N streams are split over, run at once (default 1)\n",
    "  --server         gRPC address of the KServe v2 server for --modes server\n",
    "  --server-pid     the server's process, whose CPU time is added to the server rows\n",
    "  --metrics        the server's Prometheus metrics URL, for the batch sizes it ran\n",
    "  --audio          16 kHz mono WAV to feed (default: the lalm-meeting recording)\n",
    "  --decide         lalm-decide properties, as gst-launch writes them (turn-model=none: no\n",
    "                   end-of-turn model; default: the element's defaults, smart-turn)\n",
    "  --perceive       more lalm-perceive properties (tagger-calm-hop-ms=0: every tagger window)",
);

#[derive(Clone)]
struct Args {
    streams: Vec<usize>,
    seconds: f64,
    paced: f64,
    modes: Vec<String>,
    batch_wait_ms: u32,
    threads: u32,
    asr_streams: usize,
    /// The perceive element's tagger (empty: its default).
    tagger: String,
    /// lalm-decide's properties, `name=value ...` (empty: its defaults).
    decide: String,
    /// More lalm-perceive properties, `name=value ...`.
    perceive: String,
    /// Percent of the streams that carry sound; the others are a muted participant's
    /// near-silence (-80 dBFS noise).
    active: u32,
    procs: usize,
    server: String,
    server_pid: Option<u32>,
    metrics: String,
    audio: String,
}

fn parse_args(argv: &[String]) -> Res<Args> {
    let mut a = Args {
        streams: vec![1, 8, 32, 128],
        seconds: 60.0,
        paced: 20.0,
        modes: vec!["shared".into(), "private".into()],
        batch_wait_ms: 5,
        threads: 1,
        asr_streams: 4,
        tagger: String::new(),
        decide: String::new(),
        perceive: String::new(),
        active: 100,
        procs: 1,
        server: String::new(),
        server_pid: None,
        metrics: String::new(),
        audio: String::new(),
    };
    let mut it = argv.iter();
    while let Some(k) = it.next() {
        let mut v = || {
            it.next()
                .ok_or_else(|| format!("{k} needs a value\n{USAGE}"))
        };
        match k.as_str() {
            "--streams" => {
                a.streams = v()?
                    .split(',')
                    .map(|s| s.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--streams: {e}"))?;
                if a.streams.iter().any(|&n| n == 0 || n > 1024) {
                    return Err("--streams: counts from 1 to 1024".into());
                }
            }
            "--seconds" => a.seconds = v()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--paced-seconds" => {
                a.paced = v()?.parse().map_err(|e| format!("--paced-seconds: {e}"))?
            }
            "--modes" => a.modes = v()?.split(',').map(|s| s.trim().to_string()).collect(),
            "--batch-wait-ms" => {
                a.batch_wait_ms = v()?.parse().map_err(|e| format!("--batch-wait-ms: {e}"))?
            }
            "--threads" => a.threads = v()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--tagger" => a.tagger = v()?.to_string(),
            "--decide" => a.decide = v()?.to_string(),
            "--perceive" => a.perceive = v()?.to_string(),
            "--active" => {
                a.active = v()?.parse().map_err(|e| format!("--active: {e}"))?;
                if a.active > 100 {
                    return Err("--active: a percentage, 0 to 100".into());
                }
            }
            "--asr-streams" => {
                a.asr_streams = v()?.parse().map_err(|e| format!("--asr-streams: {e}"))?
            }
            "--procs" => {
                a.procs = v()?.parse().map_err(|e| format!("--procs: {e}"))?;
                if a.procs == 0 {
                    return Err("--procs: at least 1".into());
                }
            }
            "--server" => a.server = v()?.to_string(),
            "--server-pid" => {
                a.server_pid = Some(v()?.parse().map_err(|e| format!("--server-pid: {e}"))?)
            }
            "--metrics" => a.metrics = v()?.to_string(),
            "--audio" => a.audio = v()?.to_string(),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    if !(a.seconds > 0.0 && a.seconds <= 3600.0 && (0.0..=3600.0).contains(&a.paced)) {
        return Err("--seconds: 0 to 3600 (more than 0), --paced-seconds: 0 to 3600".into());
    }
    if let Some(m) = a
        .modes
        .iter()
        .find(|m| !["shared", "private", "server"].contains(&m.as_str()))
    {
        return Err(format!("--modes: shared, private or server, not {m}").into());
    }
    if a.modes.iter().any(|m| m == "server") && a.server.is_empty() {
        return Err("--modes server needs --server HOST:PORT".into());
    }
    if let Some(&n) = a.streams.iter().find(|&&n| n % a.procs != 0) {
        return Err(format!(
            "--streams: {n} does not split evenly over {} processes",
            a.procs
        )
        .into());
    }
    Ok(a)
}

fn main() -> std::process::ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let result = if argv.first().map(String::as_str) == Some("--child") {
        child(&argv[1..])
    } else if argv.first().map(String::as_str) == Some("--child-asr") {
        child_asr(&argv[1..])
    } else {
        parse_args(&argv).and_then(|a| parent(&a))
    };
    lalm_tools::exit("lalm-multi-bench", result)
}

/// `path`, or the meeting recording, made once by lalm-meeting and cached.
fn audio(path: &str) -> Res<Vec<f32>> {
    let wav = if path.is_empty() || path == "-" {
        meeting::meeting_dir(2.0, 21)?.join("meeting.wav")
    } else {
        std::path::PathBuf::from(path)
    };
    let samples = wav::read_s16_mono(&wav, RATE as u32)
        .map_err(|e| format!("{e} (delete it to regenerate)"))?;
    Ok(samples.iter().map(|&v| f32::from(v) / 32768.0).collect())
}

/// One run's figures, as the child prints them (one JSON line) and the parent reads them.
#[derive(Default, Clone)]
struct Figures {
    mode: String,
    streams: usize,
    audio_s: f64,
    wall_s: f64,
    cpu_s: f64,
    rss_base_mib: f64,
    rss_mib: f64,
    vad_batch: f64,
    tagger_batch: f64,
    paced_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    dropped: u64,
    chunks: u64,
    /// Processes the streams ran in.
    procs: usize,
    /// Paced per-chunk latencies (ms), for percentiles over several processes.
    lat: Vec<f64>,
    bytes_out: u64,
    bytes_in: u64,
    server_requests: u64,
    local_runs: u64,
    /// The server's CPU seconds during the run, and the batch its scheduler ran per model.
    server_cpu_s: f64,
    server_batch: String,
    /// Stream-seconds of audio in the paced run (the network figures cover both runs).
    audio_paced_s: f64,
}

impl Figures {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "mode": self.mode, "streams": self.streams, "audio_s": self.audio_s,
            "wall_s": self.wall_s, "cpu_s": self.cpu_s, "rss_base_mib": self.rss_base_mib,
            "rss_mib": self.rss_mib, "vad_batch": self.vad_batch,
            "tagger_batch": self.tagger_batch, "paced_s": self.paced_s, "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms, "max_ms": self.max_ms, "dropped": self.dropped,
            "chunks": self.chunks, "lat": self.lat, "bytes_out": self.bytes_out,
            "bytes_in": self.bytes_in, "server_requests": self.server_requests,
            "local_runs": self.local_runs,
        })
    }

    fn from_json(v: &serde_json::Value) -> Figures {
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        Figures {
            mode: v["mode"].as_str().unwrap_or_default().into(),
            streams: v["streams"].as_u64().unwrap_or(0) as usize,
            audio_s: f("audio_s"),
            wall_s: f("wall_s"),
            cpu_s: f("cpu_s"),
            rss_base_mib: f("rss_base_mib"),
            rss_mib: f("rss_mib"),
            vad_batch: f("vad_batch"),
            tagger_batch: f("tagger_batch"),
            paced_s: f("paced_s"),
            p50_ms: f("p50_ms"),
            p99_ms: f("p99_ms"),
            max_ms: f("max_ms"),
            dropped: v["dropped"].as_u64().unwrap_or(0),
            chunks: v["chunks"].as_u64().unwrap_or(0),
            procs: 1,
            lat: v["lat"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
                .unwrap_or_default(),
            bytes_out: v["bytes_out"].as_u64().unwrap_or(0),
            bytes_in: v["bytes_in"].as_u64().unwrap_or(0),
            server_requests: v["server_requests"].as_u64().unwrap_or(0),
            local_runs: v["local_runs"].as_u64().unwrap_or(0),
            ..Default::default()
        }
    }

    /// One row for the processes of one run: totals, and percentiles over every chunk.
    fn merge(parts: Vec<Figures>) -> Figures {
        let n = parts.len().max(1) as f64;
        let mut f = Figures {
            procs: parts.len(),
            ..Default::default()
        };
        for p in parts {
            f.mode = p.mode;
            f.streams += p.streams;
            f.audio_s += p.audio_s;
            f.wall_s = f.wall_s.max(p.wall_s);
            f.cpu_s += p.cpu_s;
            f.rss_base_mib += p.rss_base_mib;
            f.rss_mib += p.rss_mib;
            f.vad_batch += p.vad_batch / n;
            f.tagger_batch += p.tagger_batch / n;
            f.paced_s = p.paced_s;
            f.dropped += p.dropped;
            f.chunks += p.chunks;
            f.lat.extend(p.lat);
            f.bytes_out += p.bytes_out;
            f.bytes_in += p.bytes_in;
            f.server_requests += p.server_requests;
            f.local_runs += p.local_runs;
        }
        f.lat.sort_by(f64::total_cmp);
        let q = |p: f64| {
            f.lat
                .get(((f.lat.len().max(1) - 1) as f64 * p).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        (f.p50_ms, f.p99_ms) = (q(0.5), q(0.99));
        f.max_ms = f.lat.last().copied().unwrap_or(0.0);
        f
    }

    fn sustained(&self) -> bool {
        self.paced_s > 0.0 && self.dropped == 0 && self.p99_ms < CHUNK_MS as f64
    }
}

fn parent(a: &Args) -> Res<()> {
    audio(&a.audio)?; // made once here, not by every child at the same time
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "lalm-multi-bench: {} cores, {} s of audio per stream as fast as it goes, {} s paced at \
         real time; batch-wait-ms {}, intra-op threads {}",
        cores, a.seconds, a.paced, a.batch_wait_ms, a.threads
    );
    println!(
        "command: lalm-multi-bench {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    let exe = std::env::current_exe()?;
    let mut rows: Vec<Figures> = Vec::new();
    for &n in &a.streams {
        for mode in &a.modes {
            // Two passes, so the server's CPU and batches belong to one phase each: the
            // throughput run (CPU, streams per core), then the paced run (latency, batches).
            let (mut f, cpu, _) = run_children(a, &exe, mode, n, a.seconds, 0.0)?;
            if a.paced > 0.0 {
                let (p, _, batch) = run_children(a, &exe, mode, n, 0.0, a.paced)?;
                (f.paced_s, f.lat, f.p50_ms, f.p99_ms, f.max_ms) =
                    (p.paced_s, p.lat, p.p50_ms, p.p99_ms, p.max_ms);
                (f.dropped, f.chunks, f.server_batch) = (p.dropped, p.chunks, batch);
                f.bytes_out += p.bytes_out;
                f.bytes_in += p.bytes_in;
                f.server_requests += p.server_requests;
                f.local_runs += p.local_runs;
                f.audio_paced_s = p.paced_s * n as f64;
            }
            f.server_cpu_s = cpu;
            print_row(&f, rows.iter().find(|r| r.mode == f.mode && r.streams == 1));
            rows.push(f);
        }
    }
    if a.asr_streams > 0 {
        for mode in &a.modes {
            let mut rss = Vec::new();
            for n in [1, a.asr_streams.max(2)] {
                let out = Command::new(&exe)
                    .args(["--child-asr", mode, &n.to_string()])
                    .stderr(std::process::Stdio::inherit())
                    .output()?;
                let text = String::from_utf8_lossy(&out.stdout);
                let v: f64 = text
                    .lines()
                    .rev()
                    .find_map(|l| l.trim().parse().ok())
                    .ok_or_else(|| format!("ASR {mode} x{n}: the run failed ({})", out.status))?;
                rss.push((n, v));
            }
            let ((n1, r1), (n2, r2)) = (rss[0], rss[1]);
            println!(
                "{mode:<7} lalm-respond (its default model loaded): {n1} element {r1:.0} MiB, {n2} \
                 elements {r2:.0} MiB -> {:.1} MiB per extra element",
                (r2 - r1) / (n2 - n1) as f64
            );
        }
    }
    println!();
    for mode in &a.modes {
        let mine: Vec<&Figures> = rows.iter().filter(|r| &r.mode == mode).collect();
        let per_core = mine
            .iter()
            .map(|r| r.audio_s / (r.cpu_s + r.server_cpu_s).max(1e-9))
            .fold(0.0, f64::max);
        let machine = mine
            .iter()
            .map(|r| r.audio_s / r.wall_s.max(1e-9))
            .fold(0.0, f64::max);
        let sustained = mine
            .iter()
            .filter(|r| r.sustained())
            .map(|r| r.streams)
            .max();
        println!(
            "{mode}: streams in real time per core {per_core:.0}, whole machine ({cores} cores) \
             {machine:.0}; largest N run paced with nothing dropped and p99 under {CHUNK_MS} ms: {}",
            sustained.map_or("none".into(), |n| n.to_string())
        );
    }
    Ok(())
}

/// Runs the N streams of `mode` in `a.procs` child processes at once and merges their
/// figures; with a server, also its CPU seconds and batch sizes over the run.
fn run_children(
    a: &Args,
    exe: &std::path::Path,
    mode: &str,
    n: usize,
    seconds: f64,
    paced: f64,
) -> Res<(Figures, f64, String)> {
    let metrics0 = server_metrics(a, mode);
    let server_cpu0 = a.server_pid.map(group_cpu_seconds);
    let children = (0..a.procs)
        .map(|_| {
            Command::new(exe)
                .arg("--child")
                .args([
                    mode.to_string(),
                    (n / a.procs).to_string(),
                    seconds.to_string(),
                    paced.to_string(),
                    a.batch_wait_ms.to_string(),
                    a.threads.to_string(),
                    if a.tagger.is_empty() {
                        "-".into()
                    } else {
                        a.tagger.clone()
                    },
                    a.active.to_string(),
                    if mode == "server" {
                        a.server.clone()
                    } else {
                        "-".into()
                    },
                    if a.audio.is_empty() {
                        "-".into()
                    } else {
                        a.audio.clone()
                    },
                    if a.decide.is_empty() {
                        "-".into()
                    } else {
                        a.decide.clone()
                    },
                    if a.perceive.is_empty() {
                        "-".into()
                    } else {
                        a.perceive.clone()
                    },
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut parts = Vec::new();
    for c in children {
        let out = c.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .ok_or_else(|| format!("{mode} x{n}: the run failed ({})", out.status))?;
        parts.push(Figures::from_json(&serde_json::from_str(line)?));
    }
    let f = Figures::merge(parts);
    let mut cpu = 0.0;
    let mut batch = String::new();
    if mode == "server" {
        if let (Some(pid), Some(c0)) = (a.server_pid, server_cpu0) {
            cpu = group_cpu_seconds(pid) - c0;
        }
        if let (Some(m0), Some(m1)) = (metrics0, server_metrics(a, mode)) {
            batch = batch_sizes(&m0, &m1);
        }
    }
    Ok((f, cpu, batch))
}

fn print_row(f: &Figures, one: Option<&Figures>) {
    let per_stream = (f.rss_mib - f.rss_base_mib) / f.streams as f64;
    let extra = match one {
        Some(o) if f.streams > 1 => {
            format!("{:.2}", (f.rss_mib - o.rss_mib) / (f.streams - 1) as f64)
        }
        _ => "-".into(),
    };
    println!(
        "{:<7} N={:<4} throughput: {:>7.0} s audio in {:>6.1} s wall, {:>6.1} s CPU -> {:>5.0} \
         streams/core, {:>5.0} streams/machine; batch VAD {:.1} tagger {:.1} | memory: {:.1} MiB \
         total, {:.2} MiB/stream, {} MiB per extra stream | paced {} s: latency p50 {:.0} ms \
         p99 {:.0} ms max {:.0} ms, {} of {} chunks dropped{}{}",
        format!("{} {}p", f.mode, f.procs),
        f.streams,
        f.audio_s,
        f.wall_s,
        f.cpu_s,
        f.audio_s / (f.cpu_s + f.server_cpu_s).max(1e-9),
        f.audio_s / f.wall_s.max(1e-9),
        f.vad_batch,
        f.tagger_batch,
        f.rss_mib - f.rss_base_mib,
        per_stream,
        extra,
        f.paced_s,
        f.p50_ms,
        f.p99_ms,
        f.max_ms,
        f.dropped,
        f.chunks,
        if f.sustained() { " (sustained)" } else { "" },
        server_part(f),
    );
}

/// The served run's server side: its CPU (counted in streams/core above), the batches its
/// scheduler ran, and the network per stream.
fn server_part(f: &Figures) -> String {
    if f.mode != "server" {
        return String::new();
    }
    let per_stream_s = (f.audio_s + f.audio_paced_s).max(1e-9);
    format!(
        " | server: {:.1} s CPU (throughput run), batch {} (paced run), {} requests ({} run locally), network per stream \
         {:.1} kB/s out {:.1} kB/s in",
        f.server_cpu_s,
        if f.server_batch.is_empty() {
            "-"
        } else {
            &f.server_batch
        },
        f.server_requests,
        f.local_runs,
        f.bytes_out as f64 / per_stream_s / 1e3,
        f.bytes_in as f64 / per_stream_s / 1e3,
    )
}

/// CPU seconds of every process in process group `pgid` (the server and its backend stubs,
/// which scripts/triton-server.sh starts in a session of their own).
fn group_cpu_seconds(pgid: u32) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            let rest = &stat[stat.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After the command: state, ppid, pgrp, ...; utime and stime are 12th and 13th.
            (f.get(2)?.parse::<u32>().ok()? == pgid).then(|| {
                let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
                (t(11) + t(12)) / 100.0
            })
        })
        .sum()
}

/// The server's metrics text, for a served run with `--metrics`.
fn server_metrics(a: &Args, mode: &str) -> Option<String> {
    if mode != "server" || a.metrics.is_empty() {
        return None;
    }
    match http_get(&a.metrics) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("metrics {}: {e}", a.metrics);
            None
        }
    }
}

/// A plain HTTP/1.0 GET, enough for a Prometheus endpoint on the local network.
fn http_get(url: &str) -> Res<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut conn = std::net::TcpStream::connect(host)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(conn, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut body = String::new();
    conn.read_to_string(&mut body)?;
    Ok(body)
}

/// Inferences per execution of each model between two metrics snapshots.
fn batch_sizes(before: &str, after: &str) -> String {
    let value = |text: &str, metric: &str, model: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(metric) && l.contains(&format!("model=\"{model}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let mut models: Vec<&str> = after
        .lines()
        .filter(|l| l.starts_with("nv_inference_exec_count{"))
        .filter_map(|l| l.split("model=\"").nth(1)?.split('"').next())
        .collect();
    models.dedup();
    models
        .iter()
        .filter_map(|m| {
            let d = |k: &str| value(after, k, m) - value(before, k, m);
            let execs = d("nv_inference_exec_count{");
            (execs > 0.0).then(|| format!("{m} {:.2}", d("nv_inference_count{") / execs))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The fields after the parenthesised command name; utime and stime are 14th and 15th.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Linux reports them in USER_HZ, which is 100 on every architecture it exposes.
    (ticks(11) + ticks(12)) / 100.0
}

struct Stream {
    pipeline: gst::Pipeline,
    src: gst::Element,
    perceive: gst::Element,
    /// (end sample of a pushed buffer, when it was pushed), in push order.
    pushed: Arc<Mutex<VecDeque<(u64, Instant)>>>,
    latencies: Arc<Mutex<Vec<f64>>>,
    chunks: Arc<AtomicU64>,
}

/// A muted participant: noise at -80 dBFS.
fn muted(len: usize) -> Vec<f32> {
    let mut rng = lalm_tools::rng::Lcg(5);
    (0..len).map(|_| rng.range_f32(-1.7e-4, 1.7e-4)).collect()
}

fn build_stream(
    shared: bool,
    batch_wait_ms: u32,
    threads: u32,
    tagger: &str,
    server: &str,
    decide: &str,
    perceive: &str,
) -> Res<Stream> {
    let decide = if decide == "-" { "" } else { decide };
    let perceive = if perceive == "-" { "" } else { perceive };
    let tagger = if tagger == "-" {
        String::new()
    } else {
        format!("tagger={tagger}")
    };
    // A served run measures the server: a fall back to local inference fails it instead.
    let server = if server == "-" {
        String::new()
    } else {
        format!("server={server} server-fallback=error")
    };
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time max-bytes=64000 block=true \
         caps=audio/x-raw,format=F32LE,rate={RATE},channels=1,layout=interleaved \
         ! lalm-chunker chunk-ms={CHUNK_MS} \
         ! lalm-perceive name=perceive share-session={shared} batch-wait-ms={batch_wait_ms} \
           threads={threads} {tagger} {server} {perceive} \
         ! lalm-decide {decide} ! appsink name=sink sync=false emit-signals=true max-buffers=0"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let src = pipeline.by_name("src").ok_or("no appsrc")?;
    let perceive = pipeline.by_name("perceive").ok_or("no lalm-perceive")?;
    let sink = pipeline.by_name("sink").ok_or("no appsink")?;
    let pushed: Arc<Mutex<VecDeque<(u64, Instant)>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let chunks = Arc::new(AtomicU64::new(0));
    {
        let (pushed, latencies, chunks) = (pushed.clone(), latencies.clone(), chunks.clone());
        sink.connect("new-sample", false, move |args| {
            let now = Instant::now();
            let sample = args
                .first()
                .and_then(|v| v.get::<gst::Element>().ok())
                .and_then(|s| s.emit_by_name::<Option<gst::Sample>>("pull-sample", &[]));
            if let Some(buf) = sample.as_ref().and_then(|s| s.buffer()) {
                chunks.fetch_add(1, Ordering::Relaxed);
                if let (Some(pts), Some(dur)) = (buf.pts(), buf.duration()) {
                    let end = (pts + dur).nseconds() * RATE / 1_000_000_000;
                    let mut q = pushed.lock();
                    // The chunk was complete when the buffer holding its last sample went in.
                    while q.len() > 1 && q[0].0 < end {
                        q.pop_front();
                    }
                    if let Some(&(_, at)) = q.front() {
                        latencies
                            .lock()
                            .push(now.duration_since(at).as_secs_f64() * 1e3);
                    }
                }
            }
            Some(gst::FlowReturn::Ok.to_value())
        });
    }
    Ok(Stream {
        pipeline,
        src,
        perceive,
        pushed,
        latencies,
        chunks,
    })
}

/// Feeds `seconds` of `audio` from `offset` (cycling) into the stream: at real time when
/// `paced`, else as fast as the pipeline takes it; then EOS.
fn feed(s: &Stream, audio: &[f32], offset: usize, seconds: f64, paced: bool) {
    let total = (seconds * RATE as f64) as u64;
    let start = Instant::now();
    let mut pos = 0u64;
    let mut at = offset % audio.len();
    while pos < total {
        let n = (BUFFER_SAMPLES as u64).min(total - pos) as usize;
        let mut bytes = Vec::with_capacity(n * 4);
        for _ in 0..n {
            bytes.extend_from_slice(&audio[at].to_le_bytes());
            at = (at + 1) % audio.len();
        }
        let mut buf = gst::Buffer::from_mut_slice(bytes);
        {
            let b = buf.get_mut().expect("fresh buffer");
            b.set_pts(gst::ClockTime::from_nseconds(pos * 1_000_000_000 / RATE));
            b.set_duration(gst::ClockTime::from_nseconds(
                (pos + n as u64) * 1_000_000_000 / RATE - pos * 1_000_000_000 / RATE,
            ));
        }
        if paced {
            let due = start + Duration::from_secs_f64((pos + n as u64) as f64 / RATE as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        pos += n as u64;
        s.pushed.lock().push_back((pos, Instant::now()));
        let r = s
            .src
            .emit_by_name::<gst::FlowReturn>("push-buffer", &[&buf]);
        if r != gst::FlowReturn::Ok {
            eprintln!("push-buffer: {r:?}");
            return;
        }
    }
    let _ = s.src.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
}

/// Runs every stream's feed on its own thread and waits for every pipeline's EOS.
fn run_all(
    streams: &[Stream],
    audio: &Arc<Vec<f32>>,
    quiet: &Arc<Vec<f32>>,
    loud: usize,
    seconds: f64,
    paced: bool,
) -> Res<()> {
    for s in streams {
        s.pipeline.set_state(gst::State::Playing)?;
    }
    std::thread::scope(|scope| {
        for (k, s) in streams.iter().enumerate() {
            let audio = if k < loud {
                audio.clone()
            } else {
                quiet.clone()
            };
            // Streams start at different points of the meeting, 7.3 s apart.
            let offset = k * 116_800;
            scope.spawn(move || feed(s, &audio, offset, seconds, paced));
        }
    });
    for s in streams {
        let bus = s.pipeline.bus().ok_or("no bus")?;
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(600),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => {}
            Some(gst::MessageView::Error(e)) => {
                return Err(format!("pipeline error from {}", error_text(e)).into());
            }
            _ => return Err("no EOS within 10 minutes".into()),
        }
    }
    Ok(())
}

fn child(argv: &[String]) -> Res<()> {
    let [
        mode,
        n,
        seconds,
        paced,
        wait,
        threads,
        tagger,
        active,
        server,
        audio_path,
        decide,
        perceive,
    ] = argv
    else {
        return Err(
            "--child MODE N SECONDS PACED WAIT THREADS TAGGER ACTIVE SERVER AUDIO DECIDE PERCEIVE"
                .into(),
        );
    };
    let active: usize = active.parse()?;
    let (n, seconds, paced): (usize, f64, f64) = (n.parse()?, seconds.parse()?, paced.parse()?);
    let (wait, threads): (u32, u32) = (wait.parse()?, threads.parse()?);
    let shared = mode != "private";
    init()?;
    let audio = Arc::new(audio(audio_path)?);
    // ONNX Runtime loaded before the baseline, so the figures are the streams' own.
    soundflow::models::runtime::Runtime::get(None)?;
    let rss_base = rss_mib().unwrap_or(0.0);
    let streams: Vec<Stream> = (0..n)
        .map(|_| build_stream(shared, wait, threads, tagger, server, decide, perceive))
        .collect::<Res<_>>()?;
    // The first `active` percent of the streams carry the meeting, the others near-silence.
    let loud = (n * active).div_ceil(100);
    let quiet = Arc::new(muted(audio.len()));
    let t0 = Instant::now();
    let c0 = cpu_seconds();
    // 0 s: the parent's latency pass, which skips the throughput run.
    if seconds > 0.0 {
        run_all(&streams, &audio, &quiet, loud, seconds, false)?;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - c0;
    let rss = rss_mib().unwrap_or(0.0);
    let stat = |name: &str| -> f64 {
        streams[0]
            .perceive
            .property::<gst::Structure>("stats")
            .get::<f64>(name)
            .unwrap_or(0.0)
    };
    let (vad_batch, tagger_batch) = (stat("vad-batch-mean"), stat("tagger-batch-mean"));
    let mut f = Figures {
        mode: mode.clone(),
        streams: n,
        audio_s: seconds * n as f64,
        wall_s: wall,
        cpu_s: cpu,
        rss_base_mib: rss_base,
        rss_mib: rss,
        vad_batch,
        tagger_batch,
        ..Default::default()
    };
    if paced > 0.0 {
        for s in &streams {
            s.pipeline.set_state(gst::State::Null)?;
            s.src.set_property("is-live", true);
            s.latencies.lock().clear();
            s.pushed.lock().clear();
            s.chunks.store(0, Ordering::Relaxed);
        }
        run_all(&streams, &audio, &quiet, loud, paced, true)?;
        let mut lat: Vec<f64> = streams
            .iter()
            .flat_map(|s| {
                // The first two seconds are the pipelines starting up.
                let skip = (2000 / CHUNK_MS) as usize;
                s.latencies
                    .lock()
                    .iter()
                    .skip(skip)
                    .copied()
                    .collect::<Vec<_>>()
            })
            .collect();
        lat.sort_by(f64::total_cmp);
        let q = |p: f64| {
            lat.get(((lat.len().max(1) - 1) as f64 * p).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        f.paced_s = paced;
        f.lat = lat.clone();
        f.p50_ms = q(0.5);
        f.p99_ms = q(0.99);
        f.max_ms = lat.last().copied().unwrap_or(0.0);
        f.dropped = streams
            .iter()
            .map(|s| {
                s.perceive
                    .property::<gst::Structure>("stats")
                    .get::<u64>("dropped")
                    .unwrap_or(0)
            })
            .sum();
        f.chunks = streams
            .iter()
            .map(|s| s.chunks.load(Ordering::Relaxed))
            .sum();
    }
    // The models are shared: any stream's stats hold the process's totals.
    let stats = streams[0].perceive.property::<gst::Structure>("stats");
    let total = |k: &str| stats.get::<u64>(k).unwrap_or(0);
    (f.bytes_out, f.bytes_in) = (total("server-bytes-out"), total("server-bytes-in"));
    (f.server_requests, f.local_runs) = (total("server-requests"), total("server-local-runs"));
    for s in &streams {
        s.pipeline.set_state(gst::State::Null)?;
    }
    println!("{}", f.to_json());
    Ok(())
}

/// Loads `n` lalm-respond elements (their default model, on shared or private sessions) and
/// prints the resident memory, less the process before them, in MiB.
fn child_asr(argv: &[String]) -> Res<()> {
    let [mode, n] = argv else {
        return Err("--child-asr MODE N".into());
    };
    let n: usize = n.parse()?;
    init()?;
    soundflow::models::runtime::Runtime::get(None)?;
    let base = rss_mib().unwrap_or(0.0);
    let elements: Vec<gst::Element> = (0..n)
        .map(|_| {
            gst::ElementFactory::make("lalm-respond")
                .property("share-session", mode == "shared")
                .build()
        })
        .collect::<Result<_, _>>()?;
    for e in &elements {
        e.set_state(gst::State::Ready)?;
    }
    println!("{}", rss_mib().unwrap_or(0.0) - base);
    for e in &elements {
        e.set_state(gst::State::Null)?;
    }
    Ok(())
}

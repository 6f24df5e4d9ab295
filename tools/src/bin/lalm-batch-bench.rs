//! lalm-batch-bench: what one model call costs per window at batch 1, 4, 16 and 32, and with
//! one or two intra-op threads, on real speech. It answers two questions of the many-streams
//! design: does gathering several streams' windows into one call pay (batching), and should a
//! shared model use more intra-op threads or more sessions (the pool) to use every core.
//!
//! - Tagger (CED-Tiny by default): 2 s windows every 0.5 s of the recording, scored `--windows`
//!   times in calls of B windows each.
//! - End-of-turn model (smart-turn v3.2): one call per pause, 8 s of audio each; batch 1 only
//!   (the element asks it once per pause per stream).
//!
//! CPU time is the process's (user + system); wall time is per call. The recording is real
//! speech, the Asterisk prompts (`scripts/fetch-speech.sh`, 150 s).
//!
//! Usage: lalm-batch-bench [--tagger PKG] [--windows N] [--batches 1,4,16,32] [--threads 1,2]

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use lalm_tools::cli::Flags;
use lalm_tools::proc::cpu_seconds;
use lalm_tools::{Res, wav};
use soundflow::models::package::ModelPackage;
use soundflow::models::runtime::{Runtime, SessionOptions};

const USAGE: &str = concat!(
    "usage: lalm-batch-bench [--tagger PKG] [--windows N] [--batches 1,4,16,32] [--threads 1,2]\n",
    "  --tagger   tagger package (default ced-tiny)\n",
    "  --windows  windows scored per batch size (default 256)\n",
    "  --batches  windows per call (default 1,4,16,32)\n",
    "  --threads  intra-op threads of the session (default 1,2)",
);

fn list(v: &str) -> Res<Vec<usize>> {
    v.split(',')
        .map(|x| {
            x.trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{x}: expected a positive number").into())
        })
        .collect()
}

fn speech() -> Res<Vec<f32>> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("fetch-speech.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed ({})", script.display(), out.status).into());
    }
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .map(|l| PathBuf::from(l.trim()))
        .ok_or("fetch-speech.sh printed no path")?;
    Ok(wav::read_s16_mono(&path, 16000)?
        .into_iter()
        .map(|s| f32::from(s) / 32768.0)
        .collect())
}

fn options(threads: usize) -> SessionOptions {
    SessionOptions {
        intra_threads: threads,
        // A session of its own: nothing else runs on it while it is timed.
        shared: false,
        ..Default::default()
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lalm-batch-bench: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Res<()> {
    let mut tagger = "ced-tiny".to_string();
    let mut windows = 256usize;
    let mut batches = vec![1, 4, 16, 32];
    let mut threads = vec![1, 2];
    let mut flags = Flags::new(std::env::args().skip(1), USAGE);
    while let Some(name) = flags.next_flag() {
        match name.as_str() {
            "--tagger" => tagger = flags.value()?,
            "--windows" => windows = flags.positive()? as usize,
            "--batches" => batches = list(&flags.value()?)?,
            "--threads" => threads = list(&flags.value()?)?,
            _ => return Err(flags.unknown()),
        }
    }
    if flags.asked_for_help() {
        return Ok(());
    }
    let audio = speech()?;
    let rt = Runtime::get(None)?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "machine: {cpus} CPUs; audio: {:.1} s of real speech (Asterisk prompts)",
        audio.len() as f64 / 16000.0
    );

    let pkg = ModelPackage::find(&tagger)?;
    println!();
    println!("tagger {tagger}: CPU ms per window (wall ms per call)");
    let most = pkg.param_int("max_batch", 0)?;
    if most > 0 {
        println!(
            "(its params.max_batch = {most}: a batch runs as calls of at most {most} window(s))"
        );
    }
    print!("{:>8}", "threads");
    for b in &batches {
        print!("{:>22}", format!("batch {b}"));
    }
    println!();
    for &t in &threads {
        let mut model = soundflow::perceive::tagger::AudioTagger::load(&pkg, &rt, &options(t))?;

        let (window, hop) = (model.window_samples(), model.hop_samples());
        let starts: Vec<usize> = (0..)
            .map(|i| i * hop)
            .take_while(|s| s + window <= audio.len())
            .collect();
        if starts.is_empty() {
            return Err("the recording is shorter than one window".into());
        }
        // One untimed call: the first run plans its memory.
        model.score(&[&audio[..window]])?;
        print!("{t:>8}");
        for &b in &batches {
            let calls = windows.div_ceil(b);
            let cpu0 = cpu_seconds();
            let wall0 = Instant::now();
            for c in 0..calls {
                let batch: Vec<&[f32]> = (0..b)
                    .map(|i| {
                        let s = starts[(c * b + i) % starts.len()];
                        &audio[s..s + window]
                    })
                    .collect();
                model.score(&batch)?;
            }
            let wall = wall0.elapsed().as_secs_f64();
            let cpu = cpu_seconds().zip(cpu0).map_or(f64::NAN, |(a, b)| a - b);
            print!(
                "{:>22}",
                format!(
                    "{:.2} ({:.1})",
                    cpu * 1e3 / (calls * b) as f64,
                    wall * 1e3 / calls as f64
                )
            );
        }
        println!();
    }

    match ModelPackage::find("smart-turn-v3.2") {
        Ok(pkg) => {
            println!();
            println!("end-of-turn model smart-turn-v3.2: one call (8 s of audio)");
            for &t in &threads {
                let model = soundflow::decide::turn::TurnModel::load(&pkg, &rt, &options(t))?;
                let w = model.window().min(audio.len());
                model.completion(&audio[..w])?;
                let calls = 32;
                let cpu0 = cpu_seconds();
                let wall0 = Instant::now();
                for c in 0..calls {
                    let s = (c * 16000 * 3) % (audio.len() - w + 1);
                    model.completion(&audio[s..s + w])?;
                }
                let wall = wall0.elapsed().as_secs_f64();
                let cpu = cpu_seconds().zip(cpu0).map_or(f64::NAN, |(a, b)| a - b);
                println!(
                    "{t:>8} threads: {:.1} CPU ms per call ({:.1} ms wall)",
                    cpu * 1e3 / calls as f64,
                    wall * 1e3 / calls as f64
                );
            }
        }
        Err(e) => println!("end-of-turn model not measured: {e}"),
    }
    Ok(())
}

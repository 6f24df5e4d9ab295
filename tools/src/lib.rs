//! What the command-line programs in `src/bin` share: the deterministic generator, the cached
//! test meeting, generated speech, WAV files, flags, running helper programs and the process's
//! own figures.

pub mod cli;
pub mod meeting;
pub mod pipeline;
pub mod proc;
pub mod rng;
pub mod speech;
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

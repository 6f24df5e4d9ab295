//! The benchmarks' test meeting: made once by `lalm-meeting`, the program next to them, and
//! cached.

use std::path::PathBuf;
use std::process::Command;

use crate::Res;

/// The folder holding `meeting.wav`, `rules.toml` and `truth.json` for `minutes` and `seed`,
/// under [`crate::bench_cache_dir`]; its sound events are real recordings
/// ([`crate::sounds_dir`]).
pub fn meeting_dir(minutes: f64, seed: u64) -> Res<PathBuf> {
    let exe = std::env::current_exe()?;
    let gen_ = exe
        .parent()
        .ok_or("no folder for this program")?
        .join("lalm-meeting");
    let dir = crate::bench_cache_dir()?.join(format!("meeting-{minutes}-{seed}-real"));
    if !dir.join("truth.json").is_file() {
        let sounds = crate::sounds_dir()?;
        let st = Command::new(&gen_)
            .arg("--sounds")
            .arg(&sounds)
            .args([
                "--minutes",
                &minutes.to_string(),
                "--seed",
                &seed.to_string(),
            ])
            .arg("--out")
            .arg(&dir)
            .status()
            .map_err(|e| {
                format!(
                    "{}: {e} (build it: cargo build --release -p lalm-tools)",
                    gen_.display()
                )
            })?;
        if !st.success() {
            return Err("lalm-meeting failed".into());
        }
    }
    Ok(dir)
}

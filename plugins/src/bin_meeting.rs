//! The benchmarks' test meeting (included with `#[path]`, not part of the plugin library):
//! made once by `lalm-meeting`, the program next to them, and cached.

use std::path::PathBuf;
use std::process::Command;

/// The folder holding `meeting.wav`, `rules.toml` and `truth.json` for `minutes` and `seed`,
/// under `$XDG_CACHE_HOME/lalm/bench` (or `~/.cache`).
pub fn meeting_dir(minutes: f64, seed: u64) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let gen_ = exe
        .parent()
        .ok_or("no folder for this program")?
        .join("lalm-meeting");
    let dir = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("lalm/bench/meeting-{minutes}-{seed}"));
    if !dir.join("truth.json").is_file() {
        let st = Command::new(&gen_)
            .args([
                "--minutes",
                &minutes.to_string(),
                "--seed",
                &seed.to_string(),
            ])
            .arg("--out")
            .arg(&dir)
            .status()
            .map_err(|e| format!("{}: {e} (build it: cargo build --release)", gen_.display()))?;
        if !st.success() {
            return Err("lalm-meeting failed".into());
        }
    }
    Ok(dir)
}

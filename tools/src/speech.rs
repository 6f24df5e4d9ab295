//! Generated speech recordings for the benchmarks: espeak-ng voices, cached between runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Res;
use crate::proc::run_tool;
use crate::rng::Lcg;

/// The espeak-ng voices the recordings cycle through.
pub const VOICES: &[&str] = &[
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-029",
    "en-gb-x-gbclan",
    "en-us+f3",
];

/// espeak-ng says `text` with `voice` at `speed` words per minute; the result is converted to
/// 16 kHz mono 16-bit WAV at `out` (espeak-ng's own file goes next to it and is removed).
pub fn speak_s16(text: &str, voice: &str, speed: u32, out: &Path) -> Res<()> {
    let mut raw = PathBuf::from(out);
    raw.set_extension("espeak.wav");
    run_tool(
        Command::new("espeak-ng")
            .args(["-v", voice, "-s", &speed.to_string(), "-w"])
            .arg(&raw)
            .arg(text),
    )?;
    let converted = run_tool(
        // -R: sox seeds its dither the same way every run, so a recording comes out the same.
        Command::new("sox")
            .arg("-R")
            .arg(&raw)
            .args(["-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer"])
            .arg(out),
    );
    let _ = std::fs::remove_file(&raw);
    converted
}

/// Says `text` into `out` like [`speak_s16`], in a voice of [`VOICES`] and at 150 to 180
/// words per minute, both drawn from `rng` (in that order). Returns the voice.
pub fn say(text: &str, rng: &mut Lcg, out: &Path) -> Res<&'static str> {
    let voice = VOICES[rng.pick(VOICES.len())];
    let speed = rng.range(150, 180);
    speak_s16(text, voice, speed, out)?;
    Ok(voice)
}

/// The cached files `names` (a recording and what goes with it) under
/// [`crate::bench_cache_dir`]. When one is missing, `make` writes them all to the paths it is
/// given, with a scratch folder of its own that is removed afterwards; `what` says what is
/// being made.
pub fn cached(
    names: &[String],
    what: &str,
    make: impl FnOnce(&Path, &[PathBuf]) -> Res<()>,
) -> Res<Vec<PathBuf>> {
    cached_in(&crate::bench_cache_dir()?, names, what, make)
}

fn cached_in(
    dir: &Path,
    names: &[String],
    what: &str,
    make: impl FnOnce(&Path, &[PathBuf]) -> Res<()>,
) -> Res<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    let first = paths.first().ok_or("no file to cache")?;
    if paths.iter().all(|p| p.is_file()) {
        eprintln!("using cached recording {}", first.display());
        return Ok(paths);
    }
    eprintln!("generating {what} in {} ...", first.display());
    let work = dir.join(format!("tmp-{}-{}", names[0], std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let result = make(&work, &paths);
    let _ = std::fs::remove_dir_all(&work);
    result.map(|()| paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_reused_and_scratch_removed() {
        let cache = std::env::temp_dir().join(format!("lalm-tools-cache-{}", std::process::id()));
        let names = ["a.txt".to_string(), "b.txt".to_string()];
        let mut scratch = None;
        let made = cached_in(&cache, &names, "test files", |work, out| {
            scratch = Some(work.to_path_buf());
            for p in out {
                std::fs::write(p, "x")?;
            }
            Ok(())
        })
        .expect("made");
        assert_eq!(made[1], cache.join("b.txt"));
        assert!(
            !scratch.expect("make ran").exists(),
            "scratch folder left behind"
        );
        let again = cached_in(
            &cache,
            &names,
            "test files",
            |_, _| Err("made twice".into()),
        )
        .expect("reused");
        assert_eq!(again, made);
        std::fs::remove_file(&made[1]).expect("remove one");
        let err = cached_in(&cache, &names, "test files", |_, _| Err("remade".into()))
            .expect_err("missing");
        assert_eq!(err.to_string(), "remade");
        let _ = std::fs::remove_dir_all(&cache);
    }
}

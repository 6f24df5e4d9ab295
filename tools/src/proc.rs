//! Helper programs (espeak-ng, sox) and this process's own memory figures.

use std::process::Command;

use crate::Res;

/// Runs `cmd` to its end; an error names the program, its exit status and its stderr.
pub fn run_tool(cmd: &mut Command) -> Res<()> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e} (is it installed?)", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed ({}): {}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}

/// A `/proc/self/status` figure given in kB (`VmHWM`, `VmRSS`), in MiB; None off Linux.
fn status_mib(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.split(':').next() == Some(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// This process's peak resident memory so far, MiB.
pub fn peak_rss_mib() -> Option<f64> {
    status_mib("VmHWM")
}

/// This process's resident memory now, MiB.
pub fn rss_mib() -> Option<f64> {
    status_mib("VmRSS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_figures_are_read() {
        // Linux is the only platform the project runs on; the figures must be there.
        let (now, peak) = (rss_mib().expect("VmRSS"), peak_rss_mib().expect("VmHWM"));
        assert!(now > 0.0 && peak >= now, "rss {now} MiB, peak {peak} MiB");
    }

    #[test]
    fn a_failing_tool_is_an_error_naming_it() {
        let err = run_tool(Command::new("sh").args(["-c", "echo broken >&2; exit 3"]))
            .expect_err("exit 3 fails");
        let msg = err.to_string();
        assert!(msg.contains("\"sh\"") && msg.contains("broken"), "{msg}");
        let err = run_tool(&mut Command::new("lalm-no-such-program")).expect_err("missing");
        assert!(err.to_string().contains("is it installed"), "{err}");
    }
}

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

/// CPU time this process has used so far (user + system, all threads), seconds; None off
/// Linux. `/proc` counts it in USER_HZ ticks, which the kernel ABI fixes at 100 per second.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name in parentheses may hold spaces; the fields after it are fixed.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
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
    fn cpu_time_grows_with_work() {
        let before = cpu_seconds().expect("/proc/self/stat");
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 300 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let used = cpu_seconds().expect("/proc/self/stat") - before;
        assert!(
            (0.1..=1.0).contains(&used),
            "{used} s of CPU for 0.3 s of spinning"
        );
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

//! lalm-alert-bench: what alerts cost and how fast they come.
//!
//! 1. The tagger's cost, side by side in one run: the loop (`lalm-interact mode=turn-end`,
//!    no ASR) over a generated meeting as fast as it goes, without a tagger (`tagger=none`),
//!    with the project's own (`lalm-tagger`) and with the default (`ced-tiny`), alternating
//!    `--repeat` times; prints
//!    each run's real-time factor, the perceive time per chunk (128 ms, `lalm-interact`'s
//!    chunk) and the tagger's share.
//! 2. Alert latency: the whole loop (the default ASR included) over the meeting paced at real time
//!    (`clocksync`, as a live source delivers it); for every expected alert that fired, the
//!    running time at which the lalm-alert message arrived minus the onset of its sound
//!    (onset → message, which includes the time a rule needs to be sure) and minus the
//!    alert's own end (detection → message, the processing delay). p50/p95 per kind.
//!
//! The meeting comes from `lalm-meeting` (next to this program) with a fixed seed.
//!
//! Usage: lalm-alert-bench [--minutes N] [--paced-minutes N] [--repeat N]

use std::path::{Path, PathBuf};
use std::time::Instant;

use gst::prelude::*;

use lalm_tools::pipeline::{init, launch_loop, play_to_eos, quote};
use lalm_tools::{Res, meeting};

/// Longest wait for a bus message before a run is taken for stuck.
const HOUR: gst::ClockTime = gst::ClockTime::from_seconds(3600);

const USAGE: &str = "usage: lalm-alert-bench [--minutes N] [--paced-minutes N] [--repeat N]";

struct Expected {
    rule: String,
    kind: String,
    onset: f64,
}

fn meeting(minutes: f64, seed: u64) -> Res<(PathBuf, Vec<Expected>)> {
    let dir = meeting::meeting_dir(minutes, seed)?;
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json"))?)?;
    let expected = truth["alerts"]
        .as_array()
        .ok_or("truth.json has no alerts")?
        .iter()
        .map(|a| Expected {
            rule: a["rule"].as_str().unwrap_or_default().into(),
            kind: a["kind"].as_str().unwrap_or_default().into(),
            onset: a["onset"].as_f64().unwrap_or(-1.0),
        })
        .collect();
    Ok((dir, expected))
}

#[derive(Clone)]
struct Cost {
    rtf: f64,
    perceive_us: u64,
    tagger_us: u64,
    frames: u64,
}

fn unpaced(wav: &Path, tagger: &str) -> Res<Cost> {
    let (pipeline, lalm, bus) = launch_loop(&format!(
        "filesrc location={} ! wavparse ! lalm-interact name=loop mode=turn-end \
         tagger={tagger} ! fakesink sync=false",
        quote(wav)?
    ))?;
    let t0 = Instant::now();
    play_to_eos(&pipeline, &bus, HOUR, |_, _| {})?;
    let wall = t0.elapsed().as_secs_f64();
    let dur = pipeline
        .query_duration::<gst::ClockTime>()
        .ok_or("no duration")?
        .nseconds() as f64
        / 1e9;
    let stats = lalm
        .property::<Option<gst::Structure>>("stats")
        .ok_or("no stats")?;
    let _ = pipeline.set_state(gst::State::Null);
    Ok(Cost {
        rtf: wall / dur,
        perceive_us: stats.get("mean-us")?,
        tagger_us: stats.get("tagger-mean-us")?,
        frames: stats.get("tag-frames")?,
    })
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn bench() -> Res<()> {
    let (mut minutes, mut paced_minutes, mut repeat) = (10.0f64, 3.0f64, 2usize);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut num = || -> Res<f64> {
            it.next()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| *v > 0.0)
                .ok_or_else(|| format!("{a} needs a positive number\n{USAGE}").into())
        };
        match a.as_str() {
            "--minutes" => minutes = num()?,
            "--paced-minutes" => paced_minutes = num()?,
            "--repeat" => repeat = num()? as usize,
            _ => return Err(format!("unknown argument {a}\n{USAGE}").into()),
        }
    }
    init()?;
    println!(
        "command  {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!(
        "cpus     {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let (dir, _) = meeting(minutes, 7)?;
    let wav = dir.join("meeting.wav");
    println!("\n== tagger cost: {minutes} min meeting, mode=turn-end, unpaced ==");
    println!("run  tagger       RTF      perceive us/chunk  tagger us/chunk  tagger windows");
    let taggers = ["none", "lalm-tagger", "ced-tiny"];
    let mut costs: Vec<Vec<Cost>> = vec![Vec::new(); taggers.len()];
    for r in 0..repeat.max(1) {
        for (i, tagger) in taggers.iter().enumerate() {
            let c = unpaced(&wav, tagger)?;
            println!(
                "{r:<4} {tagger:<12} {:.5}  {:>17}  {:>15}  {:>14}",
                c.rtf, c.perceive_us, c.tagger_us, c.frames
            );
            costs[i].push(c);
        }
    }
    let med =
        |v: &[Cost], f: fn(&Cost) -> f64| percentile(&mut v.iter().map(f).collect::<Vec<_>>(), 0.5);
    let base = med(&costs[0], |c| c.rtf);
    for (tagger, v) in taggers.iter().zip(&costs).skip(1) {
        let rtf = med(v, |c| c.rtf);
        println!(
            "median RTF without tagger {base:.5}, with {tagger} {rtf:.5}: it adds {:.5} ({:.2} ms \
             per 128 ms chunk)",
            rtf - base,
            med(v, |c| c.tagger_us as f64) / 1000.0
        );
    }

    let (dir, expected) = meeting(paced_minutes, 3)?;
    println!(
        "\n== alert latency: {paced_minutes} min meeting, whole loop with the default ASR, paced at real time =="
    );
    let (pipeline, _lalm, bus) = launch_loop(&format!(
        "filesrc location={} ! wavparse ! clocksync ! lalm-interact name=loop \
         rules={} finals-only=true ! fakesink sync=false async=false",
        quote(&dir.join("meeting.wav"))?,
        quote(&dir.join("rules.toml"))?
    ))?;
    let mut fired: Vec<(String, f64, f64, f64)> = Vec::new();
    play_to_eos(&pipeline, &bus, HOUR, |s, rt| {
        if s.name() == "lalm-alert" {
            let start = s.get::<u64>("start").unwrap_or(0) as f64 / 1e9;
            let end = s.get::<u64>("end").unwrap_or(0) as f64 / 1e9;
            let at = rt.map_or(f64::NAN, |t| t.nseconds() as f64 / 1e9);
            fired.push((s.get::<String>("rule").unwrap_or_default(), start, end, at));
        }
    })?;
    let _ = pipeline.set_state(gst::State::Null);
    let mut used = vec![false; fired.len()];
    let mut by_kind: std::collections::BTreeMap<String, (Vec<f64>, Vec<f64>)> = Default::default();
    let mut hits = 0;
    for e in &expected {
        if let Some(i) = fired
            .iter()
            .enumerate()
            .position(|(i, f)| !used[i] && f.0 == e.rule && (f.1 - e.onset).abs() <= 1.0)
        {
            used[i] = true;
            hits += 1;
            let (_, _, end, at) = fired[i];
            let entry = by_kind.entry(e.kind.clone()).or_default();
            entry.0.push(at - e.onset);
            entry.1.push(at - end);
        }
    }
    println!(
        "{} expected, {} fired, {hits} matched within ±1 s",
        expected.len(),
        fired.len()
    );
    println!("kind          n   onset->message p50/p95 (s)   detection->message p50/p95 (s)");
    let mut all = (Vec::new(), Vec::new());
    for (kind, (mut a, mut b)) in by_kind {
        all.0.extend(a.iter().copied());
        all.1.extend(b.iter().copied());
        println!(
            "{kind:<12} {:>2}   {:>6.2} / {:<6.2}              {:>6.3} / {:<6.3}",
            a.len(),
            percentile(&mut a, 0.5),
            percentile(&mut a, 0.95),
            percentile(&mut b, 0.5),
            percentile(&mut b, 0.95)
        );
    }
    println!(
        "{:<12} {:>2}   {:>6.2} / {:<6.2}              {:>6.3} / {:<6.3}",
        "all",
        all.0.len(),
        percentile(&mut all.0, 0.5),
        percentile(&mut all.0, 0.95),
        percentile(&mut all.1, 0.5),
        percentile(&mut all.1, 0.95)
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    lalm_tools::exit("lalm-alert-bench", bench())
}

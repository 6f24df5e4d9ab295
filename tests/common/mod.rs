//! Helpers the integration tests share: audio they make themselves with espeak-ng and sox,
//! and running gst-launch-1.0 against the plugin this build produced.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const RATE: u32 = 16000;

/// A fresh folder for one test's files: tests run in parallel threads of one process, so
/// every call gets its own folder.
pub fn tmpdir(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("lalm-test-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Reads any audio file sox understands as 16 kHz mono f32.
pub fn read_audio(path: &Path) -> Vec<f32> {
    let raw = path.with_extension("f32");
    run(Command::new("sox")
        .arg(path)
        .args([
            "-t",
            "raw",
            "-e",
            "floating-point",
            "-b",
            "32",
            "-r",
            "16000",
            "-c",
            "1",
        ])
        .arg(&raw));
    let bytes = std::fs::read(&raw).expect("raw audio");
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Writes 16 kHz mono samples as a 16-bit WAV file.
pub fn write_wav(path: &Path, samples: &[f32]) {
    let raw = path.with_extension("raw.f32");
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(&raw, bytes).expect("write raw");
    run(Command::new("sox")
        .args([
            "-t",
            "raw",
            "-e",
            "floating-point",
            "-b",
            "32",
            "-r",
            "16000",
            "-c",
            "1",
        ])
        .arg(&raw)
        .args(["-e", "signed-integer", "-b", "16"])
        .arg(path));
}

/// espeak-ng speaking `text` with `voice`, at 16 kHz.
pub fn speak(dir: &Path, text: &str, voice: &str, speed: u32) -> Vec<f32> {
    let wav = dir.join(format!(
        "say-{:x}.wav",
        hash(&format!("{text}{voice}{speed}"))
    ));
    run(Command::new("espeak-ng")
        .args(["-v", voice, "-s", &speed.to_string(), "-w"])
        .arg(&wav)
        .arg(text));
    read_audio(&wav)
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// First and last sample of actual sound in `x` (10 ms frames above -40 dB of the peak).
pub fn active_span(x: &[f32]) -> (usize, usize) {
    let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    let frame = 160;
    let loud: Vec<bool> = x
        .chunks(frame)
        .map(|f| (f.iter().map(|v| v * v).sum::<f32>() / f.len() as f32).sqrt() > peak * 0.01)
        .collect();
    let first = loud.iter().position(|&l| l).unwrap_or(0);
    let last = loud
        .iter()
        .rposition(|&l| l)
        .unwrap_or(loud.len().saturating_sub(1));
    (first * frame, ((last + 1) * frame).min(x.len()))
}

/// Deterministic pseudo-random numbers: tests must fail or pass the same way every run.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    pub fn uniform(&mut self) -> f32 {
        self.next_u32() as f32 / (1u64 << 31) as f32
    }
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u32() as usize) % (hi - lo)
    }
    pub fn gauss(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-7);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
    }
}

pub const SENTENCES: &[&str] = &[
    "The weather today is sunny with a light breeze from the west.",
    "Please send the quarterly report to the finance team by Friday.",
    "Our next meeting will take place in the large conference room.",
    "Can you hear me clearly, or should I move closer to the microphone?",
    "The train to the airport leaves every twenty minutes.",
    "I would like to order two coffees and a glass of water.",
    "Remember to save your work before closing the application.",
    "The museum opens at nine in the morning and closes at six.",
];

pub const VOICES: &[&str] = &["en-us", "en-gb", "en-us+f3", "en-gb-scotland", "en-us+m4"];

/// A conversation: sentences separated by known silences. Returns the audio and the true
/// speech spans (sample positions).
pub fn conversation(dir: &Path, n: usize, seed: u64) -> (Vec<f32>, Vec<(usize, usize)>) {
    let sentences: Vec<&str> = (0..n).map(|i| SENTENCES[i % SENTENCES.len()]).collect();
    conversation_of(dir, &sentences, seed)
}

/// Mixes sox's pink noise into `audio` at `snr_db` below the speech's active power.
pub fn add_noise(audio: &mut [f32], truth: &[(usize, usize)], snr_db: f32, seed: u64) {
    let (mut p, mut n) = (0.0f64, 0usize);
    for &(a, b) in truth {
        p += audio[a..b]
            .iter()
            .map(|v| (*v as f64) * (*v as f64))
            .sum::<f64>();
        n += b - a;
    }
    let speech_rms = (p / n.max(1) as f64).sqrt() as f32;
    let dir = tmpdir(&format!("noise-{seed}"));
    let wav = dir.join("noise.wav");
    run(Command::new("sox")
        .args([
            "-R",
            "-r",
            "16000",
            "-n",
            "-r",
            "16000",
            "-c",
            "1",
            "-e",
            "floating-point",
            "-b",
            "32",
        ])
        .arg(&wav)
        .args([
            "synth",
            &format!("{}s", audio.len()),
            "pinknoise",
            "vol",
            "0.5",
        ]));
    let noise = read_audio(&wav);
    let noise_rms = (noise.iter().map(|v| v * v).sum::<f32>() / noise.len().max(1) as f32).sqrt();
    let gain = speech_rms / 10f32.powf(snr_db / 20.0) / noise_rms.max(1e-9);
    for (a, z) in audio.iter_mut().zip(noise) {
        *a = (*a + z * gain).clamp(-1.0, 1.0);
    }
}

/// Folder with the plugin this test build produced (target/<profile>).
pub fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let deps = exe.parent().expect("deps dir");
    let dir = deps.parent().expect("profile dir").to_path_buf();
    assert!(
        dir.join("libgstlalm.so").is_file(),
        "{} has no libgstlalm.so: build the plugin crate first",
        dir.display()
    );
    dir
}

/// gst-launch-1.0 with only the system plugins and this build's plugin (not an installed
/// copy), with a private registry.
pub fn gst_launch(args: &[&str], env: &[(&str, &str)]) -> Output {
    let registry =
        std::env::temp_dir().join(format!("lalm-test-registry-{}.bin", std::process::id()));
    // A hung pipeline fails its test instead of eating CI's time.
    let mut cmd = Command::new("timeout");
    cmd.args(["300", "gst-launch-1.0"])
        .args(args)
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env(
            "GST_PLUGIN_SYSTEM_PATH",
            "/usr/lib/x86_64-linux-gnu/gstreamer-1.0",
        )
        .env("GST_REGISTRY", &registry)
        .env_remove("GST_DEBUG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("gst-launch-1.0 runs")
}

/// `(kind, start_ns, end_ns)` of the lalm-decision / lalm-response messages in gst-launch -m output.
pub fn messages(out: &str, name: &str) -> Vec<(String, u64, u64)> {
    out.lines()
        .filter(|l| l.contains(&format!("(element): {name},")))
        .filter_map(|l| {
            let field = |f: &str| -> Option<&str> {
                let i = l.find(&format!(" {f}=("))?;
                let rest = &l[i..];
                let v = &rest[rest.find(')')? + 1..];
                Some(v.split([',', ';']).next()?.trim())
            };
            Some((
                field("kind")?.to_string(),
                field("start")?.parse().ok()?,
                field("end")?.parse().ok()?,
            ))
        })
        .collect()
}

/// More plain English sentences, for conversations longer than [`SENTENCES`].
pub const MORE_SENTENCES: &[&str] = &[
    "My sister is reading a long book about the history of the city.",
    "We should leave early because the roads are busy in the evening.",
    "The children played in the garden until it started to rain.",
    "Please turn off the lights when you leave the office tonight.",
    "He bought fresh bread and cheese at the market this morning.",
    "The library is closed on Sundays and public holidays.",
    "She asked the waiter for the bill after a very good dinner.",
    "Our team finished the project a week before the deadline.",
    "The old bridge over the river was painted bright red last summer.",
    "I forgot my umbrella at home, so I got wet on the way here.",
    "The doctor said that I should drink more water every day.",
    "They are planning a trip to the mountains at the end of the month.",
    "Could you tell me where the nearest bus stop is, please?",
    "The new software update makes the computer start much faster.",
];

/// [`SENTENCES`] followed by [`MORE_SENTENCES`]: the first `n` of them.
pub fn many_sentences(n: usize) -> Vec<&'static str> {
    let all: Vec<&str> = SENTENCES.iter().chain(MORE_SENTENCES).copied().collect();
    assert!(n <= all.len(), "only {} sentences are known", all.len());
    all[..n].to_vec()
}

/// Like [`conversation`] but with the given sentences: one second of lead-in, then each
/// sentence (voices and speeds cycling as there) followed by 1.2 to 2.5 s of silence.
/// Returns the audio and the true speech spans (sample positions).
pub fn conversation_of(
    dir: &Path,
    sentences: &[&str],
    seed: u64,
) -> (Vec<f32>, Vec<(usize, usize)>) {
    let mut rng = Lcg(seed);
    let mut audio = vec![0.0f32; RATE as usize];
    let mut truth = Vec::new();
    for (i, text) in sentences.iter().enumerate() {
        let s = speak(
            dir,
            text,
            VOICES[i % VOICES.len()],
            150 + 10 * (i as u32 % 4),
        );
        let (a, b) = active_span(&s);
        truth.push((audio.len() + a, audio.len() + b));
        audio.extend_from_slice(&s);
        let silence_ms = rng.range(1200, 2500);
        audio.extend(std::iter::repeat_n(0.0, silence_ms * RATE as usize / 1000));
    }
    (audio, truth)
}

/// Lowercase words as word error rates compare them: apostrophes dropped, other marks
/// split words ("Call-Forward" is "call forward"), a lone digit as its word ("press 1" is
/// "press one": the models write either), as lalm-asr-bench scores them.
pub fn norm_words(s: &str) -> Vec<String> {
    const DIGITS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    s.to_lowercase()
        .chars()
        .filter(|c| *c != '\'' && *c != '\u{2019}')
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .map(|w| match w.parse::<usize>() {
            Ok(d) if d < 10 && w.len() == 1 => DIGITS[d].to_string(),
            _ => w.to_string(),
        })
        .collect()
}

/// Word errors (word-level edit distance) of `hypothesis` against `reference`, and the
/// reference's word count; both normalized by [`norm_words`].
pub fn word_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let r = norm_words(reference);
    let h = norm_words(hypothesis);
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(rw != hw))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    (prev[h.len()], r.len())
}

/// Like [`gst_launch`], but with stdout line-buffered and each stdout line stamped with the
/// time it arrived (since the launch), for latency figures. Returns the stamped lines, the
/// stderr text and whether gst-launch-1.0 succeeded.
pub fn gst_launch_timed(
    args: &[&str],
    env: &[(&str, &str)],
) -> (Vec<(std::time::Duration, String)>, String, bool) {
    use std::io::{BufRead, Read};
    let registry =
        std::env::temp_dir().join(format!("lalm-test-registry-{}.bin", std::process::id()));
    let mut cmd = Command::new("timeout");
    cmd.args(["300", "stdbuf", "-oL", "gst-launch-1.0"])
        .args(args)
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env(
            "GST_PLUGIN_SYSTEM_PATH",
            "/usr/lib/x86_64-linux-gnu/gstreamer-1.0",
        )
        .env("GST_REGISTRY", &registry)
        .env_remove("GST_DEBUG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = std::time::Instant::now();
    let mut child = cmd.spawn().expect("gst-launch-1.0 runs");
    let mut stderr = child.stderr.take().expect("stderr");
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let lines = std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .lines()
        .map_while(Result::ok)
        .map(|l| (started.elapsed(), l))
        .collect();
    let status = child.wait().expect("gst-launch-1.0 ends");
    let err = err_thread.join().unwrap_or_default();
    (lines, err, status.success())
}

/// The real-speech recording scripts/fetch-speech.sh makes of the Asterisk prompts, with its
/// truth (`asterisk-live.json`) beside it.
pub fn asterisk_live_wav() -> PathBuf {
    cache_dir().join("speech").join("asterisk-live.wav")
}

/// The long Asterisk paragraphs (`scripts/fetch-speech.sh 150 long`: 12-73 s prompts with
/// pauses inside them) and their transcripts, (start s, end s, text) per prompt.
pub fn asterisk_long() -> (PathBuf, Vec<(f64, f64, String)>) {
    let wav = cache_dir().join("speech").join("asterisk-long-150s.wav");
    let json = wav.with_extension("json");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run bash scripts/fetch-speech.sh 150 long (scripts/test.sh does)",
            json.display()
        )
    });
    let v: serde_json::Value = serde_json::from_str(&text).expect("the truth is JSON");
    let truth = v
        .as_array()
        .expect("a list of prompts")
        .iter()
        .map(|p| {
            (
                p["start"].as_f64().expect("start"),
                p["end"].as_f64().expect("end"),
                p["text"].as_str().expect("text").to_string(),
            )
        })
        .collect();
    (wav, truth)
}

/// A file under the setup scripts' cache (see [`cache_dir`]).
pub fn cache_path(rel: &str) -> PathBuf {
    cache_dir().join(rel)
}

/// Where the setup scripts keep what they extract: `LALM_CACHE_DIR`, else the XDG cache.
fn cache_dir() -> PathBuf {
    std::env::var_os("LALM_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("lalm")))
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/lalm")
        })
}

/// A real recording of `tests/data/real-sounds.tsv` (extracted by `scripts/fetch-sounds.sh`),
/// as 16 kHz mono f32. It is read from a copy in `dir`: [`read_audio`] writes its raw file
/// beside what it reads, and tests running at once may read the same clip.
pub fn real_clip(dir: &Path, id: &str) -> Vec<f32> {
    let path = cache_dir()
        .join("sounds")
        .join("clips")
        .join(format!("{id}.wav"));
    assert!(
        path.is_file(),
        "{}: run bash scripts/fetch-sounds.sh (scripts/test.sh does)",
        path.display()
    );
    let copy = dir.join(format!("clip-{id}.wav"));
    std::fs::copy(&path, &copy).expect("copy the clip");
    read_audio(&copy)
}

/// The real-speech recording `scripts/fetch-speech.sh` makes (the Asterisk prompts, one
/// studio voice): its audio as f32 and each prompt's (start, end) sample and upstream's text.
pub fn asterisk_prompts() -> (Vec<f32>, Vec<(usize, usize, String)>) {
    let wav_path = asterisk_live_wav();
    let dir = wav_path.parent().expect("the speech folder");
    let wav = std::fs::read(&wav_path)
        .expect("asterisk-live.wav: run bash scripts/fetch-speech.sh (scripts/test.sh does)");
    // Written by Python's wave module: a 44-byte header, then 16-bit mono PCM.
    let audio: Vec<f32> = wav[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
        .collect();
    let truth: Vec<serde_json::Value> = serde_json::from_slice(
        &std::fs::read(dir.join("asterisk-live.json")).expect("asterisk-live.json"),
    )
    .expect("truth JSON");
    let prompts = truth
        .iter()
        .map(|t| {
            let at = |k: &str| {
                ((t[k].as_f64().expect("seconds") * RATE as f64) as usize).min(audio.len())
            };
            (
                at("start"),
                at("end"),
                t["text"].as_str().expect("text").to_string(),
            )
        })
        .collect();
    (audio, prompts)
}

/// A real Triton server (`scripts/triton-server.sh`: the nvidia-pytriton wheel's
/// tritonserver with the Python backend running the packages' ONNX files through
/// onnxruntime) on 127.0.0.1, HTTP on `base`, gRPC on `base + 1`, metrics on `base + 2`.
/// Killed, with its backend stubs, when dropped.
pub struct Triton {
    pub base: u16,
    pid: Option<u32>,
    packages: Vec<String>,
}

impl Triton {
    pub fn start(base: u16, packages: &[&str]) -> Triton {
        let mut t = Triton {
            base,
            pid: None,
            packages: packages.iter().map(|s| s.to_string()).collect(),
        };
        t.restart();
        t
    }

    fn script() -> PathBuf {
        let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        loop {
            let s = dir.join("scripts").join("triton-server.sh");
            if s.is_file() {
                return s;
            }
            assert!(dir.pop(), "scripts/triton-server.sh not found");
        }
    }

    /// Starts the server (again) on the same ports and waits until it is ready.
    pub fn restart(&mut self) {
        self.kill();
        let out = Command::new("bash")
            .arg(Self::script())
            .arg("--port-base")
            .arg(self.base.to_string())
            .args(&self.packages)
            .output()
            .expect("run scripts/triton-server.sh");
        let line = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "triton-server.sh failed: {line}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("pid="))
            .and_then(|p| p.parse().ok())
            .expect("pid= in triton-server.sh's output");
        self.pid = Some(pid);
    }

    /// `host:port` of the gRPC endpoint.
    pub fn grpc(&self) -> String {
        format!("127.0.0.1:{}", self.base + 1)
    }

    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.base + 2)
    }

    /// Kills the server outright (SIGKILL to its process group: the server and its Python
    /// backend stubs), as a crash or a lost machine would, and waits until it is gone.
    pub fn kill(&mut self) {
        let Some(pid) = self.pid.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
        for _ in 0..100 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Triton {
    fn drop(&mut self) {
        self.kill();
    }
}

//! 16-bit mono PCM WAV files, the format the generators write and the benchmarks read.

use std::path::{Path, PathBuf};

use crate::Res;

/// The samples of a 16-bit mono PCM WAV file at `rate` Hz; any other format is an error that
/// names the file.
pub fn read_s16_mono(path: &Path, rate: u32) -> Res<Vec<i16>> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_s16_mono(&bytes, rate).map_err(|why| format!("{}: {why}", path.display()).into())
}

fn parse_s16_mono(bytes: &[u8], rate: u32) -> Result<Vec<i16>, String> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a WAV file".into());
    }
    let u16_at = |i: usize| {
        bytes
            .get(i..i + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |i: usize| {
        bytes
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut pos = 12;
    let mut fmt_ok = false;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32_at(pos + 4).ok_or("truncated chunk")? as usize;
        if id == b"fmt " {
            let format = u16_at(pos + 8);
            let channels = u16_at(pos + 10);
            let file_rate = u32_at(pos + 12);
            let bits = u16_at(pos + 22);
            if (format, channels, file_rate, bits) != (Some(1), Some(1), Some(rate), Some(16)) {
                return Err(format!("expected 16-bit mono PCM at {rate} Hz"));
            }
            fmt_ok = true;
        } else if id == b"data" {
            if !fmt_ok {
                return Err("data before fmt".into());
            }
            let end = pos.saturating_add(8).saturating_add(len).min(bytes.len());
            return Ok(bytes[pos + 8..end]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect());
        }
        pos = pos.saturating_add(8 + len + (len & 1));
    }
    Err("no data chunk".into())
}

/// Where a recording's sound starts, in samples: its first 10 ms frame within 30 dB of its
/// loudest.
pub fn onset_offset(x: &[i16], rate: u32) -> usize {
    let frame = (rate / 100).max(1) as usize;
    let energy: Vec<f64> = x
        .chunks(frame)
        .map(|c| c.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / c.len().max(1) as f64)
        .collect();
    let peak = energy.iter().cloned().fold(0.0, f64::max);
    energy
        .iter()
        .position(|&e| e > 0.0 && e >= peak * 1e-3)
        .unwrap_or(0)
        * frame
}

/// Writes `samples` as a 16-bit mono PCM WAV file at `rate` Hz.
pub fn write_s16_mono(path: &Path, rate: u32, samples: &[i16]) -> Res<()> {
    let data_len = u32::try_from(samples.len() * 2)
        .ok()
        .filter(|n| *n <= u32::MAX - 36)
        .ok_or("recording too long for WAV")?;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes()); // bytes per second
    out.extend_from_slice(&2u16.to_le_bytes()); // bytes per frame
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, out).map_err(|e| format!("cannot write {}: {e}", path.display()).into())
}

/// Real speech, read on demand from the speech recordings, in order, round and round.
pub struct SpeechPool {
    rate: u32,
    files: Vec<PathBuf>,
    next: usize,
    buf: Vec<i16>,
}

impl SpeechPool {
    /// The `.wav` files of `dir`, in name order, read at `rate`.
    pub fn new(dir: &Path, rate: u32) -> Res<Self> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wav"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!("no speech recordings in {}", dir.display()).into());
        }
        Ok(Self {
            rate,
            files,
            next: 0,
            buf: Vec::new(),
        })
    }

    /// The next `n` samples.
    pub fn take(&mut self, n: usize) -> Res<Vec<i16>> {
        while self.buf.len() < n {
            let f = &self.files[self.next % self.files.len()];
            self.next += 1;
            self.buf.extend(read_s16_mono(f, self.rate)?);
        }
        Ok(self.buf.drain(..n).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back() {
        let dir = std::env::temp_dir().join(format!("lalm-tools-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("x.wav");
        let samples: Vec<i16> = (0..1001).map(|i| (i * 37 - 16000) as i16).collect();
        write_s16_mono(&path, 16000, &samples).expect("write");
        assert_eq!(read_s16_mono(&path, 16000).expect("read"), samples);
        let err = read_s16_mono(&path, 48000).expect_err("wrong rate");
        assert!(err.to_string().contains("48000 Hz"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn broken_files_are_errors() {
        assert!(parse_s16_mono(b"", 16000).is_err());
        assert!(parse_s16_mono(b"RIFF\0\0\0\0WAVEdata\xff\xff\xff\xff", 16000).is_err());
        // A chunk length near usize::MAX must not overflow the walk.
        let mut b = b"RIFF\0\0\0\0WAVEjunk".to_vec();
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_s16_mono(&b, 16000), Err("no data chunk".into()));
    }
}

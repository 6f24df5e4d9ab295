//! Sample counts and nanoseconds. Positions are kept as sample counts and only turned into
//! time at the edge, so no rounding error accumulates over hours of audio.

pub const NS_PER_SECOND: u64 = 1_000_000_000;

/// Nanoseconds from the stream origin to sample `n` at `rate`, rounded down; `u64::MAX` when
/// the time does not fit (a position past about 584 years, or one read from a corrupt meta).
/// Saturating, not truncating: a truncated time would put a late sample near the origin.
pub fn samples_to_ns(n: u64, rate: u32) -> u64 {
    let ns = (n as u128 * NS_PER_SECOND as u128) / rate.max(1) as u128;
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// The sample whose start is nearest to `ns` at `rate`. It can exceed `u64::MAX` only at rates
/// above 1 GHz; it saturates there too, like [`samples_to_ns`].
pub fn ns_to_samples(ns: u64, rate: u32) -> u64 {
    let n = (ns as u128 * rate as u128 + NS_PER_SECOND as u128 / 2) / NS_PER_SECOND as u128;
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Samples in `ms` milliseconds at `rate`, rounded to nearest.
pub fn ms_to_samples(ms: u32, rate: u32) -> u64 {
    (ms as u64 * rate as u64 + 500) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_exact_for_sample_positions() {
        for rate in [8000u32, 16000, 22050, 44100, 48000] {
            for n in [0u64, 1, 159, 160, 12345, 16000 * 3600 * 24 + 7] {
                assert_eq!(
                    ns_to_samples(samples_to_ns(n, rate), rate),
                    n,
                    "rate {rate} n {n}"
                );
            }
        }
    }

    #[test]
    fn huge_positions_saturate_instead_of_wrapping() {
        // u64::MAX samples at 16 kHz is about 1.15e24 ns: the old cast kept the low 64 bits,
        // a time that looked valid and was wrong by centuries.
        assert_eq!(samples_to_ns(u64::MAX, 16000), u64::MAX);
        assert_eq!(samples_to_ns(u64::MAX / 2, 8000), u64::MAX);
        // The last position whose time still fits is exact; the next saturates.
        let last = u64::MAX / NS_PER_SECOND;
        assert_eq!(samples_to_ns(last, 1), last * NS_PER_SECOND);
        assert_eq!(samples_to_ns(last + 1, 1), u64::MAX);
        // Saturation is monotonic: a later sample never maps to an earlier time.
        for rate in [1u32, 8000, 16000, 48000, u32::MAX] {
            let mut prev = 0;
            for n in [0u64, 1, 1 << 40, 1 << 50, 1 << 60, u64::MAX - 1, u64::MAX] {
                let t = samples_to_ns(n, rate);
                assert!(t >= prev, "rate {rate} n {n}: {t} < {prev}");
                prev = t;
            }
        }
        assert_eq!(ns_to_samples(u64::MAX, u32::MAX), u64::MAX);
    }

    #[test]
    fn ms_conversion() {
        assert_eq!(ms_to_samples(400, 16000), 6400);
        assert_eq!(ms_to_samples(32, 16000), 512);
        assert_eq!(ms_to_samples(1, 44100), 44);
    }
}

//! Sample counts and nanoseconds. Positions are kept as sample counts and only turned into
//! time at the edge, so no rounding error accumulates over hours of audio.

pub const NS_PER_SECOND: u64 = 1_000_000_000;

/// Nanoseconds from the stream origin to sample `n` at `rate`, rounded down.
pub fn samples_to_ns(n: u64, rate: u32) -> u64 {
    ((n as u128 * NS_PER_SECOND as u128) / rate.max(1) as u128) as u64
}

/// The sample whose start is nearest to `ns` at `rate`.
pub fn ns_to_samples(ns: u64, rate: u32) -> u64 {
    ((ns as u128 * rate as u128 + NS_PER_SECOND as u128 / 2) / NS_PER_SECOND as u128) as u64
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
    fn ms_conversion() {
        assert_eq!(ms_to_samples(400, 16000), 6400);
        assert_eq!(ms_to_samples(32, 16000), 512);
        assert_eq!(ms_to_samples(1, 44100), 44);
    }
}

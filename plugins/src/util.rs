//! Small helpers the elements share.

use soundflow::time::samples_to_ns;

/// Mono samples as f32, from F32LE or S16LE bytes.
pub fn to_f32(data: &[u8], s16: bool, out: &mut Vec<f32>) {
    out.clear();
    if s16 {
        out.extend(
            data.chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0),
        );
    } else {
        out.extend(
            data.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    }
}

pub fn clock(samples: u64, rate: u32) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(samples_to_ns(samples, rate))
}

/// Structure of a stream-time span, with running time too, for bus messages.
pub fn stream_times(
    segment: &gst::FormattedSegment<gst::ClockTime>,
    start: gst::ClockTime,
    end: gst::ClockTime,
) -> (u64, u64, u64) {
    let st = segment
        .to_stream_time(start)
        .map(|t| t.nseconds())
        .unwrap_or(start.nseconds());
    let et = segment
        .to_stream_time(end)
        .map(|t| t.nseconds())
        .unwrap_or(end.nseconds());
    let rt = segment
        .to_running_time(start)
        .map(|t| t.nseconds())
        .unwrap_or(start.nseconds());
    (st, et, rt)
}

#[cfg(test)]
mod tests {
    #[test]
    fn s16_and_f32_conversion() {
        let mut out = Vec::new();
        super::to_f32(&[0x00, 0x40, 0x00, 0xc0], true, &mut out);
        assert_eq!(out, vec![0.5, -0.5]);
        super::to_f32(&1.5f32.to_le_bytes(), false, &mut out);
        assert_eq!(out, vec![1.5]);
    }
}

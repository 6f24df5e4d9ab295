//! Small helpers the elements share.

use soundflow::base::time::samples_to_ns;

/// Mono F32LE or S16LE audio at any rate: what the loop's elements pass between them.
pub fn mono_audio_caps() -> gst::Caps {
    gst_audio::AudioCapsBuilder::new_interleaved()
        .format_list([gst_audio::AudioFormat::F32le, gst_audio::AudioFormat::S16le])
        .channels(1)
        .build()
}

/// UTF-8 text, the responses' format.
pub fn text_caps() -> gst::Caps {
    gst::Caps::builder("text/x-raw")
        .field("format", "utf8")
        .build()
}

/// An always "sink" and an always "src" pad template.
pub fn always_templates(sink: &gst::Caps, src: &gst::Caps) -> Vec<gst::PadTemplate> {
    [
        ("sink", gst::PadDirection::Sink, sink),
        ("src", gst::PadDirection::Src, src),
    ]
    .into_iter()
    .map(|(name, dir, caps)| {
        gst::PadTemplate::new(name, dir, gst::PadPresence::Always, caps)
            .expect("static pad template is valid")
    })
    .collect()
}

/// The samples of a chunk that were not in the previous one, as f32 into `out`; returns the
/// stream position of the first. Without a chunk meta the whole buffer counts, placed by
/// its timestamp.
pub fn new_chunk_samples(
    buf: &gst::BufferRef,
    rate: u32,
    s16: bool,
    out: &mut Vec<f32>,
) -> Result<u64, gst::FlowError> {
    let bytes = if s16 { 2 } else { 4 };
    let (start, skip, valid) = match crate::meta::chunk_info(buf) {
        // Saturating: the start comes from a meta any upstream element can write.
        Some(c) => (
            c.start.saturating_add(c.overlap as u64),
            c.overlap as usize,
            c.valid as usize,
        ),
        None => (
            buf.pts()
                .map(|t| soundflow::base::time::ns_to_samples(t.nseconds(), rate))
                .unwrap_or(0),
            0,
            buf.size() / bytes,
        ),
    };
    let map = buf.map_readable().map_err(|_| gst::FlowError::Error)?;
    let data = map.as_slice();
    let from = (skip * bytes).min(data.len());
    let to = (valid * bytes).min(data.len()).max(from);
    to_f32(&data[from..to], s16, out);
    Ok(start)
}

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

/// The time of stream position `samples` at `rate`, saturating at `ClockTime::MAX`: a position
/// past the clock's range (one a meta can carry, up to `u64::MAX`) must not become
/// `GST_CLOCK_TIME_NONE`, which `ClockTime::from_nseconds` refuses with a panic.
/// Whether the stream into `sinkpad` comes from a live source (its peer answers the latency
/// query as live).
pub fn upstream_is_live(sinkpad: &gst::Pad) -> bool {
    use gst::prelude::*;
    let mut q = gst::query::Latency::new();
    sinkpad.peer_query(&mut q) && q.result().0
}

pub fn clock(samples: u64, rate: u32) -> gst::ClockTime {
    let ns = samples_to_ns(samples, rate).min(gst::ClockTime::MAX.nseconds());
    gst::ClockTime::from_nseconds(ns)
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
    use soundflow::base::framing::Chunk;

    #[test]
    fn clock_saturates_instead_of_panicking() {
        // u64::MAX ns is GST_CLOCK_TIME_NONE: the time of the last sample at 1 GHz panicked.
        assert_eq!(super::clock(u64::MAX, 1_000_000_000), gst::ClockTime::MAX);
        // Beyond the range at an audio rate the time was truncated to a wrong, small one.
        assert_eq!(super::clock(u64::MAX, 16000), gst::ClockTime::MAX);
        assert_eq!(super::clock(u64::MAX / 2, 1), gst::ClockTime::MAX);
        // In range nothing changes.
        assert_eq!(super::clock(16000, 16000), gst::ClockTime::SECOND);
        let max = gst::ClockTime::MAX.nseconds();
        assert_eq!(super::clock(max, 1_000_000_000).nseconds(), max);
    }

    #[test]
    fn a_meta_at_the_last_position_does_not_overflow() {
        gst::init().unwrap();
        crate::meta::register();
        let chunk = Chunk {
            start: u64::MAX,
            data: vec![0; 8],
            valid: 4,
            overlap: 2,
            discont: false,
            padded: false,
            index: 0,
        };
        let mut buf = gst::Buffer::from_mut_slice(vec![0u8; 8]);
        let b = buf.get_mut().unwrap();
        crate::meta::add_structure(
            b,
            crate::meta::CHUNK_META,
            crate::meta::chunk_structure(&chunk, 16000),
        )
        .unwrap();
        let mut out = Vec::new();
        let start = super::new_chunk_samples(&buf, 16000, true, &mut out).unwrap();
        assert_eq!(start, u64::MAX);
        assert_eq!(out.len(), 2);
        let end = super::clock(start.saturating_add(out.len() as u64), 16000);
        assert_eq!(end, gst::ClockTime::MAX);
        assert!(buf.pts().is_none());
    }

    #[test]
    fn s16_and_f32_conversion() {
        let mut out = Vec::new();
        super::to_f32(&[0x00, 0x40, 0x00, 0xc0], true, &mut out);
        assert_eq!(out, vec![0.5, -0.5]);
        super::to_f32(&1.5f32.to_le_bytes(), false, &mut out);
        assert_eq!(out, vec![1.5]);
    }
}

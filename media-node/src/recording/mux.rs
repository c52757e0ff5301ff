//! Frames of a room into WebM (libwebm's muxer, live mode: no seeking, so the bytes can
//! stream to the sealer as they are produced).
//!
//! Tracks must be declared before the first frame. The muxer gathers frames until every
//! track it has seen can start (video from a keyframe) or [`GATHER_LIMIT`] passes, then
//! declares those tracks. Tracks that appear later, and codecs WebM cannot carry (H.264,
//! G.711, ...), are not recorded and are counted in [`Muxer::skipped`].

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sanctum_media_core::RecordedFrame;
use sanctum_media_core::str0m::format::Codec;
use sanctum_media_core::str0m::media::MediaKind;
use webm::mux::{AudioCodecId, SegmentBuilder, SegmentMode, VideoCodecId, Writer};

/// Longest wait for every track's first usable frame before the tracks are declared.
pub const GATHER_LIMIT: Duration = Duration::from_secs(3);
/// Shortest gathering, so a second publisher's first frames are not missed.
pub const GATHER_MIN: Duration = Duration::from_millis(500);
/// Media type of the container.
pub const CONTENT_TYPE: &str = "video/webm";

/// Why muxing failed.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    /// libwebm refused a track, a frame or the finalization.
    #[error("the WebM muxer failed: {0}")]
    Webm(String),
    /// The recording ended before any frame could be recorded.
    #[error("no recordable media arrived")]
    Empty,
}

/// Bytes the muxer wrote and the caller has not taken yet.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct TrackState {
    number: u64,
    /// RTP ticks and container time (ns) of the track's first recorded frame.
    base_ticks: u64,
    base_ns: u64,
    clock_rate: u32,
}

/// Turns recorded frames into WebM bytes; see the module docs.
pub struct Muxer {
    start: Option<Instant>,
    gathered: Vec<RecordedFrame>,
    segment: Option<webm::mux::Segment<Sink>>,
    sink: Sink,
    tracks: BTreeMap<u64, TrackState>,
    last_ns: u64,
    frames: u64,
    skipped: u64,
}

impl Default for Muxer {
    fn default() -> Self {
        Self::new()
    }
}

impl Muxer {
    /// A muxer waiting for its first frame.
    pub fn new() -> Self {
        Muxer {
            start: None,
            gathered: Vec::new(),
            segment: None,
            sink: Sink::default(),
            tracks: BTreeMap::new(),
            last_ns: 0,
            frames: 0,
            skipped: 0,
        }
    }

    /// Frames written to the container.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Frames not recorded (late tracks, unsupported codecs, video before a keyframe).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Container bytes produced since the last call.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut *self.sink.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Adds one frame; `now` drives the end of gathering.
    pub fn push(&mut self, frame: RecordedFrame, now: Instant) -> Result<(), MuxError> {
        if self.segment.is_some() {
            return self.write(&frame);
        }
        if container_codec(frame.codec).is_none() {
            self.skipped += 1;
            return Ok(());
        }
        let start = *self.start.get_or_insert(frame.arrival);
        self.gathered.push(frame);
        let waited = now.saturating_duration_since(start);
        if waited >= GATHER_LIMIT || (waited >= GATHER_MIN && self.all_tracks_can_start()) {
            self.declare()?;
        }
        Ok(())
    }

    /// Declares the tracks if still gathering at `now` past the limit (called on idle ticks).
    pub fn tick(&mut self, now: Instant) -> Result<(), MuxError> {
        if self.segment.is_none()
            && self
                .start
                .is_some_and(|s| now.saturating_duration_since(s) >= GATHER_LIMIT)
        {
            self.declare()?;
        }
        Ok(())
    }

    /// Ends the container; the remaining bytes follow through [`Muxer::take_output`].
    pub fn finish(mut self) -> Result<Vec<u8>, MuxError> {
        if self.segment.is_none() && !self.gathered.is_empty() {
            self.declare()?;
        }
        let segment = self.segment.take().ok_or(MuxError::Empty)?;
        if self.frames == 0 {
            return Err(MuxError::Empty);
        }
        segment
            .finalize(None)
            .map_err(|_| MuxError::Webm("finalize".into()))?;
        Ok(self.take_output())
    }

    fn all_tracks_can_start(&self) -> bool {
        let mut ready: BTreeMap<u64, bool> = BTreeMap::new();
        for f in &self.gathered {
            let ok = f.kind == MediaKind::Audio || f.keyframe;
            *ready.entry(f.track).or_default() |= ok;
        }
        ready.values().all(|r| *r)
    }

    fn declare(&mut self) -> Result<(), MuxError> {
        let webm_err = |what: &str| MuxError::Webm(what.to_string());
        let writer = Writer::new_non_seek(self.sink.clone());
        let mut builder = SegmentBuilder::new(writer)
            .map_err(|_| webm_err("segment"))?
            .set_mode(SegmentMode::Live)
            .map_err(|_| webm_err("live mode"))?
            .set_writing_app("sanctum-media-node")
            .map_err(|_| webm_err("writing app"))?;
        let gathered = std::mem::take(&mut self.gathered);
        let start = self.start.unwrap_or_else(Instant::now);
        let mut declared: Vec<u64> = Vec::new();
        for f in &gathered {
            if declared.contains(&f.track) {
                continue;
            }
            // A video track starts at its first keyframe; without one it is not recorded.
            let first = match f.kind {
                MediaKind::Video => gathered.iter().find(|g| g.track == f.track && g.keyframe),
                MediaKind::Audio => Some(f),
            };
            let Some(first) = first else { continue };
            let number = match (f.kind, container_codec(f.codec)) {
                (MediaKind::Video, Some(Container::Video(codec))) => {
                    let (w, h) = vp8_dimensions(f.codec, &first.data).unwrap_or((640, 480));
                    let (b, track) = builder
                        .add_video_track(w, h, codec, None)
                        .map_err(|_| webm_err("video track"))?;
                    builder = b;
                    track.into()
                }
                (MediaKind::Audio, Some(Container::Audio(codec))) => {
                    let channels = u32::from(first.channels.unwrap_or(2));
                    let (b, track) = builder
                        .add_audio_track(first.clock_rate, channels, codec, None)
                        .map_err(|_| webm_err("audio track"))?;
                    builder = b
                        .set_codec_private(track, &opus_head(channels as u8, first.clock_rate))
                        .map_err(|_| webm_err("codec private"))?;
                    track.into()
                }
                _ => continue,
            };
            declared.push(f.track);
            self.tracks.insert(
                f.track,
                TrackState {
                    number,
                    base_ticks: first.ticks,
                    base_ns: first.arrival.saturating_duration_since(start).as_nanos() as u64,
                    clock_rate: first.clock_rate.max(1),
                },
            );
        }
        if self.tracks.is_empty() {
            self.skipped += gathered.len() as u64;
            return Err(MuxError::Empty);
        }
        self.segment = Some(builder.build());
        let mut ordered = gathered;
        ordered.sort_by_key(|f| self.timestamp(f).unwrap_or(0));
        for f in ordered {
            self.write(&f)?;
        }
        Ok(())
    }

    /// Container time of a frame of a declared track, from its RTP time.
    fn timestamp(&self, f: &RecordedFrame) -> Option<u64> {
        let t = self.tracks.get(&f.track)?;
        let ticks = f.ticks.checked_sub(t.base_ticks)?;
        Some(t.base_ns + (u128::from(ticks) * 1_000_000_000 / u128::from(t.clock_rate)) as u64)
    }

    fn write(&mut self, f: &RecordedFrame) -> Result<(), MuxError> {
        let (Some(track), Some(ts)) = (self.tracks.get(&f.track), self.timestamp(f)) else {
            // Undeclared track, or a frame older than the track's first.
            self.skipped += 1;
            return Ok(());
        };
        let number = track.number;
        // WebM needs non-decreasing times across tracks; jitter between tracks is clamped.
        let ts = ts.max(self.last_ns);
        let keyframe = f.kind == MediaKind::Audio || f.keyframe;
        let segment = self.segment.as_mut().ok_or(MuxError::Empty)?;
        segment
            .add_frame(number, &f.data, ts, keyframe)
            .map_err(|_| MuxError::Webm("frame".into()))?;
        self.last_ns = ts;
        self.frames += 1;
        Ok(())
    }
}

enum Container {
    Video(VideoCodecId),
    Audio(AudioCodecId),
}

fn container_codec(codec: Codec) -> Option<Container> {
    match codec {
        Codec::Vp8 => Some(Container::Video(VideoCodecId::VP8)),
        Codec::Vp9 => Some(Container::Video(VideoCodecId::VP9)),
        Codec::Av1 => Some(Container::Video(VideoCodecId::AV1)),
        Codec::Opus => Some(Container::Audio(AudioCodecId::Opus)),
        _ => None,
    }
}

/// Width and height from a VP8 keyframe header (RFC 6386 §9.1), if it is one.
fn vp8_dimensions(codec: Codec, frame: &[u8]) -> Option<(u32, u32)> {
    if codec != Codec::Vp8 || frame.len() < 10 || frame[0] & 1 != 0 {
        return None;
    }
    if frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
    (w > 0 && h > 0).then_some((w, h))
}

/// The Opus identification header Matroska's `CodecPrivate` carries (RFC 7845 §5.1).
fn opus_head(channels: u8, rate: u32) -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1); // version
    h.push(channels);
    h.extend_from_slice(&0u16.to_le_bytes()); // pre-skip
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes()); // output gain
    h.push(0); // mapping family: mono/stereo
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use matroska_demuxer::{Frame, MatroskaFile, TrackType};

    fn frame(track: u64, kind: MediaKind, n: u32, at: Instant, keyframe: bool) -> RecordedFrame {
        let (codec, rate, step) = match kind {
            MediaKind::Video => (Codec::Vp8, 90_000, 3000),
            MediaKind::Audio => (Codec::Opus, 48_000, 960),
        };
        let mut data = format!("{track}:{n}:").into_bytes();
        data.resize(200, 0xAB);
        RecordedFrame {
            room: "r".into(),
            track,
            kind,
            codec,
            channels: (kind == MediaKind::Audio).then_some(2),
            ticks: 1_000_000 + u64::from(n) * step,
            clock_rate: rate,
            arrival: at,
            keyframe,
            data: data.into(),
        }
    }

    #[test]
    fn frames_round_trip_through_webm() {
        let t0 = Instant::now();
        let mut m = Muxer::new();
        let mut out = Vec::new();
        // 3 s of 30 fps video (keyframe every 30) and 50 pps audio, interleaved by time.
        for i in 0..150u32 {
            let at = t0 + Duration::from_millis(u64::from(i) * 20);
            m.push(frame(2, MediaKind::Audio, i, at, false), at)
                .expect("audio");
            if i % 5 < 3 {
                let n = i / 5 * 3 + i % 5;
                m.push(frame(1, MediaKind::Video, n, at, n % 30 == 0), at)
                    .expect("video");
            }
            out.extend(m.take_output());
        }
        // A late track and an unsupported codec are skipped, not fatal.
        let late = t0 + Duration::from_secs(4);
        m.push(frame(9, MediaKind::Audio, 0, late, false), late)
            .expect("late");
        let mut h264 = frame(1, MediaKind::Video, 999, late, true);
        h264.codec = Codec::H264;
        h264.track = 10;
        m.push(h264, late).expect("h264");
        let (written, skipped) = (m.frames(), m.skipped());
        out.extend(m.finish().expect("finish"));
        assert_eq!(written, 150 + 90);
        assert_eq!(skipped, 2);

        let mut file = MatroskaFile::open(std::io::Cursor::new(out)).expect("parse");
        let kinds: Vec<TrackType> = file.tracks().iter().map(|t| t.track_type()).collect();
        assert_eq!(kinds, vec![TrackType::Audio, TrackType::Video]);
        let mut f = Frame::default();
        let (mut audio, mut video, mut last_ts) = (Vec::new(), Vec::new(), 0);
        while file.next_frame(&mut f).expect("frame") {
            assert!(f.timestamp >= last_ts, "timestamps never go back");
            last_ts = f.timestamp;
            let label = String::from_utf8_lossy(
                &f.data[..f.data.iter().position(|b| *b == 0xAB).expect("label")],
            )
            .to_string();
            let parts: Vec<u32> = label
                .trim_end_matches(':')
                .split(':')
                .map(|p| p.parse().expect("number"))
                .collect();
            match parts[0] {
                1 => video.push(parts[1]),
                2 => audio.push(parts[1]),
                other => panic!("unexpected track {other}"),
            }
        }
        assert_eq!(audio, (0..150).collect::<Vec<_>>());
        assert_eq!(video, (0..90).collect::<Vec<_>>());
    }

    #[test]
    fn video_before_the_first_keyframe_is_not_recorded() {
        let t0 = Instant::now();
        let mut m = Muxer::new();
        for n in 0..40u32 {
            let at = t0 + Duration::from_millis(u64::from(n) * 33);
            m.push(frame(1, MediaKind::Video, n, at, n == 10), at)
                .expect("push");
        }
        assert_eq!(m.frames(), 30);
        assert_eq!(m.skipped(), 10);
        let out = m.finish().expect("finish");
        assert!(!out.is_empty());
    }

    #[test]
    fn nothing_recordable_is_an_error() {
        assert!(matches!(Muxer::new().finish(), Err(MuxError::Empty)));
    }
}

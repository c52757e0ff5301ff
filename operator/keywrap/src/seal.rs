//! The sealed recording format: a header, then the container in AES-256-GCM chunks.
//!
//! Chunks follow the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár, 2015):
//! the nonce of chunk `i` is `prefix(7) || i (u32, big-endian) || last (u8)`, and every
//! chunk authenticates the SHA-256 of the header as associated data. A flipped bit fails
//! that chunk's tag; a dropped, repeated or swapped chunk fails because its index is in
//! the nonce; a truncated object has no chunk with the last flag set; bytes after the
//! last chunk are refused. The data key is fresh per recording and travels in the header
//! only wrapped by the tenant key (AES-256-GCM, associated data naming tenant and
//! recording), so the object alone opens nothing. Layout: `docs/recordings.md`.

use std::io::{Read, Write};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// First bytes of every sealed recording.
pub const MAGIC: &[u8; 8] = b"SNCTMREC";
/// Format version written after the magic.
pub const VERSION: u8 = 1;
/// Plaintext bytes per chunk (the last one may be shorter, even empty).
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Tag length of AES-256-GCM.
const TAG_LEN: usize = 16;
/// Largest header accepted when reading (it holds a wrapped key and a few names).
const MAX_HEADER: usize = 16 * 1024;

/// What the header says; authenticated by every chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// Tenant whose key wrapped the data key.
    pub tenant: String,
    /// Recording id (the `Recording`'s uid): bound into the data-key wrap.
    pub recording: String,
    /// Version of the tenant data key that wrapped this recording's data key.
    pub key_version: i32,
    /// Media type of the plaintext container.
    pub content_type: String,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Hex of the 7-byte nonce prefix.
    pub nonce_prefix: String,
    /// Hex of the data key sealed under the tenant key: nonce, ciphertext, tag.
    pub wrapped_data_key: String,
}

/// Why a sealed recording cannot be read (or a key cannot be used).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// Not a sealed recording, or an unknown version.
    #[error("not a sealed recording (bad magic or version)")]
    NotSealed,
    /// The header is malformed.
    #[error("the recording header is malformed: {0}")]
    Header(String),
    /// The tenant key does not open the data key: wrong tenant, key version or key.
    #[error(
        "the tenant key (version {0}) does not open this recording's data key: wrong tenant or key"
    )]
    WrongKey(i32),
    /// A chunk failed authentication: altered, reordered or from another recording.
    #[error("chunk {0} failed authentication: the recording was altered or reordered")]
    Tampered(u32),
    /// The object ends before its last chunk.
    #[error("the recording is truncated after {0} chunks")]
    Truncated(u32),
    /// Bytes follow the last chunk.
    #[error("unexpected bytes after the last chunk")]
    TrailingData,
    /// A key had the wrong length or the random source failed.
    #[error("crypto failure: {0}")]
    Crypto(&'static str),
    /// Reading or writing failed.
    #[error("I/O error: {0}")]
    Io(String),
    /// More than 2^32 chunks.
    #[error("the recording is too long for one object")]
    TooLong,
}

fn aead_key(key: &[u8]) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Crypto("key must be 32 bytes"))
}

fn wrap_aad(tenant: &str, recording: &str) -> Vec<u8> {
    format!("sanctum:recording-data-key:{tenant}/{recording}").into_bytes()
}

fn chunk_nonce(prefix: &[u8; 7], index: u32, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// Encrypts a stream: [`Sealer::push`] plaintext as it comes, [`Sealer::finish`] once.
/// Output is appended to a caller buffer so the caller decides when to upload it.
pub struct Sealer {
    key: LessSafeKey,
    prefix: [u8; 7],
    aad: [u8; 32],
    index: u32,
    pending: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("index", &self.index)
            .finish()
    }
}

impl Sealer {
    /// Makes a fresh data key, wraps it under `tenant_key`, and writes the header to `out`.
    pub fn start(
        tenant_key: &[u8],
        tenant: &str,
        recording: &str,
        key_version: i32,
        content_type: &str,
        out: &mut Vec<u8>,
    ) -> Result<(Self, Header), SealError> {
        let mut data_key = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(&mut data_key[..]).map_err(|_| SealError::Crypto("no randomness"))?;
        let mut prefix = [0u8; 7];
        aws_lc_rs::rand::fill(&mut prefix).map_err(|_| SealError::Crypto("no randomness"))?;
        let mut wrap_nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut wrap_nonce).map_err(|_| SealError::Crypto("no randomness"))?;
        let mut wrapped = data_key.to_vec();
        aead_key(tenant_key)?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(wrap_nonce),
                Aad::from(wrap_aad(tenant, recording)),
                &mut wrapped,
            )
            .map_err(|_| SealError::Crypto("data key wrap"))?;
        let mut wrapped_with_nonce = wrap_nonce.to_vec();
        wrapped_with_nonce.extend_from_slice(&wrapped);
        let header = Header {
            tenant: tenant.to_string(),
            recording: recording.to_string(),
            key_version,
            content_type: content_type.to_string(),
            chunk_size: CHUNK_SIZE as u32,
            nonce_prefix: hex::encode(prefix),
            wrapped_data_key: hex::encode(wrapped_with_nonce),
        };
        let header_bytes = encode_header(&header)?;
        out.extend_from_slice(&header_bytes);
        let sealer = Sealer {
            key: aead_key(&data_key[..])?,
            prefix,
            aad: Sha256::digest(&header_bytes).into(),
            index: 0,
            pending: Zeroizing::new(Vec::with_capacity(CHUNK_SIZE)),
        };
        Ok((sealer, header))
    }

    /// Takes plaintext; appends every chunk that is now full to `out`.
    pub fn push(&mut self, mut plain: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        while !plain.is_empty() {
            let take = (CHUNK_SIZE - self.pending.len()).min(plain.len());
            self.pending.extend_from_slice(&plain[..take]);
            plain = &plain[take..];
            // A full chunk is only sealed once more data shows it is not the last one.
            if self.pending.len() == CHUNK_SIZE && !plain.is_empty() {
                self.seal_chunk(false, out)?;
            }
        }
        Ok(())
    }

    /// Seals what is pending as the last chunk; `out` then holds the end of the object.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<u32, SealError> {
        self.seal_chunk(true, out)?;
        Ok(self.index)
    }

    /// Plaintext bytes pushed but not yet sealed.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn seal_chunk(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), SealError> {
        let nonce = chunk_nonce(&self.prefix, self.index, last);
        let sealed_len = self.pending.len() + AES_256_GCM.tag_len();
        let len = u32::try_from(sealed_len).map_err(|_| SealError::TooLong)?;
        // Encrypted in place at the end of `out`: no intermediate buffer per chunk.
        out.reserve(4 + sealed_len);
        out.extend_from_slice(&len.to_be_bytes());
        let body = out.len();
        out.extend_from_slice(&self.pending);
        self.pending.clear();
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(&self.aad), &mut out[body..])
            .map_err(|_| SealError::Crypto("chunk seal"))?;
        out.extend_from_slice(tag.as_ref());
        self.index = self.index.checked_add(1).ok_or(SealError::TooLong)?;
        Ok(())
    }
}

fn encode_header(header: &Header) -> Result<Vec<u8>, SealError> {
    let json = serde_json::to_vec(header).map_err(|e| SealError::Header(e.to_string()))?;
    let len = u16::try_from(json.len()).map_err(|_| SealError::Header("too long".into()))?;
    let mut out = MAGIC.to_vec();
    out.push(VERSION);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// Reads the header of a sealed object; returns it and the offset of the first chunk.
pub fn read_header(sealed: &[u8]) -> Result<(Header, usize), SealError> {
    let mut cursor = std::io::Cursor::new(sealed);
    let (header, raw) = read_header_from(&mut cursor)?;
    Ok((header, raw.len()))
}

/// Reads the header from a stream; returns it and its raw bytes (the chunks' associated data).
pub fn read_header_from(input: &mut impl Read) -> Result<(Header, Vec<u8>), SealError> {
    let mut fixed = [0u8; MAGIC.len() + 3];
    read_full(input, &mut fixed)?
        .then_some(())
        .ok_or(SealError::NotSealed)?;
    if &fixed[..MAGIC.len()] != MAGIC || fixed[MAGIC.len()] != VERSION {
        return Err(SealError::NotSealed);
    }
    let at = MAGIC.len() + 1;
    let len = usize::from(u16::from_be_bytes([fixed[at], fixed[at + 1]]));
    if len > MAX_HEADER {
        return Err(SealError::Header("length out of range".into()));
    }
    let mut json = vec![0u8; len];
    if !read_full(input, &mut json)? {
        return Err(SealError::Header("truncated header".into()));
    }
    let header: Header =
        serde_json::from_slice(&json).map_err(|e| SealError::Header(e.to_string()))?;
    let mut raw = fixed.to_vec();
    raw.extend_from_slice(&json);
    Ok((header, raw))
}

/// Fills `buf`; false if the stream ended before it was full.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> Result<bool, SealError> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(SealError::Io(e.to_string())),
        }
    }
    Ok(true)
}

/// What [`open_to`] verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The header.
    pub header: Header,
    /// Chunks verified.
    pub chunks: u32,
    /// Plaintext bytes written.
    pub bytes: u64,
}

/// Opens the data key of `header` with the plaintext tenant key of its version.
pub fn open_data_key(tenant_key: &[u8], header: &Header) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let wrapped = hex::decode(&header.wrapped_data_key)
        .map_err(|_| SealError::Header("wrapped data key".into()))?;
    if wrapped.len() != NONCE_LEN + 32 + TAG_LEN {
        return Err(SealError::Header("wrapped data key length".into()));
    }
    let (wrap_nonce, wrapped) = wrapped.split_at(NONCE_LEN);
    let mut data_key = Zeroizing::new(wrapped.to_vec());
    let opened = aead_key(tenant_key)?
        .open_in_place(
            Nonce::try_assume_unique_for_key(wrap_nonce)
                .map_err(|_| SealError::Header("wrap nonce".into()))?,
            Aad::from(wrap_aad(&header.tenant, &header.recording)),
            &mut data_key,
        )
        .map_err(|_| SealError::WrongKey(header.key_version))?
        .len();
    data_key.truncate(opened);
    Ok(data_key)
}

/// Streams a sealed object from `input` to `output`, verifying every chunk, the order and
/// the end. `tenant_key` is the plaintext tenant key of the header's key version; use
/// [`read_header_from`] first and pass the header and its raw bytes when the version is
/// needed to pick the key. Output written before an error is not to be trusted: callers
/// write to a temporary place and keep it only on success.
pub fn open_to(
    tenant_key: &[u8],
    header: Header,
    raw_header: &[u8],
    input: &mut impl Read,
    output: &mut impl Write,
) -> Result<Opened, SealError> {
    let aad: [u8; 32] = Sha256::digest(raw_header).into();
    let prefix: [u8; 7] = hex::decode(&header.nonce_prefix)
        .ok()
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| SealError::Header("nonce prefix".into()))?;
    let key = aead_key(&open_data_key(tenant_key, &header)?)?;
    let mut buf = Zeroizing::new(Vec::with_capacity(header.chunk_size as usize + TAG_LEN));
    let mut chunk = Vec::with_capacity(header.chunk_size as usize + TAG_LEN);
    let (mut index, mut bytes) = (0u32, 0u64);
    loop {
        let mut len = [0u8; 4];
        if !read_full(input, &mut len)? {
            return Err(SealError::Truncated(index));
        }
        let len = u32::from_be_bytes(len) as usize;
        if len < TAG_LEN || len > header.chunk_size as usize + TAG_LEN {
            return Err(SealError::Tampered(index));
        }
        chunk.resize(len, 0);
        if !read_full(input, &mut chunk)? {
            return Err(SealError::Truncated(index));
        }
        // A chunk sealed as last only opens with the last flag, and the reverse.
        let mut last = false;
        buf.clear();
        buf.extend_from_slice(&chunk);
        let opened = match key.open_in_place(
            chunk_nonce(&prefix, index, false),
            Aad::from(&aad),
            &mut buf,
        ) {
            Ok(p) => p.len(),
            Err(_) => {
                buf.clear();
                buf.extend_from_slice(&chunk);
                last = true;
                key.open_in_place(chunk_nonce(&prefix, index, true), Aad::from(&aad), &mut buf)
                    .map_err(|_| SealError::Tampered(index))?
                    .len()
            }
        };
        output
            .write_all(&buf[..opened])
            .map_err(|e| SealError::Io(e.to_string()))?;
        bytes += opened as u64;
        index = index.checked_add(1).ok_or(SealError::TooLong)?;
        if last {
            break;
        }
    }
    let mut extra = [0u8; 1];
    if read_full(input, &mut extra)? {
        return Err(SealError::TrailingData);
    }
    Ok(Opened {
        header,
        chunks: index,
        bytes,
    })
}

/// Opens a whole sealed object held in memory; see [`open_to`].
pub fn open(tenant_key: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let mut input = std::io::Cursor::new(sealed);
    let (header, raw) = read_header_from(&mut input)?;
    let mut plain = Zeroizing::new(Vec::with_capacity(sealed.len()));
    open_to(tenant_key, header, &raw, &mut input, &mut *plain)?;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Vec<u8> {
        (0u8..32).collect()
    }

    fn seal(plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut s, _) =
            Sealer::start(&key(), "clinic-a", "rec-1", 3, "video/webm", &mut out).expect("start");
        // Uneven pushes exercise chunk boundaries.
        for part in plain.chunks(10_007) {
            s.push(part, &mut out).expect("push");
        }
        s.finish(&mut out).expect("finish");
        out
    }

    /// Offsets (start, total length incl. length prefix) of each chunk.
    fn chunks(sealed: &[u8]) -> Vec<(usize, usize)> {
        let (_, mut at) = read_header(sealed).expect("header");
        let mut out = Vec::new();
        while at < sealed.len() {
            let len = u32::from_be_bytes(sealed[at..at + 4].try_into().expect("4 bytes")) as usize;
            out.push((at, 4 + len));
            at += 4 + len;
        }
        out
    }

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trip_at_and_around_chunk_boundaries() {
        for n in [
            0,
            1,
            CHUNK_SIZE - 1,
            CHUNK_SIZE,
            CHUNK_SIZE + 1,
            3 * CHUNK_SIZE + 5,
        ] {
            let plain = sample(n);
            let sealed = seal(&plain);
            assert_eq!(
                &open(&key(), &sealed).expect("open")[..],
                &plain[..],
                "n={n}"
            );
            let (header, _) = read_header(&sealed).expect("header");
            assert_eq!(header.key_version, 3);
            assert_eq!(header.recording, "rec-1");
        }
    }

    #[test]
    fn ciphertext_does_not_contain_the_plaintext() {
        let plain = b"PLAINTEXT-MARKER-".repeat(5000);
        let sealed = seal(&plain);
        assert!(!sealed.windows(17).any(|w| w == b"PLAINTEXT-MARKER-"));
    }

    #[test]
    fn flipped_bit_is_detected() {
        let mut sealed = seal(&sample(3 * CHUNK_SIZE));
        let (start, _) = chunks(&sealed)[1];
        sealed[start + 100] ^= 0x01;
        assert_eq!(
            open(&key(), &sealed).expect_err("must be refused"),
            SealError::Tampered(1)
        );
    }

    #[test]
    fn header_change_is_detected() {
        let sealed = seal(&sample(1000));
        // Same header with another content type: every chunk's associated data changes.
        let (mut header, at) = read_header(&sealed).expect("header");
        header.content_type = "video/x-matroska".into();
        let mut forged = encode_header(&header).expect("encode");
        forged.extend_from_slice(&sealed[at..]);
        assert_eq!(
            open(&key(), &forged).expect_err("must be refused"),
            SealError::Tampered(0)
        );
    }

    #[test]
    fn dropped_chunk_is_detected() {
        let sealed = seal(&sample(3 * CHUNK_SIZE + 10));
        let c = chunks(&sealed);
        let mut dropped = sealed[..c[1].0].to_vec();
        dropped.extend_from_slice(&sealed[c[2].0..]);
        assert_eq!(
            open(&key(), &dropped).expect_err("must be refused"),
            SealError::Tampered(1)
        );
    }

    #[test]
    fn swapped_chunks_are_detected() {
        let sealed = seal(&sample(3 * CHUNK_SIZE + 10));
        let c = chunks(&sealed);
        let mut swapped = sealed[..c[1].0].to_vec();
        swapped.extend_from_slice(&sealed[c[2].0..c[2].0 + c[2].1]);
        swapped.extend_from_slice(&sealed[c[1].0..c[1].0 + c[1].1]);
        swapped.extend_from_slice(&sealed[c[3].0..]);
        assert_eq!(
            open(&key(), &swapped).expect_err("must be refused"),
            SealError::Tampered(1)
        );
    }

    #[test]
    fn truncation_is_detected() {
        let sealed = seal(&sample(3 * CHUNK_SIZE + 10));
        let c = chunks(&sealed);
        // Cut at a chunk boundary: every remaining chunk is intact, but none is the last.
        let cut = &sealed[..c[2].0];
        assert_eq!(
            open(&key(), cut).expect_err("must be refused"),
            SealError::Truncated(2)
        );
        // Cut inside a chunk.
        let cut = &sealed[..sealed.len() - 5];
        assert_eq!(
            open(&key(), cut).expect_err("must be refused"),
            SealError::Truncated(3)
        );
        // Extra bytes after the last chunk.
        let mut longer = sealed.clone();
        longer.extend_from_slice(b"x");
        assert_eq!(
            open(&key(), &longer).expect_err("must be refused"),
            SealError::TrailingData
        );
    }

    #[test]
    fn wrong_tenant_key_fails() {
        let sealed = seal(&sample(100));
        let other = vec![7u8; 32];
        assert_eq!(
            open(&other, &sealed).expect_err("must be refused"),
            SealError::WrongKey(3)
        );
    }

    #[test]
    fn data_key_is_bound_to_tenant_and_recording() {
        let sealed = seal(&sample(100));
        let (mut header, at) = read_header(&sealed).expect("header");
        header.recording = "rec-2".into();
        let mut moved = encode_header(&header).expect("encode");
        moved.extend_from_slice(&sealed[at..]);
        assert_eq!(
            open(&key(), &moved).expect_err("must be refused"),
            SealError::WrongKey(3)
        );
    }
}

//! Short, stable hex digests for names and change detection; never for secrets.

use sha2::{Digest, Sha256};

/// The first `bytes` bytes of the SHA-256 of `data`, in lowercase hex.
pub fn short_sha256(data: &[u8], bytes: usize) -> String {
    Sha256::digest(data)[..bytes]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_of_the_digest_in_hex() {
        // SHA-256("abc") = ba7816bf...
        assert_eq!(short_sha256(b"abc", 4), "ba7816bf");
        assert_eq!(short_sha256(b"abc", 8).len(), 16);
    }
}

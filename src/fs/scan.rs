//! One streaming pass over a file's content: sha256, line count, line
//! endings and whether it is binary, in bounded memory.

use crate::proto::LineEnding;
use sha2::{Digest, Sha256};
use std::io::Read;

/// A file with a NUL byte in its first 8 KiB is binary (as git and ripgrep
/// decide).
pub(crate) const BINARY_SNIFF_BYTES: usize = 8 * 1024;
/// Size of the buffer files are streamed through.
pub(crate) const CHUNK_BYTES: usize = 64 * 1024;

/// What a full pass learned about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub sha256: String,
    pub bytes: u64,
    /// Lines in the file (a last line without `\n` counts); 0 when binary.
    pub total_lines: u64,
    pub line_ending: LineEnding,
    pub is_binary: bool,
}

#[derive(Default)]
pub(crate) struct Scanner {
    hasher: Sha256,
    bytes: u64,
    newlines: u64,
    crlf: u64,
    prev_cr: bool,
    last: Option<u8>,
    nul_in_head: bool,
    utf8_carry: Vec<u8>,
    utf8_invalid: bool,
}

impl Scanner {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        self.hasher.update(chunk);
        let sniffed = usize::try_from(self.bytes).unwrap_or(usize::MAX);
        if sniffed < BINARY_SNIFF_BYTES {
            let n = chunk.len().min(BINARY_SNIFF_BYTES - sniffed);
            self.nul_in_head |= chunk[..n].contains(&0);
        }
        // memchr finds the newlines; only the byte before each one matters
        // for CRLF (a per-byte loop here was most of a read's time).
        let prev = if self.prev_cr { Some(b'\r') } else { None };
        for i in memchr::memchr_iter(b'\n', chunk) {
            self.newlines += 1;
            let before = if i == 0 { prev } else { Some(chunk[i - 1]) };
            if before == Some(b'\r') {
                self.crlf += 1;
            }
        }
        self.prev_cr = chunk.last() == Some(&b'\r');
        self.feed_utf8(chunk);
        self.bytes += chunk.len() as u64;
        self.last = chunk.last().copied();
    }

    /// Validates UTF-8 across chunk boundaries: an incomplete character at
    /// the end of a chunk (at most 3 bytes) is carried into the next one,
    /// and the chunk itself is validated in place, never copied.
    fn feed_utf8(&mut self, mut chunk: &[u8]) {
        if self.utf8_invalid {
            return;
        }
        if let Some(&lead) = self.utf8_carry.first() {
            let width = match lead {
                0xc2..=0xdf => 2,
                0xe0..=0xef => 3,
                _ => 4,
            };
            let take = (width - self.utf8_carry.len()).min(chunk.len());
            self.utf8_carry.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.utf8_carry.len() < width {
                return;
            }
            if std::str::from_utf8(&self.utf8_carry).is_err() {
                self.utf8_invalid = true;
                return;
            }
            self.utf8_carry.clear();
        }
        if let Err(e) = std::str::from_utf8(chunk) {
            if e.error_len().is_some() {
                self.utf8_invalid = true;
            } else {
                self.utf8_carry = chunk[e.valid_up_to()..].to_vec();
            }
        }
    }

    pub(crate) fn finish(self) -> Summary {
        let is_binary = self.nul_in_head || self.utf8_invalid || !self.utf8_carry.is_empty();
        let line_ending = if is_binary {
            LineEnding::Unspecified
        } else if self.newlines == 0 {
            LineEnding::None
        } else if self.crlf == 0 {
            LineEnding::Lf
        } else if self.crlf == self.newlines {
            LineEnding::Crlf
        } else {
            LineEnding::Mixed
        };
        let total_lines = if is_binary {
            0
        } else {
            self.newlines + u64::from(self.last.is_some_and(|b| b != b'\n'))
        };
        Summary {
            sha256: hex::encode(self.hasher.finalize()),
            bytes: self.bytes,
            total_lines,
            line_ending,
            is_binary,
        }
    }
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Streams `reader` (at most `limit` bytes) through a [`Scanner`].
pub(crate) fn scan_reader(reader: impl Read, limit: u64) -> std::io::Result<Summary> {
    let mut scanner = Scanner::new();
    let mut reader = reader.take(limit);
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        scanner.feed(&buf[..n]);
    }
    Ok(scanner.finish())
}

/// Reads all of `reader`, refusing (with `None`) content over `limit` bytes.
pub(crate) fn read_bounded(reader: impl Read, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Ok(None);
    }
    Ok(Some(data))
}

/// Normalises a client-supplied sha256: lowercase hex, 64 digits.
pub(crate) fn parse_expected_sha(raw: &str) -> Result<Option<String>, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.len() != 64 || !trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "expected_sha256 `{}` is not a 64-digit hex sha256; pass the sha256 returned by read_file",
            raw.escape_debug()
        ));
    }
    Ok(Some(trimmed.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(data: &[u8], chunk: usize) -> Summary {
        let mut s = Scanner::new();
        for part in data.chunks(chunk.max(1)) {
            s.feed(part);
        }
        s.finish()
    }

    #[test]
    fn counts_lines_and_endings() {
        let s = scan(b"a\nb\nc", 2);
        assert_eq!((s.total_lines, s.line_ending), (3, LineEnding::Lf));
        let s = scan(b"a\r\nb\r\n", 1);
        assert_eq!((s.total_lines, s.line_ending), (2, LineEnding::Crlf));
        let s = scan(b"a\r\nb\n", 3);
        assert_eq!(s.line_ending, LineEnding::Mixed);
        let s = scan(b"abc", 3);
        assert_eq!((s.total_lines, s.line_ending), (1, LineEnding::None));
        let s = scan(b"", 3);
        assert_eq!((s.total_lines, s.is_binary), (0, false));
        assert_eq!(s.sha256, sha256_hex(b""));
    }

    #[test]
    fn utf8_split_across_chunks_is_text() {
        let text = "héllo wörld ✓\n".repeat(10);
        for chunk in 1..8 {
            let s = scan(text.as_bytes(), chunk);
            assert!(!s.is_binary, "chunk {chunk}");
            assert_eq!(s.sha256, sha256_hex(text.as_bytes()));
        }
    }

    #[test]
    fn binary_detection() {
        assert!(scan(b"abc\0def", 100).is_binary);
        assert!(scan(&[0xff, 0xfe, b'a'], 1).is_binary);
        // Truncated character at the end.
        assert!(scan(&[b'a', 0xe2, 0x9c], 1).is_binary);
        // A NUL after the first 8 KiB of valid UTF-8 is still text-like
        // to the sniffer, but NUL is valid UTF-8, so it stays text.
        let mut late = vec![b'a'; BINARY_SNIFF_BYTES + 10];
        late.push(0);
        assert!(!scan(&late, 4096).is_binary);
    }

    #[test]
    fn expected_sha_parsing() {
        assert_eq!(parse_expected_sha("").unwrap(), None);
        let sha = sha256_hex(b"x");
        assert_eq!(parse_expected_sha(&sha.to_uppercase()).unwrap(), Some(sha));
        assert!(parse_expected_sha("abc").is_err());
    }
}

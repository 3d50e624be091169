//! ReadFile: a line window or a byte window of one regular file.
//!
//! Memory stays bounded by the response cap plus a 64 KiB buffer whatever
//! the file's size. A byte window reads only its own bytes (pread). The
//! whole-file facts every response carries (`sha256`, `total_lines`,
//! `line_ending`) come from the window itself when it is the whole file,
//! else from [`super::file_facts`]: one streaming pass, remembered by file
//! identity, so paging through a file streams it once, not once a window.
//! For files over `max_file_bytes` they are not computed at all: `sha256` is
//! empty, `total_lines` is 0 and `line_ending` is unspecified. A line window
//! streams the file from its start up to the window (to the end when the
//! facts are not known yet), so it is refused with `TOO_LARGE` for files
//! over `max_file_bytes`.
//!
//! A binary file (a NUL in its first 8 KiB, or not valid UTF-8) is returned
//! as raw `data` with `encoding = "binary"`; a line window on one returns the
//! first bytes of the file as a byte window from offset 0.

use super::Outcome;
use super::access::{check_hardlink, precheck, require};
use super::file_facts;
use super::meta::{Kind, Meta};
use super::oserror::{io_error, os_error};
use super::path::RelPath;
use super::resolve::{Follow, not_regular, open_regular, resolve};
use super::scan::{BINARY_SNIFF_BYTES, CHUNK_BYTES, Scanner, Summary};
use crate::error::{Reason, ToolError, ToolResult};
use crate::policy::{Access, Limits, WorkspacePolicy};
use crate::proto::read_file_request::Window;
use crate::proto::{LineEnding, ReadFileRequest, ReadFileResponse};
use std::fs::File;
use std::io::Read;

/// Lines returned when the request does not say.
pub const DEFAULT_LINE_LIMIT: u64 = 2000;

pub fn read_file(
    ws: &WorkspacePolicy,
    limits: &Limits,
    req: &ReadFileRequest,
) -> ToolResult<Outcome<ReadFileResponse>> {
    let rel = RelPath::parse_entry_in(&ws.path, &req.path)?;
    precheck(ws, Access::Read, &rel.to_path_string())?;
    let res = resolve(ws, &rel, Follow::Last)?;
    let path = res.path();
    let rule = require(
        ws,
        Access::Read,
        &res.lexical,
        &path,
        res.kind() == Some(Kind::Dir),
    )?;
    match res.kind() {
        Some(Kind::File) => {}
        Some(kind) => return Err(not_regular(&path, kind)),
        None => return Err(os_error("read", &path, rustix::io::Errno::NOENT)),
    }
    let (file, meta) = open_regular(ws, &path)?;
    check_hardlink(ws, &meta, &path, Access::Read)?;

    let cap = response_cap(limits, req.max_bytes);
    let mut response = match &req.window {
        Some(Window::Bytes(w)) => read_bytes(&file, &meta, limits, cap, w.offset, w.limit),
        Some(Window::Lines(w)) => read_lines(&file, &meta, limits, cap, w.offset, w.limit),
        None => read_lines(&file, &meta, limits, cap, 0, 0),
    }
    .map_err(|e| match e {
        ReadError::Io(e) => io_error("read", &path, &e),
        ReadError::Tool(e) => e.with("path", &path),
    })?;
    response.path = path;
    response.total_bytes = meta.size;
    response.mtime = Some(meta.mtime());
    Ok(Outcome::new(response, rule))
}

enum ReadError {
    Io(std::io::Error),
    Tool(ToolError),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Bytes one response may carry: the request's cap, never more than the
/// policy's.
fn response_cap(limits: &Limits, requested: u64) -> usize {
    let cap = match requested {
        0 => limits.max_read_bytes,
        n => n.min(limits.max_read_bytes),
    };
    usize::try_from(cap.max(1)).unwrap_or(usize::MAX)
}

fn read_lines(
    file: &File,
    meta: &Meta,
    limits: &Limits,
    cap: usize,
    offset: u64,
    limit: u64,
) -> Result<ReadFileResponse, ReadError> {
    if meta.size > limits.max_file_bytes {
        return Err(ReadError::Tool(ToolError::new(
            Reason::TooLarge,
            format!(
                "the file is {} bytes, more than the {}-byte limit for reading by lines; read it with a byte window (bytes.offset, bytes.limit)",
                meta.size, limits.max_file_bytes
            ),
        )));
    }
    let limit = if limit == 0 {
        DEFAULT_LINE_LIMIT
    } else {
        limit
    };
    // Facts already known: stream only up to the window's end.
    let known = file_facts::remembered(meta);
    if let Some(summary) = known.as_ref().filter(|s| s.is_binary) {
        return binary_from_start(file, meta, summary, cap);
    }
    let started = std::time::SystemTime::now();
    let mut scanner = Scanner::new();
    let mut window = LineCollector::new(offset, limit, cap);
    let mut reader = file.take(limits.max_file_bytes);
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if known.is_none() {
            scanner.feed(&buf[..n]);
        }
        window.feed(&buf[..n]);
        if known.is_some() && window.done() {
            break;
        }
    }
    window.finish();
    let summary = match known {
        Some(s) => s,
        None => {
            let s = scanner.finish();
            file_facts::remember(meta, &s, started);
            s
        }
    };
    if summary.is_binary {
        return binary_from_start(file, meta, &summary, cap);
    }
    if let Some((line, byte)) = window.too_long {
        return Err(ReadError::Tool(
            ToolError::new(
                Reason::TooLarge,
                format!(
                    "line {} is longer than the {cap}-byte response cap; read it with a byte window starting at byte {byte}",
                    line + 1
                ),
            )
            .with("line", (line + 1).to_string())
            .with("byte_offset", byte.to_string()),
        ));
    }
    let Ok(text) = String::from_utf8(window.out) else {
        // Only if the file changed while it was read.
        return binary_from_start(file, meta, &summary, cap);
    };
    let next = offset.saturating_add(window.returned);
    Ok(ReadFileResponse {
        text,
        encoding: "utf-8".to_string(),
        line_ending: summary.line_ending as i32,
        total_lines: summary.total_lines,
        sha256: summary.sha256,
        offset,
        truncated: next < summary.total_lines,
        next_offset: next,
        lines_returned: window.returned,
        ..Default::default()
    })
}

/// A line window on a binary file: its first bytes, as a byte window.
fn binary_from_start(
    file: &File,
    meta: &Meta,
    summary: &Summary,
    cap: usize,
) -> Result<ReadFileResponse, ReadError> {
    let data = read_at_most(file, 0, cap.min(usize::try_from(meta.size).unwrap_or(cap)))?;
    let next = data.len() as u64;
    Ok(binary_response(data, summary, 0, next, meta.size))
}

fn binary_response(
    data: Vec<u8>,
    summary: &Summary,
    offset: u64,
    next: u64,
    size: u64,
) -> ReadFileResponse {
    ReadFileResponse {
        // The read's own buffer, not a copy.
        data: data.into(),
        is_binary: true,
        encoding: "binary".to_string(),
        line_ending: LineEnding::Unspecified as i32,
        total_lines: 0,
        sha256: summary.sha256.clone(),
        offset,
        truncated: next < size,
        next_offset: next,
        ..Default::default()
    }
}

fn read_bytes(
    file: &File,
    meta: &Meta,
    limits: &Limits,
    cap: usize,
    offset: u64,
    limit: u64,
) -> Result<ReadFileResponse, ReadError> {
    let want = match limit {
        0 => cap,
        n => usize::try_from(n).unwrap_or(usize::MAX).min(cap),
    };
    let available = usize::try_from(meta.size.saturating_sub(offset)).unwrap_or(usize::MAX);
    let data = read_at_most(file, offset, want.min(available))?;
    // Whole-file facts: from the window when it is the whole file; else
    // remembered or streamed, only when the file is small enough to stream
    // (F15: a 10 GiB sparse file must not be read to answer a 4 KiB window).
    let summary = if let Some(known) = file_facts::remembered(meta) {
        known
    } else if offset == 0 && data.len() as u64 == meta.size {
        let started = std::time::SystemTime::now();
        let mut scanner = Scanner::new();
        scanner.feed(&data);
        let s = scanner.finish();
        file_facts::remember(meta, &s, started);
        s
    } else if meta.size <= limits.max_file_bytes {
        file_facts::facts(file, meta, limits.max_file_bytes)?
    } else {
        let head_nul = if offset == 0 {
            data[..data.len().min(BINARY_SNIFF_BYTES)].contains(&0)
        } else {
            read_at_most(file, 0, BINARY_SNIFF_BYTES)?.contains(&0)
        };
        Summary {
            sha256: String::new(),
            bytes: meta.size,
            total_lines: 0,
            line_ending: LineEnding::Unspecified,
            is_binary: head_nul,
        }
    };

    let data = if summary.is_binary {
        data
    } else {
        match text_window(data) {
            Ok((skipped, text)) => {
                let start = offset + skipped as u64;
                let next = start + text.len() as u64;
                return Ok(ReadFileResponse {
                    text,
                    encoding: "utf-8".to_string(),
                    line_ending: summary.line_ending as i32,
                    total_lines: summary.total_lines,
                    sha256: summary.sha256,
                    offset: start,
                    truncated: next < meta.size,
                    next_offset: next,
                    ..Default::default()
                });
            }
            Err(data) => data,
        }
    };
    let next = offset + data.len() as u64;
    Ok(binary_response(data, &summary, offset, next, meta.size))
}

/// The UTF-8 text in a byte window of a text file: continuation bytes at the
/// start (the window began inside a character) are skipped and a character
/// cut at the end is left for the next window. The bytes back when they are
/// not text. The common case (a whole window of text) is not copied and
/// is validated once.
fn text_window(mut data: Vec<u8>) -> Result<(usize, String), Vec<u8>> {
    let skipped = data
        .iter()
        .take(3)
        .take_while(|&&b| (0x80..=0xbf).contains(&b))
        .count();
    if skipped == 0 {
        return match String::from_utf8(data) {
            Ok(text) => Ok((0, text)),
            Err(e) => {
                let cut = e.utf8_error();
                let mut data = e.into_bytes();
                if cut.error_len().is_some() || cut.valid_up_to() == 0 {
                    return Err(data);
                }
                data.truncate(cut.valid_up_to());
                String::from_utf8(data)
                    .map(|text| (0, text))
                    .map_err(|e| e.into_bytes())
            }
        };
    }
    let rest = &data[skipped..];
    let valid = match std::str::from_utf8(rest) {
        Ok(_) => rest.len(),
        Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => e.valid_up_to(),
        Err(_) => return Err(data),
    };
    data.truncate(skipped + valid);
    data.drain(..skipped);
    String::from_utf8(data)
        .map(|text| (skipped, text))
        .map_err(|e| e.into_bytes())
}

/// Up to `len` bytes from `offset` (fewer at the end of the file), read
/// into the buffer's spare capacity: a buffer about to be overwritten is
/// not zeroed first.
fn read_at_most(file: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        let at = offset + data.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut data), at) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    // The allocator may have given more room than asked for.
    data.truncate(len);
    Ok(data)
}

/// Collects the lines of a window while the file streams past, keeping at
/// most `cap` bytes and only whole lines.
struct LineCollector {
    first: u64,
    end: u64,
    cap: usize,
    /// Index of the line the next byte belongs to.
    line: u64,
    pos: u64,
    line_start: u64,
    out: Vec<u8>,
    /// Length of `out` at the end of the last whole line.
    committed: usize,
    returned: u64,
    /// The cap was reached; nothing more is collected.
    full: bool,
    /// The window's first line alone exceeds the cap: (line index, byte).
    too_long: Option<(u64, u64)>,
}

impl LineCollector {
    fn new(first: u64, limit: u64, cap: usize) -> Self {
        LineCollector {
            first,
            end: first.saturating_add(limit),
            cap,
            line: 0,
            pos: 0,
            line_start: 0,
            out: Vec::new(),
            committed: 0,
            returned: 0,
            full: false,
            too_long: None,
        }
    }

    fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let (segment, ends_line) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (&chunk[..=i], true),
                None => (chunk, false),
            };
            chunk = &chunk[segment.len()..];
            if !self.full && self.line >= self.first && self.line < self.end {
                if self.out.len() + segment.len() > self.cap {
                    self.full = true;
                    self.out.truncate(self.committed);
                    if self.returned == 0 {
                        self.too_long = Some((self.line, self.line_start));
                    }
                } else {
                    self.out.extend_from_slice(segment);
                    if ends_line {
                        self.returned += 1;
                        self.committed = self.out.len();
                    }
                }
            }
            self.pos += segment.len() as u64;
            if ends_line {
                self.line += 1;
                self.line_start = self.pos;
            }
        }
    }

    /// Nothing more can be collected: the cap is reached or the stream is
    /// past the window's last line.
    fn done(&self) -> bool {
        self.full || self.line >= self.end
    }

    /// A last line without a newline counts once the file has ended.
    fn finish(&mut self) {
        if !self.full && self.out.len() > self.committed {
            self.returned += 1;
            self.committed = self.out.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testutil::Fixture;
    use crate::proto::{ByteWindow, LineWindow};
    use std::os::unix::fs::FileExt;

    fn req(path: &str, window: Option<Window>) -> ReadFileRequest {
        ReadFileRequest {
            path: path.to_string(),
            window,
            ..Default::default()
        }
    }

    fn lines(offset: u64, limit: u64) -> Option<Window> {
        Some(Window::Lines(LineWindow { offset, limit }))
    }

    fn bytes(offset: u64, limit: u64) -> Option<Window> {
        Some(Window::Bytes(ByteWindow { offset, limit }))
    }

    #[test]
    fn reads_text_with_facts() {
        let fx = Fixture::new();
        fx.file("a.txt", "one\ntwo\nthree");
        let out = read_file(&fx.ws, &fx.limits, &req("./a.txt", None)).unwrap();
        let r = out.response;
        assert_eq!(r.path, "a.txt");
        assert_eq!(r.text, "one\ntwo\nthree");
        assert_eq!(r.encoding, "utf-8");
        assert_eq!(r.total_lines, 3);
        assert_eq!(r.lines_returned, 3);
        assert_eq!(r.total_bytes, 13);
        assert_eq!(r.line_ending, LineEnding::Lf as i32);
        assert_eq!(r.sha256, crate::fs::scan::sha256_hex(b"one\ntwo\nthree"));
        assert!(!r.truncated);
        assert!(r.mtime.is_some());
        assert_eq!(&*out.rule, "test: read[\"**\"]");
    }

    #[test]
    fn line_windows_page_through() {
        let fx = Fixture::new();
        fx.file("a.txt", "l0\r\nl1\r\nl2\r\nl3\r\n");
        let r = read_file(&fx.ws, &fx.limits, &req("a.txt", lines(1, 2)))
            .unwrap()
            .response;
        assert_eq!(r.text, "l1\r\nl2\r\n");
        assert_eq!((r.offset, r.next_offset, r.truncated), (1, 3, true));
        assert_eq!(r.line_ending, LineEnding::Crlf as i32);
        let r = read_file(&fx.ws, &fx.limits, &req("a.txt", lines(3, 0)))
            .unwrap()
            .response;
        assert_eq!((r.text.as_str(), r.truncated), ("l3\r\n", false));
        let r = read_file(&fx.ws, &fx.limits, &req("a.txt", lines(99, 0)))
            .unwrap()
            .response;
        assert_eq!((r.text.as_str(), r.lines_returned), ("", 0));
    }

    #[test]
    fn the_cap_truncates_at_a_line_boundary() {
        let fx = Fixture::new();
        fx.file("a.txt", "aaaa\nbbbb\ncccc\n");
        let mut r = req("a.txt", None);
        r.max_bytes = 12;
        let r = read_file(&fx.ws, &fx.limits, &r).unwrap().response;
        assert_eq!(r.text, "aaaa\nbbbb\n");
        assert_eq!((r.truncated, r.next_offset), (true, 2));
        let mut r = req("a.txt", None);
        r.max_bytes = 3;
        let err = read_file(&fx.ws, &fx.limits, &r).unwrap_err();
        assert_eq!(err.reason, Reason::TooLarge);
        assert_eq!(err.metadata_value("byte_offset"), Some("0"));
    }

    #[test]
    fn binary_files_come_back_as_data() {
        let fx = Fixture::new();
        fx.file("b.bin", b"ab\0cd\xff");
        let r = read_file(&fx.ws, &fx.limits, &req("b.bin", None))
            .unwrap()
            .response;
        assert!(r.is_binary);
        assert_eq!(r.encoding, "binary");
        assert_eq!(r.data, &b"ab\0cd\xff"[..]);
        assert_eq!(r.total_lines, 0);
        let r = read_file(&fx.ws, &fx.limits, &req("b.bin", bytes(2, 2)))
            .unwrap()
            .response;
        assert_eq!(r.data, &b"\0c"[..]);
        assert_eq!((r.next_offset, r.truncated), (4, true));
    }

    #[test]
    fn byte_windows_keep_characters_whole() {
        let fx = Fixture::new();
        fx.file("u.txt", "aé✓b");
        // Starts inside `é`, ends inside `✓`: too small for one whole
        // character, so raw bytes (the reader still makes progress).
        let r = read_file(&fx.ws, &fx.limits, &req("u.txt", bytes(2, 3)))
            .unwrap()
            .response;
        assert!(r.is_binary);
        assert_eq!((r.data.len(), r.next_offset), (3, 5));
        let r = read_file(&fx.ws, &fx.limits, &req("u.txt", bytes(1, 4)))
            .unwrap()
            .response;
        assert_eq!((r.text.as_str(), r.offset, r.next_offset), ("é", 1, 3));
        let r = read_file(&fx.ws, &fx.limits, &req("u.txt", bytes(3, 0)))
            .unwrap()
            .response;
        assert_eq!((r.text.as_str(), r.truncated), ("✓b", false));
    }

    #[test]
    fn sparse_huge_file_byte_window_is_cheap() {
        let fx = Fixture::new();
        let f = File::create(fx.abs("huge.img")).unwrap();
        f.set_len(10 * 1024 * 1024 * 1024).unwrap();
        f.write_at(b"hello", 5 * 1024 * 1024 * 1024).unwrap();
        drop(f);
        let err = read_file(&fx.ws, &fx.limits, &req("huge.img", None)).unwrap_err();
        assert_eq!(err.reason, Reason::TooLarge);
        let r = read_file(
            &fx.ws,
            &fx.limits,
            &req("huge.img", bytes(5 * 1024 * 1024 * 1024, 0)),
        )
        .unwrap()
        .response;
        assert!(r.is_binary, "sparse zeros are binary");
        assert_eq!(r.data.len() as u64, fx.limits.max_read_bytes);
        assert_eq!(&r.data[..5], b"hello");
        assert_eq!(r.sha256, "");
        assert_eq!(r.total_bytes, 10 * 1024 * 1024 * 1024);
        assert!(r.truncated);
    }

    /// Pages through `path` in byte windows of `step`; returns the bytes in
    /// order and every window's sha256.
    fn page_bytes(fx: &Fixture, path: &str, step: u64) -> (Vec<u8>, Vec<String>) {
        let (mut out, mut shas, mut at) = (Vec::new(), Vec::new(), 0);
        loop {
            let r = read_file(&fx.ws, &fx.limits, &req(path, bytes(at, step)))
                .unwrap()
                .response;
            if r.is_binary {
                assert_eq!(r.offset, at);
                out.extend_from_slice(&r.data);
            } else {
                // A skipped continuation byte would be lost: none may be.
                assert_eq!(r.offset, at, "window at {at} skipped bytes");
                out.extend_from_slice(r.text.as_bytes());
            }
            shas.push(r.sha256);
            assert!(r.next_offset > at || !r.truncated, "no progress at {at}");
            at = r.next_offset;
            if !r.truncated {
                return (out, shas);
            }
        }
    }

    #[test]
    fn byte_windows_return_every_byte_once_with_the_whole_file_hash() {
        let fx = Fixture::new();
        let text = "héllo wörld ✓ 0123456789\n".repeat(500);
        fx.file("t.txt", &text);
        let mut bin = text.clone().into_bytes();
        bin[10] = 0;
        fx.file("b.bin", &bin);
        for (path, content) in [("t.txt", text.as_bytes()), ("b.bin", &bin[..])] {
            let whole = crate::fs::scan::sha256_hex(content);
            for step in [1000, 4096, 7] {
                let (got, shas) = page_bytes(&fx, path, step);
                assert_eq!(got, content, "{path} in windows of {step}");
                assert!(shas.iter().all(|s| *s == whole), "{path}: window hashes");
            }
        }
    }

    #[test]
    fn a_file_changed_between_windows_is_described_as_it_is_now() {
        let fx = Fixture::new();
        fx.file("f.txt", "a".repeat(10_000));
        let first = read_file(&fx.ws, &fx.limits, &req("f.txt", bytes(0, 4000)))
            .unwrap()
            .response;
        assert_eq!(
            first.sha256,
            crate::fs::scan::sha256_hex("a".repeat(10_000).as_bytes())
        );
        // Same size, other content: the next window's facts follow it.
        let now = format!("{}\n", "b".repeat(9_999));
        fx.file("f.txt", &now);
        let next = read_file(&fx.ws, &fx.limits, &req("f.txt", bytes(4000, 4000)))
            .unwrap()
            .response;
        assert_eq!(next.text, "b".repeat(4000));
        assert_eq!(next.sha256, crate::fs::scan::sha256_hex(now.as_bytes()));
        assert_eq!(
            (next.total_lines, next.line_ending),
            (1, LineEnding::Lf as i32)
        );
    }

    #[test]
    fn line_windows_return_every_line_once() {
        let fx = Fixture::new();
        let text: String = (0..1000).map(|i| format!("line {i}\r\n")).collect();
        fx.file("l.txt", &text);
        let (mut out, mut at) = (String::new(), 0);
        loop {
            let r = read_file(&fx.ws, &fx.limits, &req("l.txt", lines(at, 37)))
                .unwrap()
                .response;
            assert_eq!(r.offset, at);
            assert_eq!(r.total_lines, 1000);
            assert_eq!(r.sha256, crate::fs::scan::sha256_hex(text.as_bytes()));
            out.push_str(&r.text);
            at = r.next_offset;
            if !r.truncated {
                break;
            }
        }
        assert_eq!(out, text);
    }

    #[test]
    fn refusals() {
        let fx = Fixture::new();
        fx.file("d/x", "x");
        fx.file(".env", "SECRET=1");
        let cases = [
            ("", Reason::InvalidArgument),
            ("d", Reason::IsADirectory),
            ("missing", Reason::NotFound),
            (".env", Reason::PolicyDenied),
            ("d/../.env", Reason::PolicyDenied),
            ("nope/.env", Reason::PolicyDenied),
            ("../x", Reason::PathOutsideWorkspace),
            ("/etc/passwd", Reason::InvalidArgument),
            ("d/x/y", Reason::NotADirectory),
        ];
        for (path, reason) in cases {
            let err = read_file(&fx.ws, &fx.limits, &req(path, None)).unwrap_err();
            assert_eq!(err.reason, reason, "{path}: {err}");
        }
    }
}

//! Accepts the `:authority` values stock gRPC clients send over a Unix
//! socket. grpcio sends the percent-encoded socket path
//! (`unix:%2Frun%2Fagentjail%2Fagentjail.sock`), grpc-java and grpc-swift
//! send similar values; h2 parses `:authority` as a URI authority and resets
//! the stream with PROTOCOL_ERROR before tonic sees the request
//! (hyperium/h2#487), and neither h2, hyper nor tonic has an option to relax
//! that one check.
//!
//! So each accepted Unix connection goes through this shim, in the client →
//! daemon direction only. Every frame passes through byte for byte except
//! the client's header blocks (HEADERS + CONTINUATION): those are decoded
//! here with `httlib-hpack` (the client's HPACK encoder state lives in
//! `decoder`; its Huffman decoder reads 5 bits at a time), an
//! `:authority` that does not parse as one is replaced by `localhost`, and
//! the block is re-encoded for h2. Every other check h2 makes (pseudo-header
//! rules, header names and values, connection-specific headers, header-list
//! size, frame sizes, flow control, stream states) h2 still makes on what
//! the client sent. The daemon never uses `:authority` for anything.
//!
//! HPACK state: the re-encoder never indexes (literals without indexing,
//! static-table references, "never indexed" kept where the client used it),
//! and the first block it sends on a connection starts with a dynamic-table
//! size update to 0, so h2's decoder keeps no table either: the two cannot
//! diverge.
//! The decoder accepts the table size h2 allows its clients: the RFC 7540
//! default of 4096, since hyper never advertises SETTINGS_HEADER_TABLE_SIZE
//! (its `header_table_size` is unset and tonic has no setting for it).

use bytes::{Buf, BufMut, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE's initial value and minimum. The daemon's h2
/// server keeps it (tonic's `max_frame_size` is unset), so frames this size
/// are always acceptable in both directions.
const MAX_FRAME: usize = 16_384;
/// The HPACK dynamic table size a client may use (RFC 7540 §6.5.2 default).
const CLIENT_TABLE_SIZE: usize = 4096;
/// Bounds on one header block, encoded and decoded (RFC 7541 §4.1 sizes).
/// Above h2's own 16 KiB header-list limit, so h2 answers the sizes between
/// with its usual stream error; beyond these the connection is closed.
const MAX_BLOCK: usize = 64 * 1024;
const MAX_HEADER_LIST: usize = 64 * 1024;
const REPLACEMENT: &[u8] = b"localhost";

mod kind {
    pub const HEADERS: u8 = 0x1;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const CONTINUATION: u8 = 0x9;
}
mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// Why a connection was closed by the shim: HTTP/2 that h2 would also have
/// refused with a connection error.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("the client did not start with the HTTP/2 connection preface")]
    Preface,
    #[error("a {0}-byte header frame is over the 16384-byte frame size limit")]
    FrameTooLarge(usize),
    #[error("a header block over {MAX_BLOCK} bytes")]
    BlockTooLarge,
    #[error("a header list over {MAX_HEADER_LIST} bytes once decoded")]
    HeaderListTooLarge,
    #[error("malformed HEADERS frame: {0}")]
    Malformed(&'static str),
    #[error("a header block was interrupted by another frame")]
    Interrupted,
    #[error("a client sent PUSH_PROMISE")]
    PushPromise,
    #[error("HPACK: {0}")]
    Hpack(#[from] httlib_hpack::DecoderError),
}

/// What one step of the rewriter did.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// More input is needed before anything can be emitted.
    NeedMore,
    /// Output was produced.
    Emitted,
    /// A frame header was emitted; this many payload bytes follow verbatim.
    Passthrough(usize),
}

/// A header block being collected across HEADERS and CONTINUATION frames.
struct OpenBlock {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragments: BytesMut,
}

/// The client → daemon frame rewriter, independent of any I/O.
struct Rewriter {
    preface_seen: bool,
    decoder: httlib_hpack::Decoder<'static>,
    encoder: httlib_hpack::Encoder<'static>,
    first_block_sent: bool,
    block: Option<OpenBlock>,
}

impl Rewriter {
    fn new() -> Rewriter {
        let decoder = httlib_hpack::Decoder::with_dynamic_size(CLIENT_TABLE_SIZE as u32);
        let encoder = httlib_hpack::Encoder::with_dynamic_size(0);
        Rewriter {
            preface_seen: false,
            decoder,
            encoder,
            first_block_sent: false,
            block: None,
        }
    }

    /// Consumes what it can from `input`, appending to `out`.
    fn step(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<Step, ShimError> {
        if !self.preface_seen {
            let seen = input.len().min(PREFACE.len());
            if input[..seen] != PREFACE[..seen] {
                return Err(ShimError::Preface);
            }
            if seen < PREFACE.len() {
                return Ok(Step::NeedMore);
            }
            out.extend_from_slice(&input.split_to(PREFACE.len()));
            self.preface_seen = true;
            return Ok(Step::Emitted);
        }
        if input.len() < FRAME_HEADER {
            return Ok(Step::NeedMore);
        }
        let len = usize::from(input[0]) << 16 | usize::from(input[1]) << 8 | usize::from(input[2]);
        let frame_kind = input[3];
        match frame_kind {
            kind::HEADERS | kind::CONTINUATION => {
                if len > MAX_FRAME {
                    return Err(ShimError::FrameTooLarge(len));
                }
                if input.len() < FRAME_HEADER + len {
                    input.reserve(FRAME_HEADER + len - input.len());
                    return Ok(Step::NeedMore);
                }
                let frame = input.split_to(FRAME_HEADER + len);
                let flags = frame[4];
                let stream =
                    u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
                self.fragment(frame_kind, flags, stream, &frame[FRAME_HEADER..], out)?;
                Ok(Step::Emitted)
            }
            kind::PUSH_PROMISE => Err(ShimError::PushPromise),
            _ => {
                if self.block.is_some() {
                    return Err(ShimError::Interrupted);
                }
                out.extend_from_slice(&input.split_to(FRAME_HEADER));
                Ok(Step::Passthrough(len))
            }
        }
    }

    fn fragment(
        &mut self,
        frame_kind: u8,
        flags: u8,
        stream: u32,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), ShimError> {
        if frame_kind == kind::HEADERS {
            if self.block.is_some() {
                return Err(ShimError::Interrupted);
            }
            let mut p = payload;
            if flags & flag::PADDED != 0 {
                let (&pad, rest) = p
                    .split_first()
                    .ok_or(ShimError::Malformed("no pad length"))?;
                let keep = rest
                    .len()
                    .checked_sub(usize::from(pad))
                    .ok_or(ShimError::Malformed("padding longer than the frame"))?;
                p = &rest[..keep];
            }
            let priority = if flags & flag::PRIORITY != 0 {
                let (fields, rest) = p
                    .split_first_chunk::<5>()
                    .ok_or(ShimError::Malformed("priority fields cut short"))?;
                p = rest;
                Some(*fields)
            } else {
                None
            };
            self.block = Some(OpenBlock {
                stream,
                end_stream: flags & flag::END_STREAM != 0,
                priority,
                fragments: BytesMut::from(p),
            });
        } else {
            match &mut self.block {
                Some(block) if block.stream == stream => block.fragments.extend_from_slice(payload),
                _ => return Err(ShimError::Malformed("CONTINUATION without its HEADERS")),
            }
        }
        let open = self.block.as_ref().map_or(0, |b| b.fragments.len());
        if open > MAX_BLOCK {
            return Err(ShimError::BlockTooLarge);
        }
        if flags & flag::END_HEADERS != 0 {
            let block = self.block.take().expect("a block is open");
            self.finish(block, out)?;
        }
        Ok(())
    }

    /// Decodes a whole block, fixes `:authority`, and emits it re-encoded.
    fn finish(&mut self, block: OpenBlock, out: &mut BytesMut) -> Result<(), ShimError> {
        let mut fields: Vec<(Vec<u8>, Vec<u8>, u8)> = Vec::new();
        let mut decoded = 0usize;
        let mut rest = block.fragments.to_vec();
        // One field at a time, so a small block that expands (indexed
        // references to a large entry) is stopped before it allocates much.
        while !rest.is_empty() {
            let mut one = Vec::with_capacity(1);
            self.decoder.decode_exact(&mut rest, &mut one)?;
            for (name, value, flags) in one {
                decoded = decoded.saturating_add(name.len() + value.len() + 32);
                if decoded > MAX_HEADER_LIST {
                    return Err(ShimError::HeaderListTooLarge);
                }
                fields.push((name, value, flags));
            }
        }
        for (name, value, _) in &mut fields {
            if name == b":authority" && http::uri::Authority::try_from(value.as_slice()).is_err() {
                tracing::debug!(
                    authority = %value.escape_ascii(),
                    stream = block.stream,
                    "replacing an unparseable :authority by localhost"
                );
                crate::metrics::authority_rewritten();
                *value = REPLACEMENT.to_vec();
            }
        }
        let mut encoded = Vec::with_capacity(block.fragments.len() + 64);
        if !self.first_block_sent {
            // Dynamic table size update to 0 (RFC 7541 §6.3).
            encoded.push(0x20);
            self.first_block_sent = true;
        }
        for (name, value, flags) in fields {
            let sensitive = flags & httlib_hpack::Decoder::NEVER_INDEXED;
            self.encoder
                .encode(
                    (name, value, httlib_hpack::Encoder::BEST_FORMAT | sensitive),
                    &mut encoded,
                )
                .map_err(|_| ShimError::Malformed("a header field that cannot be encoded"))?;
        }
        emit_block(&block, &encoded, out);
        Ok(())
    }
}

/// Writes `encoded` as HEADERS (+ CONTINUATION) frames of at most MAX_FRAME.
fn emit_block(block: &OpenBlock, encoded: &[u8], out: &mut BytesMut) {
    let priority: &[u8] = block.priority.as_ref().map_or(&[], |p| p.as_slice());
    let first_room = MAX_FRAME - priority.len();
    let (first, mut rest) = encoded.split_at(encoded.len().min(first_room));
    let mut flags = 0;
    if block.end_stream {
        flags |= flag::END_STREAM;
    }
    if !priority.is_empty() {
        flags |= flag::PRIORITY;
    }
    if rest.is_empty() {
        flags |= flag::END_HEADERS;
    }
    put_frame_header(
        out,
        priority.len() + first.len(),
        kind::HEADERS,
        flags,
        block.stream,
    );
    out.extend_from_slice(priority);
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(rest.len().min(MAX_FRAME));
        rest = after;
        let flags = if rest.is_empty() {
            flag::END_HEADERS
        } else {
            0
        };
        put_frame_header(out, chunk.len(), kind::CONTINUATION, flags, block.stream);
        out.extend_from_slice(chunk);
    }
}

fn put_frame_header(out: &mut BytesMut, len: usize, frame_kind: u8, flags: u8, stream: u32) {
    out.put_uint(len as u64, 3);
    out.put_u8(frame_kind);
    out.put_u8(flags);
    out.put_u32(stream);
}

/// An accepted connection whose client → daemon bytes go through the
/// rewriter; daemon → client bytes are written straight through.
pub struct AuthorityShim<S> {
    inner: S,
    rewriter: Rewriter,
    input: BytesMut,
    output: BytesMut,
    passthrough: usize,
}

impl<S> AuthorityShim<S> {
    pub fn new(inner: S) -> AuthorityShim<S> {
        AuthorityShim {
            inner,
            rewriter: Rewriter::new(),
            input: BytesMut::with_capacity(8192),
            output: BytesMut::new(),
            passthrough: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityShim<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output[..n]);
                this.output.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.passthrough > 0 && !this.input.is_empty() {
                let n = this.passthrough.min(this.input.len()).min(buf.remaining());
                buf.put_slice(&this.input[..n]);
                this.input.advance(n);
                this.passthrough -= n;
                return Poll::Ready(Ok(()));
            }
            if this.passthrough == 0 {
                match this.rewriter.step(&mut this.input, &mut this.output) {
                    Ok(Step::Emitted) => continue,
                    Ok(Step::Passthrough(n)) => {
                        this.passthrough = n;
                        continue;
                    }
                    Ok(Step::NeedMore) => {}
                    Err(e) => {
                        tracing::debug!("closing a connection: {e}");
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                    }
                }
            }
            this.input.reserve(8192);
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut this.inner),
                cx,
                &mut this.input
            ))?;
            if n == 0 {
                // End of stream; a frame cut short ends h2's connection too.
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityShim<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for AuthorityShim<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> S::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_frame_header(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        out.to_vec()
    }

    fn request(authority: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            (b":method".to_vec(), b"POST".to_vec()),
            (b":scheme".to_vec(), b"http".to_vec()),
            (
                b":path".to_vec(),
                b"/agentjail.v1.ToolSandbox/WhoAmI".to_vec(),
            ),
            (b":authority".to_vec(), authority.to_vec()),
            (b"te".to_vec(), b"trailers".to_vec()),
        ]
    }

    /// Encodes as a client would: Huffman values, indexing everything.
    fn encode(enc: &mut httlib_hpack::Encoder<'_>, fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        use httlib_hpack::Encoder;
        let flags = Encoder::BEST_FORMAT | Encoder::WITH_INDEXING | Encoder::HUFFMAN_VALUE;
        let mut out = Vec::new();
        for (n, v) in fields {
            enc.encode((n.clone(), v.clone(), flags), &mut out).unwrap();
        }
        out
    }

    fn client_encoder() -> httlib_hpack::Encoder<'static> {
        httlib_hpack::Encoder::with_dynamic_size(4096)
    }

    /// Runs `bytes` through a rewriter in chunks of `chunk` bytes, as
    /// reads would deliver them; returns what h2 would receive.
    fn run(bytes: &[u8], chunk: usize) -> Result<Vec<u8>, ShimError> {
        let mut rw = Rewriter::new();
        let mut input = BytesMut::new();
        let mut out = BytesMut::new();
        let mut passthrough = 0usize;
        for piece in bytes.chunks(chunk) {
            input.extend_from_slice(piece);
            loop {
                if passthrough > 0 {
                    let n = passthrough.min(input.len());
                    out.extend_from_slice(&input.split_to(n));
                    passthrough -= n;
                    if passthrough > 0 {
                        break;
                    }
                    continue;
                }
                match rw.step(&mut input, &mut out)? {
                    Step::NeedMore => break,
                    Step::Emitted => {}
                    Step::Passthrough(n) => passthrough = n,
                }
            }
        }
        Ok(out.to_vec())
    }

    /// Splits h2-bound bytes into frames and decodes every header block
    /// with a fresh decoder, as h2 would.
    fn h2_view(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        assert_eq!(&bytes[..24], PREFACE);
        let mut rest = &bytes[24..];
        let mut frames = Vec::new();
        while !rest.is_empty() {
            let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
            frames.push((rest[3], rest[4], stream, rest[9..9 + len].to_vec()));
            rest = &rest[9 + len..];
        }
        frames
    }

    fn blocks(frames: &[(u8, u8, u32, Vec<u8>)]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut dec = httlib_hpack::Decoder::with_dynamic_size(4096);
        let mut out = Vec::new();
        let mut open = Vec::new();
        for (kind, flags, _, payload) in frames {
            match *kind {
                kind::HEADERS => {
                    let skip = if flags & flag::PRIORITY != 0 { 5 } else { 0 };
                    open.extend_from_slice(&payload[skip..]);
                }
                kind::CONTINUATION => open.extend_from_slice(payload),
                _ => continue,
            }
            if flags & flag::END_HEADERS != 0 {
                let mut fields = Vec::new();
                dec.decode(&mut open, &mut fields)
                    .expect("h2 can decode what the shim sends");
                out.push(fields.into_iter().map(|(n, v, _)| (n, v)).collect());
                open.clear();
            }
        }
        out
    }

    fn client_bytes(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut all = PREFACE.to_vec();
        for p in parts {
            all.extend_from_slice(p);
        }
        all
    }

    #[test]
    fn unparseable_authority_becomes_localhost_and_others_stay() {
        let mut enc = client_encoder();
        let bad = encode(
            &mut enc,
            &request(b"unix:%2Frun%2Fagentjail%2Fagentjail.sock"),
        );
        let good = encode(&mut enc, &request(b"example.test:50051"));
        let data = frame(0x0, flag::END_STREAM, 1, b"\0\0\0\0\0");
        let bytes = client_bytes(&[
            frame(kind::HEADERS, flag::END_HEADERS, 1, &bad),
            data.clone(),
            frame(kind::HEADERS, flag::END_HEADERS, 3, &good),
        ]);
        for chunk in [1, 7, 9, 4096] {
            let seen = blocks(&h2_view(&run(&bytes, chunk).unwrap()));
            assert_eq!(seen[0], request(b"localhost"), "chunk {chunk}");
            assert_eq!(seen[1], request(b"example.test:50051"), "chunk {chunk}");
        }
        // The DATA frame passes byte for byte.
        let out = run(&bytes, 3).unwrap();
        assert!(out.windows(data.len()).any(|w| w == data.as_slice()));
    }

    #[test]
    fn the_clients_dynamic_table_is_followed_across_blocks() {
        // The second block refers to entries the first one indexed.
        let mut enc = client_encoder();
        let mut fields = request(b"unix:%2Ftmp%2Fs.sock");
        fields.push((b"x-custom".to_vec(), b"value".to_vec()));
        let first = encode(&mut enc, &fields);
        let second = encode(&mut enc, &fields);
        assert!(
            second.len() < first.len(),
            "the second block uses the table"
        );
        let bytes = client_bytes(&[
            frame(kind::HEADERS, flag::END_HEADERS, 1, &first),
            frame(kind::HEADERS, flag::END_HEADERS, 3, &second),
        ]);
        let seen = blocks(&h2_view(&run(&bytes, 5).unwrap()));
        let mut want = request(b"localhost");
        want.push((b"x-custom".to_vec(), b"value".to_vec()));
        assert_eq!(seen, vec![want.clone(), want]);
    }

    #[test]
    fn padding_priority_and_continuation_are_handled() {
        let mut enc = client_encoder();
        let block = encode(&mut enc, &request(b"unix:%2Fa"));
        let (a, b) = block.split_at(10);
        let mut payload = vec![3u8]; // pad length
        payload.extend_from_slice(&[0x80, 0, 0, 1, 16]); // priority
        payload.extend_from_slice(a);
        payload.extend_from_slice(&[0, 0, 0]);
        let bytes = client_bytes(&[
            frame(
                kind::HEADERS,
                flag::PADDED | flag::PRIORITY | flag::END_STREAM,
                5,
                &payload,
            ),
            frame(kind::CONTINUATION, flag::END_HEADERS, 5, b),
        ]);
        let frames = h2_view(&run(&bytes, 2).unwrap());
        let (kind, flags, stream, payload) = &frames[0];
        assert_eq!((*kind, *stream), (kind::HEADERS, 5));
        assert_eq!(
            *flags,
            flag::PRIORITY | flag::END_STREAM | flag::END_HEADERS
        );
        assert_eq!(&payload[..5], &[0x80, 0, 0, 1, 16], "priority kept");
        assert_eq!(blocks(&frames), vec![request(b"localhost")]);
    }

    #[test]
    fn a_large_block_is_split_at_the_frame_size() {
        let mut enc = client_encoder();
        let mut fields = request(b"unix:%2Fa");
        fields.push((b"x-big".to_vec(), vec![b'v'; 15_000]));
        fields.push((b"x-big2".to_vec(), vec![b'w'; 10_000]));
        let block = encode(&mut enc, &fields);
        let (a, b) = block.split_at(block.len() / 2);
        let bytes = client_bytes(&[
            frame(kind::HEADERS, 0, 1, a),
            frame(kind::CONTINUATION, flag::END_HEADERS, 1, b),
        ]);
        let frames = h2_view(&run(&bytes, 1000).unwrap());
        assert!(frames.len() >= 2);
        assert!(frames.iter().all(|f| f.3.len() <= MAX_FRAME));
        fields[3].1 = b"localhost".to_vec();
        assert_eq!(blocks(&frames), vec![fields]);
    }

    #[test]
    fn protocol_violations_close_the_connection() {
        let mut enc = client_encoder();
        let block = encode(&mut enc, &request(b"a"));
        let interrupted = client_bytes(&[
            frame(kind::HEADERS, 0, 1, &block),
            frame(0x8, 0, 0, &[0, 0, 1, 0]),
        ]);
        assert!(matches!(run(&interrupted, 64), Err(ShimError::Interrupted)));
        let orphan = client_bytes(&[frame(kind::CONTINUATION, flag::END_HEADERS, 1, &block)]);
        assert!(matches!(run(&orphan, 64), Err(ShimError::Malformed(_))));
        assert!(matches!(
            run(b"GET / HTTP/1.1\r\n", 4),
            Err(ShimError::Preface)
        ));
        let garbage = client_bytes(&[frame(kind::HEADERS, flag::END_HEADERS, 1, &[0xff; 8])]);
        assert!(matches!(run(&garbage, 64), Err(ShimError::Hpack(_))));
        let push = client_bytes(&[frame(kind::PUSH_PROMISE, flag::END_HEADERS, 1, &[0; 4])]);
        assert!(matches!(run(&push, 64), Err(ShimError::PushPromise)));
    }

    #[test]
    fn decoded_size_is_bounded_even_when_the_block_is_small() {
        // One 4 KiB entry indexed, then referenced many times: a small
        // block that decodes to megabytes.
        let mut enc = client_encoder();
        let mut block = encode(&mut enc, &[(b"x-a".to_vec(), vec![b'a'; 4000])]);
        block.extend(std::iter::repeat_n(0x80 | 62, 1000));
        let bytes = client_bytes(&[frame(kind::HEADERS, flag::END_HEADERS, 1, &block)]);
        assert!(matches!(
            run(&bytes, 4096),
            Err(ShimError::HeaderListTooLarge)
        ));
        let endless: Vec<Vec<u8>> = std::iter::once(frame(kind::HEADERS, 0, 1, &[0x82; 16_000]))
            .chain((0..5).map(|_| frame(kind::CONTINUATION, 0, 1, &[0x82; 16_000])))
            .collect();
        assert!(matches!(
            run(&client_bytes(&endless), 4096),
            Err(ShimError::BlockTooLarge)
        ));
    }
}

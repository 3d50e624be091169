//! The gRPC codec of the agentjail API: prost's, except that bytes which are
//! not a valid message of the method's request type are refused with
//! INVALID_ARGUMENT and reason UNDECODABLE_REQUEST (prost's codec says
//! INTERNAL, which clients retry). The status carries the message's size
//! (`agentjail-request-bytes`), for the record `undecodable` writes.
//!
//! Before a request is decoded, its top-level fields are counted on the wire
//! (no allocation): a field repeated past `MAX_REPEATED_ENTRIES` is refused
//! with LIMIT_EXCEEDED, so millions of empty argv entries cost a scan, not
//! gigabytes of decoded strings.

use crate::error::{Reason, ToolError};
use crate::limits::Limit;
use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Size of the undecodable message, in the status's metadata.
pub const REQUEST_BYTES_KEY: &str = "agentjail-request-bytes";

#[derive(Debug, Clone)]
pub struct CheckedCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> Default for CheckedCodec<T, U> {
    fn default() -> Self {
        CheckedCodec {
            inner: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for CheckedCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.inner.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder {
            inner: self.inner.decoder(),
            _pd: PhantomData,
        }
    }
}

#[derive(Debug)]
pub struct CheckedDecoder<U> {
    inner: ProstDecoder<U>,
    _pd: PhantomData<U>,
}

impl<U: prost::Message + Default> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        use bytes::Buf;
        let size = buf.remaining();
        if is_request::<U>() {
            let chunk = buf.chunk();
            if chunk.len() >= size {
                check_repeated(type_name::<U>(), &chunk[..size])?;
            }
        }
        self.inner
            .decode(buf)
            .map_err(|status| undecodable(type_name::<U>(), size, status.message()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}

/// Requests are what the daemon decodes; responses (decoded by the clients
/// built from the same code) are bounded by their own page sizes.
fn is_request<U>() -> bool {
    type_name::<U>().ends_with("Request")
}

fn type_name<U>() -> &'static str {
    let full = std::any::type_name::<U>();
    full.rsplit("::").next().unwrap_or(full)
}

/// The limit that binds a repeated request field on the wire: its own where
/// `crate::limits` names one, else the largest of them.
fn repeated_limit(message: &str, field: u32) -> Limit {
    use crate::limits::*;
    match (message, field) {
        ("ExecRequest", 2) => MAX_ARGV_ENTRIES,
        ("ExecRequest", 5) => MAX_ENV_ENTRIES,
        ("EditFileRequest", 3) => MAX_EDITS,
        _ => MAX_REPEATED_ENTRIES,
    }
}

/// Counts the occurrences of each top-level field number of a `message`;
/// bytes that do not parse are left to prost, which names the fault.
fn check_repeated(message: &str, mut wire: &[u8]) -> Result<(), Status> {
    use prost::encoding::{DecodeContext, decode_key, skip_field};
    let size = wire.len();
    let mut counts: std::collections::HashMap<u32, usize> = Default::default();
    while !wire.is_empty() {
        let Ok((tag, wire_type)) = decode_key(&mut wire) else {
            return Ok(());
        };
        let n = counts.entry(tag).or_insert(0);
        *n += 1;
        let Limit { name: limit, max } = repeated_limit(message, tag);
        if *n > max {
            let mut status = ToolError::new(
                Reason::LimitExceeded,
                format!(
                    "{limit} is {max}, the request has more (field {tag} of {message}, counted \
                     before decoding); send fewer entries (see the README's \"Limits\")"
                ),
            )
            .with("limit", limit)
            .with("max", max.to_string())
            .to_status();
            // Marks a refusal of the codec's, which `undecodable` records.
            if let Ok(value) = size.to_string().parse() {
                status.metadata_mut().insert(REQUEST_BYTES_KEY, value);
            }
            return Err(status);
        }
        if skip_field(wire_type, tag, &mut wire, DecodeContext::default()).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

fn undecodable(name: &str, size: usize, why: &str) -> Status {
    let mut status = ToolError::new(
        Reason::UndecodableRequest,
        format!(
            "the request's {size} bytes are not a valid agentjail.v1.{name} ({why}); nothing \
             was done. Check that the client is generated from this daemon's \
             agentjail.proto; do not retry the same bytes"
        ),
    )
    .with("bytes", size.to_string())
    .to_status();
    if let Ok(value) = size.to_string().parse() {
        status.metadata_mut().insert(REQUEST_BYTES_KEY, value);
    }
    status
}

#[cfg(test)]
mod repeated_tests {
    use super::*;
    use prost::Message;

    #[test]
    fn millions_of_empty_entries_are_refused_before_decoding() {
        let req = crate::proto::ExecRequest {
            argv: vec![String::new(); crate::limits::MAX_ARGV_ENTRIES.max + 1],
            ..Default::default()
        };
        let err = check_repeated("ExecRequest", &req.encode_to_vec()).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().contains("max_argv_entries"),
            "{}",
            err.message()
        );
        let other = crate::proto::GlobRequest {
            pattern: "x".into(),
            ..Default::default()
        }
        .encode_to_vec()
        .repeat(crate::limits::MAX_REPEATED_ENTRIES.max + 1);
        let err = check_repeated("GlobRequest", &other).unwrap_err();
        assert!(
            err.message().contains("max_repeated_entries"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn requests_within_the_limit_pass_the_scan() {
        let req = crate::proto::ExecRequest {
            argv: vec!["x".into(); crate::limits::MAX_ARGV_ENTRIES.max],
            ..Default::default()
        };
        assert!(check_repeated("ExecRequest", &req.encode_to_vec()).is_ok());
        assert!(
            check_repeated("ExecRequest", b"\xff\xff garbage").is_ok(),
            "left to prost"
        );
        assert!(is_request::<crate::proto::ExecRequest>());
        assert!(!is_request::<crate::proto::ExecResult>());
    }
}

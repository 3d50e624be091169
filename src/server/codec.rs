//! The gRPC codec of the agentjail API: prost's, except that bytes which are
//! not a valid message of the method's request type are refused with
//! INVALID_ARGUMENT and reason UNDECODABLE_REQUEST (prost's codec says
//! INTERNAL, which clients retry). The status carries the message's size
//! (`agentjail-request-bytes`), for the record `undecodable` writes.

use crate::error::{Reason, ToolError};
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
        self.inner
            .decode(buf)
            .map_err(|status| undecodable(std::any::type_name::<U>(), size, status.message()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}

fn undecodable(type_name: &str, size: usize, why: &str) -> Status {
    let name = type_name.rsplit("::").next().unwrap_or(type_name);
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

//! Records requests that never reach a handler because their bytes are not
//! a valid message (the codec refused them, or the gRPC framing was
//! broken): one audit record each (method, caller, size), and a status of
//! INVALID_ARGUMENT with reason UNDECODABLE_REQUEST, never INTERNAL.
//! Wraps the ToolSandbox service, so health and reflection are untouched.

use super::codec::REQUEST_BYTES_KEY;
use super::identity::Caller;
use super::record::{EntryStart, caller_record};
use super::service::refusal_status;
use super::state::State;
use crate::error::{REASON_METADATA_KEY, Reason, ToolError};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::NamedService;

#[derive(Clone)]
pub struct RecordUndecodable<S> {
    inner: S,
    state: Arc<State>,
}

impl<S> RecordUndecodable<S> {
    pub fn new(inner: S, state: Arc<State>) -> Self {
        RecordUndecodable { inner, state }
    }
}

impl<S: NamedService> NamedService for RecordUndecodable<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<Body>> for RecordUndecodable<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        let method = method_name(req.uri().path());
        let authorization = req.headers().get("authorization").map(|v| v.as_bytes());
        let caller = Caller::from_extensions(req.extensions(), authorization).ok();
        Box::pin(async move {
            let response = inner.call(req).await?;
            Ok(match refused_bytes(&response) {
                Some(found) => record(&state, method, caller, found, response).await,
                None => response,
            })
        })
    }
}

/// The method's name as the audit log spells it, from the request path:
/// one of the service's methods as the proto declares them.
fn method_name(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or("");
    crate::proto::method_names()
        .iter()
        .find(|m| m.as_str() == name)
        .map(String::as_str)
        .unwrap_or("unknown")
}

/// What a refused request looked like, from its trailers-only response.
enum Found {
    /// Our codec refused it (undecodable, or over a wire-level limit): why,
    /// and its size.
    Codec(Reason, Option<u64>),
    /// tonic refused its framing with INTERNAL and its own message.
    Framing(String),
}

fn refused_bytes(response: &http::Response<Body>) -> Option<Found> {
    let headers = response.headers();
    let reason = headers
        .get(REASON_METADATA_KEY)
        .and_then(|v| v.to_str().ok());
    let size = headers
        .get(REQUEST_BYTES_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if reason == Some(Reason::UndecodableRequest.as_str()) {
        return Some(Found::Codec(Reason::UndecodableRequest, size));
    }
    // Handlers' own LIMIT_EXCEEDED refusals are recorded by them and carry
    // no request size; the codec's carry one.
    if reason == Some(Reason::LimitExceeded.as_str()) && size.is_some() {
        return Some(Found::Codec(Reason::LimitExceeded, size));
    }
    let status = tonic::Status::from_header_map(headers)?;
    (status.code() == tonic::Code::Internal && reason.is_none())
        .then(|| Found::Framing(status.message().to_string()))
}

async fn record(
    state: &State,
    method: &'static str,
    caller: Option<Caller>,
    found: Found,
    response: http::Response<Body>,
) -> http::Response<Body> {
    let request_id = state.next_request_id();
    let policy = state.policy();
    let (err, size) = match found {
        Found::Codec(reason, size) => {
            let status = tonic::Status::from_header_map(response.headers());
            let message = status.map(|s| s.message().to_string()).unwrap_or_default();
            (ToolError::new(reason, message), size)
        }
        Found::Framing(why) => (
            ToolError::new(
                Reason::UndecodableRequest,
                format!(
                    "the request is not a valid gRPC message ({why}); nothing was done. Check \
                     the client's gRPC framing; do not retry the same bytes"
                ),
            ),
            None,
        ),
    };
    let mut entry = EntryStart {
        request_id: request_id.clone(),
        caller: caller_record(caller.as_ref()),
        method,
        args: serde_json::Map::new(),
        redacted: false,
        policy_version: policy.version.clone(),
    };
    if let Some(size) = size {
        entry.args.insert("request_bytes".into(), size.into());
    }
    let record = entry.refused(None, &err, 0, &policy.redactor);
    let status = match state.audit.append(record).await {
        Ok(seq) => refusal_status(&err, &request_id, seq.unwrap_or(0)),
        Err(e) => e.to_status(),
    };
    status.into_http()
}

#[cfg(test)]
mod tests {
    use super::method_name;

    #[test]
    fn every_method_of_the_service_is_named_from_the_descriptor() {
        assert_eq!(method_name("/agentjail.v1.ToolSandbox/Run"), "Run");
        assert_eq!(
            method_name("/agentjail.v1.ToolSandbox/OpenSession"),
            "OpenSession"
        );
        assert_eq!(method_name("/agentjail.v1.ToolSandbox/Nope"), "unknown");
    }
}

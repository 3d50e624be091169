//! The metrics endpoint: `GET /metrics` answers the Prometheus text format
//! with its content type; any other path is 404, any other method 405.
//! Plain HTTP/1.1 on the configured address (keep it private).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use std::convert::Infallible;
use std::net::SocketAddr;

/// The Prometheus text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds now (so a taken address fails the start), serves in the background.
pub fn serve(
    address: SocketAddr,
    handle: PrometheusHandle,
    process: metrics_process::Collector,
) -> anyhow::Result<()> {
    let std_listener = std::net::TcpListener::bind(address)
        .map_err(|e| anyhow::anyhow!("cannot serve metrics on {address}: {e}"))?;
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handle = handle.clone();
            let process = process.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let answer = answer(&req, &handle, &process);
                    async move { Ok::<_, Infallible>(answer) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(())
}

fn answer<B>(
    req: &Request<B>,
    handle: &PrometheusHandle,
    process: &metrics_process::Collector,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, text: &str| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(text.to_string())))
            .expect("a valid response")
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    process.collect();
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, CONTENT_TYPE)
        .body(Full::new(Bytes::from(handle.render())))
        .expect("a valid response")
}

//! Native gRPC calls to the contract's RPCs, the calls nearly all traffic
//! is: their steps at the edge (request id, span, metrics, the connection's
//! count of calls) run on the call's one future and its answer's one body,
//! rather than a layer, a boxed future and a body wrapper each. Measured
//! (BENCHMARKS.md, issue #15): a relay on the gateway's HTTP/2 with no
//! steps ran fewer instructions a call than nginx, and the gateway's gap
//! to it was its steps' code, spread over a dozen layers.
//!
//! Every other call (gRPC-Web, Connect, REST, a page's call with an
//! `Origin`, the gateway's own health and reflection) goes through
//! [`crate::server`]'s call stack, which does the same steps as layers.

use std::time::Instant;

use http::{Method, Request, Response, header};
use tonic::Code;
use tonic::body::Body;
use tracing::Instrument;
use wizdata_common::connections::CallMark;
use wizdata_common::grpc::grpc_status_in;
use wizdata_common::metrics::{GrpcMetricsLayer, Measured, OnCallEnd};
use wizdata_common::server::{echo_request_id, is_server_fault, request_id_of};

use crate::proxy::{ClientAddr, Proxy};
use crate::routes::Methods;
use crate::server::{GrpcProtocol, grpc_protocol};

/// The proxy, and the metrics every gRPC call at the gateway is counted in.
pub(crate) struct NativeCalls {
    proxy: Proxy,
    metrics: GrpcMetricsLayer,
}

impl NativeCalls {
    pub(crate) fn new(proxy: Proxy, metrics: GrpcMetricsLayer) -> Self {
        Self { proxy, metrics }
    }

    /// Whether `request` takes this path: a gRPC call over HTTP/2 to an RPC
    /// of the contract, from a client that is not a page in a browser
    /// (whose calls CORS answers for).
    pub(crate) fn takes<B>(request: &Request<B>) -> bool {
        request.method() == Method::POST
            && grpc_protocol(request) == Some(GrpcProtocol::Native)
            && !request.headers().contains_key(header::ORIGIN)
            && Methods::contract().get(request.uri().path()).is_some()
    }

    /// One call, from the client's connection to its answer.
    pub(crate) async fn call(&self, mut request: Request<Body>, client: ClientAddr, mark: CallMark) -> Response<Body> {
        // Give every call an id (or keep the caller's), so its log lines here and in the backend match.
        let request_id = request_id_of(&mut request);
        // One span per call with its method and request id.
        let span = crate::server::gateway_span(&request);
        // Count the call by method, and by status when its answer ends.
        let measured = self.metrics.start_call(request.uri().path());
        let mut response = self.proxy.handle(request, Some(client)).instrument(span.clone()).await;
        // Echoed, so a client can quote it when reporting a problem.
        echo_request_id(response.headers_mut(), request_id);
        let code = grpc_status_in(response.headers());
        response.map(|body| Body::new(Measured::new(body, measured, code, CallEnd { span, _mark: mark })))
    }
}

/// The end of a native call's answer: logged when the call failed through
/// a server's fault; the connection counts the call until then.
struct CallEnd {
    span: tracing::Span,
    _mark: CallMark,
}

impl OnCallEnd for CallEnd {
    fn call_ended(&mut self, code: Code, started: Instant) {
        if is_server_fault(code) {
            tracing::error!(parent: &self.span, ?code, latency = ?started.elapsed(), "call failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, version: http::Version, content_type: Option<&str>, path: &str) -> Request<()> {
        let mut request = Request::builder().method(method).version(version).uri(path);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        request.body(()).unwrap()
    }

    #[test]
    fn only_native_grpc_calls_to_the_contract_take_this_path() {
        const GET_SYMBOL: &str = "/wizdata.registry.v1.RegistryService/GetSymbol";
        let native = |content_type| request(Method::POST, http::Version::HTTP_2, Some(content_type), GET_SYMBOL);
        assert!(NativeCalls::takes(&native("application/grpc")));
        assert!(NativeCalls::takes(&native("application/grpc+proto")));
        for translated in
            ["application/grpc-web", "application/grpc-web-text+proto", "application/grpcx", "application/json"]
        {
            assert!(!NativeCalls::takes(&native(translated)), "{translated}");
        }
        assert!(!NativeCalls::takes(&request(Method::POST, http::Version::HTTP_2, None, GET_SYMBOL)));
        assert!(!NativeCalls::takes(&request(
            Method::GET,
            http::Version::HTTP_2,
            Some("application/grpc"),
            GET_SYMBOL
        )));
        let over_http1 = request(Method::POST, http::Version::HTTP_11, Some("application/grpc"), GET_SYMBOL);
        assert!(!NativeCalls::takes(&over_http1), "gRPC needs HTTP/2's trailers");
        let mut from_a_page = native("application/grpc");
        from_a_page.headers_mut().insert(header::ORIGIN, http::HeaderValue::from_static("http://page.test"));
        assert!(!NativeCalls::takes(&from_a_page), "CORS answers for a page's calls");
        // The gateway's own services, and paths the proxy refuses, go through the call stack.
        for path in ["/grpc.health.v1.Health/Check", "/wizdata.registry.v1.RegistryService/Nope", "/"] {
            let call = request(Method::POST, http::Version::HTTP_2, Some("application/grpc"), path);
            assert!(!NativeCalls::takes(&call), "{path}");
        }
    }
}

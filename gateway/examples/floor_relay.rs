//! The floors for `make bench-proxies` and `make bench-footprint`: HTTP/2
//! relays with nothing else (no routing, identity, rate limits, deadlines,
//! retries, request ids, spans or metrics, no tower stack), on one thread,
//! each client connection with a backend connection of its own. Each reads a
//! call's request whole and forwards it, and reads its answer whole (as the
//! gateway reads a small one) and passes it on. Measuring sticks, not
//! proxies: a call one cannot relay is reset or answered with an error.
//!
//! - `h2`: on the `h2` crate, server and client.
//! - `own`: on the mesh's own HTTP/2, the gateway's server connection and the
//!   client its backend calls go through. What the gateway's steps cost is
//!   the difference between the gateway and this; what any proxy on this
//!   HTTP/2 costs is at least this.
//!
//! `floor_relay h2|own LISTEN_PORT BACKEND_PORT`

use std::convert::Infallible;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::RecvStream;
use http::uri::PathAndQuery;
use http::{Request, Response};
use http_body_util::BodyExt;
use tokio::net::{TcpListener, TcpStream};
use tonic::body::Body;
use wizdata_common::http2::client::{Client, ClientSettings, Payload, handshake};
use wizdata_gateway::http2::Http2Settings;
use wizdata_gateway::http2::connection::serve;

const HEADER_LIST_BYTES: u32 = 16 << 10;
const KEEP_ALIVE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy)]
enum Stack {
    H2,
    Own,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stack = match args.first().map(String::as_str) {
        Some("h2") => Stack::H2,
        Some("own") => Stack::Own,
        _ => usage(),
    };
    let ports: Vec<u16> = args[1..].iter().filter_map(|port| port.parse().ok()).collect();
    let [listen, backend] = ports[..] else { usage() };
    let listener = TcpListener::bind(("127.0.0.1", listen)).await?;
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            let relayed = async {
                client.set_nodelay(true)?;
                let upstream = TcpStream::connect(("127.0.0.1", backend)).await?;
                upstream.set_nodelay(true)?;
                match stack {
                    Stack::H2 => relay_on_h2(client, upstream).await,
                    Stack::Own => relay_on_own(client, upstream, backend).await,
                }
            };
            if let Err(error) = relayed.await {
                eprintln!("connection ended: {error}");
            }
        });
    }
}

fn usage() -> ! {
    eprintln!("usage: floor_relay h2|own LISTEN_PORT BACKEND_PORT");
    std::process::exit(2);
}

async fn relay_on_h2(client: TcpStream, upstream: TcpStream) -> Result<(), Box<dyn std::error::Error>> {
    // The gateway's windows and largest frame toward its backends, so large
    // answers are not held back by flow control or cut into 16 KiB frames.
    let (sender, upstream) = h2::client::Builder::new()
        .initial_window_size(2 << 20)
        .initial_connection_window_size(5 << 20)
        .max_frame_size(1 << 20)
        .handshake(upstream)
        .await?;
    tokio::spawn(upstream);
    let mut calls = h2::server::handshake(client).await?;
    while let Some(call) = calls.accept().await {
        let (request, mut respond) = call?;
        let sender = sender.clone();
        tokio::spawn(async move {
            if relay_call_on_h2(request, &mut respond, sender).await.is_err() {
                respond.send_reset(h2::Reason::INTERNAL_ERROR);
            }
        });
    }
    Ok(())
}

async fn relay_call_on_h2(
    request: Request<RecvStream>,
    respond: &mut h2::server::SendResponse<Bytes>,
    sender: h2::client::SendRequest<Bytes>,
) -> Result<(), h2::Error> {
    let (parts, mut body) = request.into_parts();
    let message = read_whole_on_h2(&mut body).await?;
    let mut sender = sender.ready().await?;
    let (answer, mut sending) = sender.send_request(Request::from_parts(parts, ()), false)?;
    sending.send_data(message, true)?;
    let (parts, mut body) = answer.await?.into_parts();
    let data = read_whole_on_h2(&mut body).await?;
    let trailers = body.trailers().await?;
    // Trailers-only stays trailers-only; otherwise headers, data, trailers.
    let ends_with_headers = data.is_empty() && trailers.is_none();
    let mut stream = respond.send_response(Response::from_parts(parts, ()), ends_with_headers)?;
    if !data.is_empty() {
        stream.send_data(data, trailers.is_none())?;
    }
    if let Some(trailers) = trailers {
        stream.send_trailers(trailers)?;
    }
    Ok(())
}

/// The data of a request or answer, whole; its trailers stay to be read.
async fn read_whole_on_h2(body: &mut RecvStream) -> Result<Bytes, h2::Error> {
    let mut message = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        message.extend_from_slice(&chunk);
    }
    Ok(message.freeze())
}

async fn relay_on_own(client: TcpStream, upstream: TcpStream, backend: u16) -> Result<(), Box<dyn std::error::Error>> {
    let origin: http::Uri = format!("http://127.0.0.1:{backend}").parse()?;
    let settings = ClientSettings {
        max_header_list_size: HEADER_LIST_BYTES,
        keep_alive_interval: KEEP_ALIVE,
        keep_alive_timeout: KEEP_ALIVE,
    };
    let (calls, connection) = handshake(upstream, &origin, settings);
    tokio::spawn(connection);
    let relay = tower::service_fn(move |request: Request<Body>| {
        let calls = calls.clone();
        async move {
            Ok::<_, Infallible>(relay_call_on_own(&calls, request).await.unwrap_or_else(|status| status.into_http()))
        }
    });
    let (_running, stopping) = tokio::sync::watch::channel(false);
    let settings = Http2Settings { max_header_list_size: HEADER_LIST_BYTES, keep_alive: KEEP_ALIVE };
    serve(client, settings, relay, stopping).await?;
    Ok(())
}

async fn relay_call_on_own(calls: &Client, request: Request<Body>) -> Result<Response<Body>, tonic::Status> {
    let (parts, body) = request.into_parts();
    let message = body.collect().await?.to_bytes();
    let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    let answer = calls.send(path, parts.headers, Payload::Message(message)).await.map_err(|error| error.to_status())?;
    let (parts, mut body) = answer.into_parts();
    let mut frames: Vec<Result<http_body::Frame<Bytes>, tonic::Status>> = Vec::with_capacity(2);
    while let Some(frame) = body.frame().await {
        frames.push(Ok(frame?));
    }
    let whole = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    Ok(Response::from_parts(parts, Body::new(whole)))
}

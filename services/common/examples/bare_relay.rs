//! The floor for `make bench-proxies`: an HTTP/2 relay on the `h2` crate and
//! nothing else (no routing, identity, rate limits, request ids, spans or
//! metrics), on one thread, each client connection with a backend
//! connection of its own. It forwards a call's headers and body whole and
//! its answer whole. A measuring stick, not a proxy: a call it cannot relay
//! is reset.
//!
//! `bare_relay LISTEN_PORT BACKEND_PORT`

use bytes::{Bytes, BytesMut};
use h2::RecvStream;
use http::{Request, Response};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let ports: Vec<u16> = std::env::args().skip(1).filter_map(|port| port.parse().ok()).collect();
    let [listen, backend] = ports[..] else {
        eprintln!("usage: bare_relay LISTEN_PORT BACKEND_PORT");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(("127.0.0.1", listen)).await?;
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(error) = relay_connection(client, backend).await {
                eprintln!("connection ended: {error}");
            }
        });
    }
}

async fn relay_connection(client: TcpStream, backend: u16) -> Result<(), Box<dyn std::error::Error>> {
    client.set_nodelay(true)?;
    let upstream = TcpStream::connect(("127.0.0.1", backend)).await?;
    upstream.set_nodelay(true)?;
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
            if relay_call(request, &mut respond, sender).await.is_err() {
                respond.send_reset(h2::Reason::INTERNAL_ERROR);
            }
        });
    }
    Ok(())
}

async fn relay_call(
    request: Request<RecvStream>,
    respond: &mut h2::server::SendResponse<Bytes>,
    sender: h2::client::SendRequest<Bytes>,
) -> Result<(), h2::Error> {
    let (parts, body) = request.into_parts();
    let message = read_whole(body).await?;
    let mut sender = sender.ready().await?;
    let (answer, mut sending) = sender.send_request(Request::from_parts(parts, ()), false)?;
    sending.send_data(message, true)?;
    let (parts, mut body) = answer.await?.into_parts();
    let mut data = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await?;
    // Trailers-only stays trailers-only; otherwise headers, data, trailers.
    let ends_with_headers = data.is_empty() && trailers.is_none();
    let mut stream = respond.send_response(Response::from_parts(parts, ()), ends_with_headers)?;
    if !data.is_empty() {
        stream.send_data(data.freeze(), trailers.is_none())?;
    }
    if let Some(trailers) = trailers {
        stream.send_trailers(trailers)?;
    }
    Ok(())
}

async fn read_whole(mut body: RecvStream) -> Result<Bytes, h2::Error> {
    let mut message = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        message.extend_from_slice(&chunk);
    }
    Ok(message.freeze())
}

//! A WebSocket session with a provider: connect within a deadline, read
//! text frames with a stall deadline, answer pings at once.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::FeedError;
use crate::rest::retry_after;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `url` (ws:// or wss://). A provider's HTTP refusal of the upgrade
/// is typed: 429 a rate limit, 401/403 rejected credentials.
pub async fn connect(url: &str, within: Duration) -> Result<Socket, FeedError> {
    crate::install_tls_provider();
    match tokio::time::timeout(within, tokio_tungstenite::connect_async(url)).await {
        Err(_) => Err(FeedError::Connect(format!("no answer within {within:?}"))),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
            Err(match status {
                429 | 418 => FeedError::RateLimited(retry_after(response.headers())),
                401 | 403 => FeedError::Unauthorized(body),
                _ => FeedError::Http { status, message: body },
            })
        }
        Ok(Err(error)) => Err(FeedError::Connect(error.to_string())),
    }
}

pub async fn send_text(socket: &mut Socket, text: String) -> Result<(), FeedError> {
    socket.send(Message::text(text)).await.map_err(|error| FeedError::Closed(Some(error.to_string())))
}

/// The next data frame's text. A ping is answered at once; nothing at all
/// (not even a ping) for `stall` means the provider is gone though the TCP
/// connection may look alive.
pub async fn next_text(socket: &mut Socket, stall: Duration) -> Result<String, FeedError> {
    loop {
        let message = match tokio::time::timeout(stall, socket.next()).await {
            Err(_) => return Err(FeedError::Stalled(stall)),
            Ok(None) => return Err(FeedError::Closed(None)),
            Ok(Some(Err(error))) => return Err(FeedError::Closed(Some(error.to_string()))),
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Text(text) => return Ok(text.as_str().to_owned()),
            // Not JSON text: the caller counts it as malformed.
            Message::Binary(bytes) => return Ok(String::from_utf8_lossy(&bytes).into_owned()),
            // tungstenite queued the pong; flushing sends it now rather than
            // with our next write, which a read-only feed never makes.
            Message::Ping(_) => socket.flush().await.map_err(|error| FeedError::Closed(Some(error.to_string())))?,
            Message::Pong(_) | Message::Frame(_) => {}
            Message::Close(frame) => {
                return Err(FeedError::Closed(frame.map(|frame| format!("{} {}", frame.code, frame.reason))));
            }
        }
    }
}

//! One port, two HTTP versions: HTTP/2 is told apart by its preface, however
//! it arrives, and anything else is served as HTTP/1.1.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wizdata_test_support::TestMesh;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
const EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Reads until `enough` says the bytes so far are enough, or 10 s pass.
async fn read_until(tcp: &mut TcpStream, enough: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut received = Vec::new();
    let read = async {
        let mut buffer = [0; 4096];
        while !enough(&received) {
            let read = tcp.read(&mut buffer).await.expect("read");
            assert!(read > 0, "the gateway closed the connection after {received:?}");
            received.extend_from_slice(&buffer[..read]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("an answer within 10 s");
    received
}

#[tokio::test]
async fn a_preface_that_arrives_in_pieces_still_opens_http2() {
    let mesh = TestMesh::all().await;
    let mut tcp = TcpStream::connect(("127.0.0.1", mesh.gateway_port.unwrap())).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    // A preface split across writes (and so, here, across segments).
    tcp.write_all(&PREFACE[..7]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    tcp.write_all(&PREFACE[7..]).await.unwrap();
    tcp.write_all(&EMPTY_SETTINGS).await.unwrap();
    // The server's first frame is its SETTINGS (type 4, on stream 0).
    let received = read_until(&mut tcp, |received| received.len() >= 9).await;
    assert_eq!(received[3], 4, "a SETTINGS frame first, not an HTTP/1.1 answer: {received:?}");
    assert_eq!(&received[5..9], &[0, 0, 0, 0]);
}

#[tokio::test]
async fn anything_but_the_preface_is_http1_on_the_same_port() {
    let mesh = TestMesh::all().await;
    let port = mesh.gateway_port.unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // Starts like the preface ("P"), then is not it.
    tcp.write_all(b"POST /healthz HTTP/1.1\r\nhost: gateway\r\ncontent-length: 0\r\n\r\n").await.unwrap();
    let answer = read_until(&mut tcp, |received| received.windows(4).any(|window| window == b"\r\n\r\n")).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n").await.unwrap();
    let answer = read_until(&mut tcp, |received| received.ends_with(b"ok\n")).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
}

#[tokio::test]
async fn an_http2_head_answer_has_headers_only() {
    let mesh = TestMesh::all().await;
    let port = mesh.gateway_port.unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let mut answers = Vec::new();
    for method in [http::Method::GET, http::Method::HEAD] {
        let mut client = client.clone().ready().await.expect("ready for a stream");
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{port}/v1/no-such-route"))
            .body(())
            .unwrap();
        let (answer, _) = client.send_request(request, true).expect("send the request");
        answers.push(answer.await.expect("an answer"));
    }
    let [get, head] = &answers[..] else { unreachable!() };
    assert_eq!(get.status(), 404);
    assert!(!get.body().is_end_stream(), "GET has a body saying what was not found");
    assert_eq!(head.status(), get.status());
    // The length of the body HEAD would have had (it names the method, so
    // it is not GET's), and no body.
    for answer in [get, head] {
        assert!(answer.headers().contains_key("content-length") && answer.headers().contains_key("date"), "{answer:?}");
    }
    assert!(head.body().is_end_stream(), "HEAD ends with its headers");
}

//! The gateway's reading of gRPC message framing (gRPC and gRPC-Web bodies
//! after tonic-web's translation): a whole unary body, and the same bytes
//! streamed in arbitrary chunks. Neither may panic, and both must agree on
//! whether the bytes are well framed.
#![no_main]

use bytes::Bytes;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use wizdata_gateway::frames::{CheckedFrames, check_single_message};

const LIMIT: usize = 1 << 16;

fuzz_target!(|input: &[u8]| {
    let Some((&cuts, body)) = input.split_first() else { return };
    let has_encoding = cuts & 1 == 1;
    let _ = check_single_message(body, LIMIT, has_encoding);

    // The body in chunks whose sizes come from the first byte.
    let step = usize::from(cuts >> 1).max(1);
    let chunks: Vec<Result<http_body::Frame<Bytes>, tonic::Status>> =
        body.chunks(step).map(|chunk| Ok(http_body::Frame::data(Bytes::copy_from_slice(chunk)))).collect();
    let whole = vec![Ok::<_, tonic::Status>(http_body::Frame::data(Bytes::copy_from_slice(body)))];
    let read = |frames: Vec<Result<http_body::Frame<Bytes>, tonic::Status>>| {
        let stream = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let checked = CheckedFrames::new(stream, LIMIT, has_encoding);
        futures_util::FutureExt::now_or_never(checked.collect())
            .expect("an in-memory body is ready")
            .map(|body| body.to_bytes())
    };
    let (chunked, at_once) = (read(chunks), read(whole));
    assert_eq!(chunked.is_ok(), at_once.is_ok(), "chunking changed the verdict on {body:?}");
    if let (Ok(chunked), Ok(at_once)) = (chunked, at_once) {
        assert_eq!(chunked, at_once, "a well-framed body passes through unchanged");
        assert_eq!(&chunked[..], body);
    }
});

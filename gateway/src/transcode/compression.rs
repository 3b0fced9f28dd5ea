//! gzip for the HTTP protocols: request bodies inflated no further than the
//! message limit (a gzip bomb is refused after `limit` bytes, never held
//! whole), answers deflated when the caller accepts it and they are worth it.

use std::io::{Read, Write};

use bytes::Bytes;
use flate2::Compression;
use http::HeaderValue;
use tonic::Status;

/// How a request body (or a Connect envelope) is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    /// The encoding a `Content-Encoding` (or Connect's own) header names.
    pub fn of(value: Option<&HeaderValue>) -> Result<Self, Status> {
        let Some(value) = value else { return Ok(Self::Identity) };
        match value.to_str().map(str::trim) {
            Ok(name) if name.eq_ignore_ascii_case("identity") || name.is_empty() => Ok(Self::Identity),
            Ok(name) if name.eq_ignore_ascii_case("gzip") => Ok(Self::Gzip),
            _ => Err(Status::unimplemented(format!(
                "the request is compressed with {value:?}; the gateway accepts gzip or identity"
            ))),
        }
    }

    /// `bytes` as sent, or inflated: at most `limit` bytes come out.
    pub fn decode(self, bytes: Bytes, limit: usize) -> Result<Bytes, Status> {
        match self {
            Self::Identity => Ok(bytes),
            Self::Gzip => inflate(&bytes, limit),
        }
    }
}

/// Inflates `compressed`, reading one byte past `limit` at most: enough to
/// tell an oversized message from one exactly at the limit.
pub fn inflate(compressed: &[u8], limit: usize) -> Result<Bytes, Status> {
    let mut inflated = Vec::with_capacity((compressed.len() * 4).min(limit + 1));
    let decoder = flate2::read::GzDecoder::new(compressed);
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|error| Status::invalid_argument(format!("the request body is not valid gzip: {error}")))?;
    if inflated.len() > limit {
        // OUT_OF_RANGE, as an uncompressed message over the limit is answered.
        return Err(Status::out_of_range(format!(
            "the request message inflates to more than {limit} bytes; the gateway accepts at most {limit}"
        )));
    }
    Ok(inflated.into())
}

/// Answers smaller than this go out as they are: gzip would save a few
/// bytes and cost more time than it saves.
pub const MIN_GZIP_BYTES: usize = 1024;

/// Whether an `Accept-Encoding` (or Connect's) header accepts gzip.
pub fn accepts_gzip(value: Option<&HeaderValue>) -> bool {
    let Some(Ok(value)) = value.map(HeaderValue::to_str) else { return false };
    value.split(',').any(|offer| {
        let mut parts = offer.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let refused = parts.any(|param| param.replace(' ', "").trim_start_matches("q=").parse::<f32>() == Ok(0.0));
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

/// A whole answer's body: gzipped, with `headers` saying so, when the
/// caller's `Accept-Encoding` takes gzip and the body is worth it.
pub fn answer_body(body: Bytes, accept_encoding: Option<&HeaderValue>, headers: &mut http::HeaderMap) -> Bytes {
    if body.len() < MIN_GZIP_BYTES || !accepts_gzip(accept_encoding) {
        return body;
    }
    headers.insert(http::header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    gzip(&body)
}

pub fn gzip(bytes: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4 + 64), Compression::fast());
    encoder.write_all(bytes).expect("writing to memory cannot fail");
    encoder.finish().expect("writing to memory cannot fail").into()
}

/// Compresses a stream of chunks as one gzip member, each chunk flushed on
/// its own so a streamed answer (gRPC-Web, Connect) reaches the caller
/// message by message rather than when a compression block fills.
pub struct StreamingGzip {
    encoder: flate2::write::GzEncoder<Vec<u8>>,
}

impl Default for StreamingGzip {
    fn default() -> Self {
        Self { encoder: flate2::write::GzEncoder::new(Vec::new(), Compression::fast()) }
    }
}

impl StreamingGzip {
    pub fn chunk(&mut self, bytes: &[u8]) -> Bytes {
        self.encoder.write_all(bytes).expect("writing to memory cannot fail");
        self.encoder.flush().expect("writing to memory cannot fail");
        std::mem::take(self.encoder.get_mut()).into()
    }

    pub fn finish(self) -> Bytes {
        self.encoder.finish().expect("writing to memory cannot fail").into()
    }
}

/// `body` gzipped as it streams, each of its chunks flushed as it comes.
pub fn gzip_body(body: tonic::body::Body) -> tonic::body::Body {
    use http_body_util::BodyExt;
    let state = (body, Some(StreamingGzip::default()));
    let chunks = futures_util::stream::unfold(state, |(mut body, gzip)| async move {
        let mut gzip = gzip?;
        loop {
            match body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let chunk = gzip.chunk(&data);
                        if !chunk.is_empty() {
                            return Some((Ok(http_body::Frame::data(chunk)), (body, Some(gzip))));
                        }
                    }
                    // Trailers cannot be compressed: they pass as they are.
                    Err(frame) => return Some((Ok(frame), (body, Some(gzip)))),
                },
                Some(Err(error)) => return Some((Err(error), (body, None))),
                None => return Some((Ok(http_body::Frame::data(gzip.finish())), (body, None))),
            }
        }
    });
    tonic::body::Body::new(http_body_util::StreamBody::new(chunks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips_within_the_limit() {
        let message = b"hello ".repeat(100);
        assert_eq!(inflate(&gzip(&message), 600).unwrap(), message.as_slice());
        assert_eq!(inflate(&gzip(&message), 599).unwrap_err().code(), tonic::Code::OutOfRange);
    }

    #[test]
    fn a_gzip_bomb_is_refused_at_the_limit() {
        // 64 MiB of zeros compress to about 64 KiB.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&vec![0u8; 64 << 20]).unwrap();
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 100_000, "{}", bomb.len());
        let refused = inflate(&bomb, 4 << 20).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::OutOfRange);
        assert!(refused.message().contains("4194304"), "{}", refused.message());
    }

    #[test]
    fn not_gzip_is_invalid_argument() {
        assert_eq!(inflate(b"plain text", 100).unwrap_err().code(), tonic::Code::InvalidArgument);
        assert_eq!(Encoding::of(Some(&HeaderValue::from_static("br"))).unwrap_err().code(), tonic::Code::Unimplemented);
        assert_eq!(Encoding::of(Some(&HeaderValue::from_static("GZIP"))).unwrap(), Encoding::Gzip);
    }

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        let accepts = |value: &'static str| accepts_gzip(Some(&HeaderValue::from_static(value)));
        assert!(accepts("gzip"));
        assert!(accepts("deflate, gzip;q=0.5"));
        assert!(accepts("*"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("br, deflate"));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn streamed_chunks_form_one_gzip_member_readable_chunk_by_chunk() {
        let mut gzip = StreamingGzip::default();
        let mut out = gzip.chunk(b"first message ").to_vec();
        let mut partial = [0u8; 14];
        flate2::read::GzDecoder::new(out.as_slice()).read_exact(&mut partial).unwrap();
        assert_eq!(&partial, b"first message ", "the first chunk is readable before the stream ends");
        out.extend_from_slice(&gzip.chunk(b"second"));
        out.extend_from_slice(&gzip.finish());
        assert_eq!(inflate(&out, 100).unwrap(), b"first message second".as_slice());
    }
}

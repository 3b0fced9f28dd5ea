//! The mesh's own HTTP/2 reading of what clients send: frames out of a
//! connection's buffer, and header blocks through HPACK. Neither may panic;
//! reading the same bytes in pieces must give the same frames as at once;
//! and a decoder fed the blocks of an encoder must read back what it wrote.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use wizdata_common::http2::frame::{self, DEFAULT_MAX_FRAME_SIZE};
use wizdata_common::http2::hpack::{Decoder, Encoder, Indexing, Name};

fuzz_target!(|input: &[u8]| {
    let Some((&step, bytes)) = input.split_first() else { return };

    // Frames: all at once, and in pieces of `step` bytes.
    let read_all = |pieces: &mut dyn Iterator<Item = &[u8]>| {
        let (mut buffer, mut frames) = (BytesMut::new(), Vec::new());
        for piece in pieces {
            buffer.extend_from_slice(piece);
            loop {
                match frame::read(&mut buffer, DEFAULT_MAX_FRAME_SIZE) {
                    Ok(Some(frame)) => frames.push(Ok(frame)),
                    Ok(None) => break,
                    Err(error) => {
                        frames.push(Err(error));
                        return frames;
                    }
                }
            }
        }
        frames
    };
    let whole = read_all(&mut std::iter::once(bytes));
    let pieces = read_all(&mut bytes.chunks(usize::from(step).max(1)));
    assert_eq!(whole, pieces, "reading in pieces changed the frames");

    // Header blocks: any bytes decode or are refused, without a panic.
    let mut decoder = Decoder::default();
    let _ = decoder.decode(&Bytes::copy_from_slice(bytes), |_| {});

    // What the encoder writes of printable fields reads back the same.
    let fields: Vec<(Name, &[u8])> = bytes
        .split(|&byte| byte == b'\n')
        .filter(|value| value.iter().all(|byte| (b' '..=b'~').contains(byte)))
        .map(|value| (Name::parse(b"x-fuzz"), value))
        .collect();
    let (mut encoder, mut decoder, mut block) = (Encoder::default(), Decoder::default(), BytesMut::new());
    encoder.start_block(&mut block);
    for (number, (name, value)) in fields.iter().enumerate() {
        let indexing = if number % 2 == 0 { Indexing::Indexed } else { Indexing::NotIndexed };
        encoder.encode(name, value, indexing, &mut block);
    }
    let mut read_back = Vec::new();
    decoder.decode(&block.freeze(), |field| read_back.push(field.value)).expect("an encoder's block decodes");
    assert_eq!(read_back.len(), fields.len());
    assert!(read_back.iter().zip(&fields).all(|(read, (_, written))| read == written));
});

//! HPACK's Huffman code (RFC 7541, Appendix B), decoding only: this layer
//! encodes its own header blocks without it.
//!
//! The code is canonical: sorted by length and then by symbol, each code is
//! the one before it plus one, shifted left by the growth in length. So the
//! 257 code lengths are all the table there is, and a code's symbol is found
//! from its length and its distance from the first code of that length.

use bytes::Bytes;

/// The length in bits of each symbol's code: bytes 0 to 255, then EOS (256).
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28,
    28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12,
    10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6,
    5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22,
    22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20,
    22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28,
    27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28,
    27, 27, 27, 27, 27, 26, 30,
];

const SHORTEST: usize = 5;
const LONGEST: usize = 30;
const EOS: u16 = 256;

/// What decoding needs of the canonical code, per length: the first code
/// of that length, left-aligned in 32 bits, and where its symbols start in
/// `symbols`; and the symbols in code order.
struct Canonical {
    /// `limit[len]`: the first code longer than `len`, left-aligned; a
    /// window below it holds a code of at most `len` bits.
    limit: [u64; LONGEST + 1],
    first: [u32; LONGEST + 1],
    offset: [u16; LONGEST + 1],
    symbols: [u16; 257],
}

const CODE: Canonical = canonical();

/// Codes of at most 8 bits (the letters, digits and punctuation of paths
/// and names), by the byte they start: their symbol and length, or a
/// length of 0 for a longer code.
const SHORT_CODES: [(u8, u8); 256] = short_codes();

const fn short_codes() -> [(u8, u8); 256] {
    let mut table = [(0u8, 0u8); 256];
    let mut len = SHORTEST;
    while len <= 8 {
        let count = CODE.offset[len + 1] - CODE.offset[len];
        let mut position = 0;
        while position < count {
            let code = CODE.first[len] as usize + position as usize;
            let symbol = CODE.symbols[(CODE.offset[len] + position) as usize] as u8;
            let mut suffix = 0;
            while suffix < 1 << (8 - len) {
                table[(code << (8 - len)) | suffix] = (symbol, len as u8);
                suffix += 1;
            }
            position += 1;
        }
        len += 1;
    }
    table
}

const fn canonical() -> Canonical {
    let mut count = [0u16; LONGEST + 1];
    let mut symbol = 0;
    while symbol < 257 {
        count[CODE_LENGTHS[symbol] as usize] += 1;
        symbol += 1;
    }
    let mut first = [0u32; LONGEST + 1];
    let mut offset = [0u16; LONGEST + 1];
    let mut limit = [0u64; LONGEST + 1];
    let (mut code, mut placed, mut len) = (0u32, 0u16, SHORTEST);
    while len <= LONGEST {
        first[len] = code;
        offset[len] = placed;
        code += count[len] as u32;
        placed += count[len];
        limit[len] = (code as u64) << (32 - len);
        code <<= 1;
        len += 1;
    }
    let mut symbols = [0u16; 257];
    let mut next = offset;
    let mut symbol = 0;
    while symbol < 257 {
        let len = CODE_LENGTHS[symbol] as usize;
        symbols[next[len] as usize] = symbol as u16;
        next[len] += 1;
        symbol += 1;
    }
    Canonical { limit, first, offset, symbols }
}

/// Why a Huffman-coded string could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HuffmanError {
    /// The string holds the end-of-string symbol, which only pads.
    EndOfString,
    /// The last bits are not a prefix of EOS (all ones), or more than seven.
    BadPadding,
}

/// Strings that may decode to more than this are decoded into a buffer of
/// their own rather than the caller's scratch, which stays this small.
const SCRATCH_BYTES: usize = 1024;

/// Decodes `coded`. A string of the usual size (a path, an id, a number) is
/// decoded in `scratch`, kept by the caller from string to string, and then
/// copied out at its exact length: one allocation, where a buffer of its
/// own was one to decode into, zeroed first, and one more to share it.
pub fn decode(coded: &[u8], scratch: &mut Vec<u8>) -> Result<Bytes, HuffmanError> {
    // Room for the most symbols `coded` can hold (the shortest code is 5
    // bits), written by index: a push each checked and grew the vector.
    let most = coded.len() * 8 / SHORTEST;
    let mut own = Vec::new();
    let room = if most > SCRATCH_BYTES { &mut own } else { scratch };
    if room.len() < most {
        room.resize(most, 0);
    }
    let written = decode_into(coded, &mut room[..most])?;
    Ok(Bytes::copy_from_slice(&room[..written]))
}

/// Decodes `coded` into `out`, which has room for it; says how many bytes it wrote.
fn decode_into(coded: &[u8], out: &mut [u8]) -> Result<usize, HuffmanError> {
    let mut written = 0;
    // Bits not yet decoded, left-aligned in the low 32 bits' worth of a
    // window: `bits` holds `held` of them at its top.
    let mut bits: u64 = 0;
    let mut held: usize = 0;
    let mut read = 0;
    loop {
        if held <= 56 {
            if let Some(word) = coded.get(read..read + 8) {
                // Eight bytes at once, counting the whole ones that fit. The
                // bits shifted in past them are the input's next bits, so
                // putting them in again when they are counted changes nothing.
                bits |= u64::from_be_bytes(word.try_into().expect("eight bytes")) >> held;
                let whole = (64 - held) / 8;
                read += whole;
                held += whole * 8;
            } else {
                while held <= 56 && read < coded.len() {
                    bits |= u64::from(coded[read]) << (56 - held);
                    read += 1;
                    held += 8;
                }
            }
        }
        // Short codes, as many as the held bits hold, without a refill
        // between them: most of a header value is letters and digits.
        while held >= 8 {
            let (symbol, len) = SHORT_CODES[(bits >> 56) as usize];
            if len == 0 {
                break;
            }
            out[written] = symbol;
            written += 1;
            bits <<= len;
            held -= usize::from(len);
        }
        if held <= 56 && read < coded.len() {
            continue;
        }
        if held < SHORTEST {
            break;
        }
        let (symbol, len) = SHORT_CODES[(bits >> 56) as usize];
        if len != 0 && usize::from(len) <= held {
            out[written] = symbol;
            written += 1;
            bits <<= len;
            held -= usize::from(len);
            continue;
        }
        let window = bits >> 32;
        let Some(len) = (SHORTEST..=LONGEST).find(|&len| window < CODE.limit[len]) else {
            return Err(HuffmanError::BadPadding);
        };
        if len > held {
            // What is left is shorter than the code it starts: padding.
            break;
        }
        let index = CODE.offset[len] as u32 + (window >> (32 - len)) as u32 - CODE.first[len];
        let symbol = CODE.symbols[index as usize];
        if symbol == EOS {
            return Err(HuffmanError::EndOfString);
        }
        out[written] = symbol as u8;
        written += 1;
        bits <<= len;
        held -= len;
    }
    // Padding: fewer than eight bits, all ones (the start of EOS).
    let all_ones = held == 0 || bits >> (64 - held) == (1 << held) - 1;
    if held > 7 || !all_ones {
        return Err(HuffmanError::BadPadding);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes with the canonical code: the tests' way to make input.
    fn encode(plain: &[u8]) -> Vec<u8> {
        let mut codes = [0u32; 257];
        for len in SHORTEST..=LONGEST {
            let from = CODE.offset[len] as usize;
            let to = if len == LONGEST { 257 } else { CODE.offset[len + 1] as usize };
            for (position, &symbol) in CODE.symbols[from..to].iter().enumerate() {
                codes[symbol as usize] = CODE.first[len] + position as u32;
            }
        }
        let (mut out, mut bits, mut held) = (Vec::new(), 0u64, 0usize);
        for &byte in plain {
            let len = CODE_LENGTHS[byte as usize] as usize;
            bits = (bits << len) | u64::from(codes[byte as usize]);
            held += len;
            while held >= 8 {
                out.push((bits >> (held - 8)) as u8);
                held -= 8;
            }
        }
        if held > 0 {
            out.push(((bits << (8 - held)) as u8) | ((1u8 << (8 - held)) - 1));
        }
        out
    }

    fn decoded(coded: &[u8]) -> Result<Vec<u8>, HuffmanError> {
        decode(coded, &mut Vec::new()).map(|decoded| decoded.to_vec())
    }

    #[test]
    fn the_codes_are_the_rfcs() {
        // RFC 7541 Appendix B: '0' is 00000, 'a' is 00011, '&' is 11111000,
        // EOS is thirty ones.
        assert_eq!(encode(b"0"), [0b0000_0111]);
        assert_eq!(encode(b"a"), [0b0001_1111]);
        assert_eq!(encode(b"&"), [0b1111_1000]);
        assert_eq!(CODE.limit[LONGEST], 1 << 32, "the last code of the longest length is all ones");
    }

    #[test]
    fn the_rfcs_examples_decode() {
        // RFC 7541 Appendix C.4 and C.6.
        let examples: [(&str, &[u8]); 5] = [
            ("f1e3c2e5f23a6ba0ab90f4ff", b"www.example.com"),
            ("a8eb10649cbf", b"no-cache"),
            ("25a849e95ba97d7f", b"custom-key"),
            ("25a849e95bb8e8b4bf", b"custom-value"),
            ("6402", b"302"),
        ];
        for (hex, plain) in examples {
            let coded: Vec<u8> =
                (0..hex.len()).step_by(2).map(|at| u8::from_str_radix(&hex[at..at + 2], 16).unwrap()).collect();
            assert_eq!(decoded(&coded).unwrap(), plain);
            assert_eq!(encode(plain), coded);
        }
    }

    #[test]
    fn every_byte_round_trips() {
        let every: Vec<u8> = (0..=255).collect();
        assert_eq!(decoded(&encode(&every)).unwrap(), every);
        assert_eq!(decoded(&[]).unwrap(), b"");
        // Only short codes, as many as the input can hold: eight '0's in five bytes.
        assert_eq!(decoded(&encode(b"00000000")).unwrap(), b"00000000");
    }

    #[test]
    fn each_string_decodes_alone_whatever_the_scratch_held() {
        let mut scratch = Vec::new();
        let long = "/wizdata.registry.v1.RegistryService/GetSymbol";
        assert_eq!(decode(&encode(long.as_bytes()), &mut scratch).unwrap(), long);
        assert_eq!(decode(&encode(b"11"), &mut scratch).unwrap(), "11", "nothing of the longer string before");
        assert_eq!(decode(&[0b0000_0111, 0xff], &mut scratch), Err(HuffmanError::BadPadding));
        assert_eq!(decode(&encode(b"www.example.com"), &mut scratch).unwrap(), "www.example.com");
        assert_eq!(decode(&[], &mut scratch).unwrap(), "");
        // Past the scratch's size a string gets a buffer of its own; the scratch stays small.
        let large = "x-".repeat(SCRATCH_BYTES);
        assert_eq!(decode(&encode(large.as_bytes()), &mut scratch).unwrap(), large);
        assert!(scratch.len() <= SCRATCH_BYTES, "{}", scratch.len());
    }

    #[test]
    fn bad_padding_and_eos_are_refused() {
        // '0' (00000) padded with zeros, not ones.
        assert_eq!(decoded(&[0b0000_0000]), Err(HuffmanError::BadPadding));
        // A whole byte of padding after a complete code.
        assert_eq!(decoded(&[0b0000_0111, 0xff]), Err(HuffmanError::BadPadding));
        // EOS itself: thirty ones, then two of padding.
        assert_eq!(decoded(&[0xff, 0xff, 0xff, 0xff]), Err(HuffmanError::EndOfString));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_round_trip(plain: Vec<u8>) {
            proptest::prop_assert_eq!(decoded(&encode(&plain)).unwrap(), plain);
        }

        /// One scratch for many strings, as a connection's decoder keeps it.
        #[test]
        fn strings_in_turn_round_trip_through_one_scratch(plains: Vec<Vec<u8>>) {
            let mut scratch = Vec::new();
            for plain in plains {
                proptest::prop_assert_eq!(decode(&encode(&plain), &mut scratch).unwrap(), plain);
            }
        }

        #[test]
        fn any_input_decodes_or_is_refused(coded: Vec<u8>) {
            let _ = decoded(&coded);
        }
    }
}

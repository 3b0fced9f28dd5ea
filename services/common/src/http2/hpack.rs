//! HPACK, HTTP/2's header compression (RFC 7541), for the mesh's own
//! HTTP/2 layer.
//!
//! Why not h2's: callgrind puts HPACK at 31k of the 133k instructions a
//! proxied call costs (BENCHMARKS.md, issue #15), most of nginx's whole call.
//! h2 looks every header up in its dynamic table by hash, Huffman-codes
//! every value it sends, allocates every string it reads, and parses every
//! name again. Here a table entry keeps its name already parsed and its
//! value as shared bytes, so a field sent again costs a clone; literals are
//! sliced out of the header block rather than copied; and the encoder sends
//! values as they are (no Huffman: the mesh's peers are a network hop
//! away at most, where a few bytes of headers cost less than the coding),
//! indexing only the fields that repeat from call to call.

pub mod huffman;

use std::collections::VecDeque;
use std::fmt;

use bytes::{Bytes, BytesMut};
use http::HeaderName;
use http::header;

/// The table size HTTP/2 starts with (`SETTINGS_HEADER_TABLE_SIZE`), and
/// the most this encoder uses whatever its peer allows.
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// A field's name, parsed once: pseudo-headers by kind, the rest as
/// `http`'s names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Name {
    Authority,
    Method,
    Path,
    Scheme,
    Status,
    Protocol,
    Header(HeaderName),
    /// A name HTTP/2 does not allow (upper case, an unknown pseudo-header,
    /// a byte outside a token): the message that carries it is malformed.
    /// Kept, with its length, only so the table stays in step with the peer's.
    Malformed(usize),
}

impl Name {
    /// Parses a name as it arrived.
    pub fn parse(bytes: &[u8]) -> Self {
        match bytes {
            b":authority" => Self::Authority,
            b":method" => Self::Method,
            b":path" => Self::Path,
            b":scheme" => Self::Scheme,
            b":status" => Self::Status,
            b":protocol" => Self::Protocol,
            // `HeaderName` would accept upper case by lowering it; HTTP/2 does not.
            _ if bytes.iter().any(u8::is_ascii_uppercase) => Self::Malformed(bytes.len()),
            _ => HeaderName::from_bytes(bytes).map_or(Self::Malformed(bytes.len()), Self::Header),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Authority => ":authority",
            Self::Method => ":method",
            Self::Path => ":path",
            Self::Scheme => ":scheme",
            Self::Status => ":status",
            Self::Protocol => ":protocol",
            Self::Header(name) => name.as_str(),
            Self::Malformed(_) => "",
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Malformed(len) => *len,
            name => name.as_str().len(),
        }
    }
}

/// One header field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: Name,
    pub value: Bytes,
    /// Sent as never-indexed (a credential, say): a proxy passes it on the same way.
    pub sensitive: bool,
}

impl Field {
    /// What the field counts for in a table and in a header list's size.
    pub fn size(&self) -> usize {
        self.name.len() + self.value.len() + 32
    }
}

/// The static table (RFC 7541, Appendix A); index 1 is the first entry.
static STATIC_TABLE: [(Name, &str); 61] = [
    (Name::Authority, ""),
    (Name::Method, "GET"),
    (Name::Method, "POST"),
    (Name::Path, "/"),
    (Name::Path, "/index.html"),
    (Name::Scheme, "http"),
    (Name::Scheme, "https"),
    (Name::Status, "200"),
    (Name::Status, "204"),
    (Name::Status, "206"),
    (Name::Status, "304"),
    (Name::Status, "400"),
    (Name::Status, "404"),
    (Name::Status, "500"),
    (Name::Header(header::ACCEPT_CHARSET), ""),
    (Name::Header(header::ACCEPT_ENCODING), "gzip, deflate"),
    (Name::Header(header::ACCEPT_LANGUAGE), ""),
    (Name::Header(header::ACCEPT_RANGES), ""),
    (Name::Header(header::ACCEPT), ""),
    (Name::Header(header::ACCESS_CONTROL_ALLOW_ORIGIN), ""),
    (Name::Header(header::AGE), ""),
    (Name::Header(header::ALLOW), ""),
    (Name::Header(header::AUTHORIZATION), ""),
    (Name::Header(header::CACHE_CONTROL), ""),
    (Name::Header(header::CONTENT_DISPOSITION), ""),
    (Name::Header(header::CONTENT_ENCODING), ""),
    (Name::Header(header::CONTENT_LANGUAGE), ""),
    (Name::Header(header::CONTENT_LENGTH), ""),
    (Name::Header(header::CONTENT_LOCATION), ""),
    (Name::Header(header::CONTENT_RANGE), ""),
    (Name::Header(header::CONTENT_TYPE), ""),
    (Name::Header(header::COOKIE), ""),
    (Name::Header(header::DATE), ""),
    (Name::Header(header::ETAG), ""),
    (Name::Header(header::EXPECT), ""),
    (Name::Header(header::EXPIRES), ""),
    (Name::Header(header::FROM), ""),
    (Name::Header(header::HOST), ""),
    (Name::Header(header::IF_MATCH), ""),
    (Name::Header(header::IF_MODIFIED_SINCE), ""),
    (Name::Header(header::IF_NONE_MATCH), ""),
    (Name::Header(header::IF_RANGE), ""),
    (Name::Header(header::IF_UNMODIFIED_SINCE), ""),
    (Name::Header(header::LAST_MODIFIED), ""),
    (Name::Header(header::LINK), ""),
    (Name::Header(header::LOCATION), ""),
    (Name::Header(header::MAX_FORWARDS), ""),
    (Name::Header(header::PROXY_AUTHENTICATE), ""),
    (Name::Header(header::PROXY_AUTHORIZATION), ""),
    (Name::Header(header::RANGE), ""),
    (Name::Header(header::REFERER), ""),
    (Name::Header(header::REFRESH), ""),
    (Name::Header(header::RETRY_AFTER), ""),
    (Name::Header(header::SERVER), ""),
    (Name::Header(header::SET_COOKIE), ""),
    (Name::Header(header::STRICT_TRANSPORT_SECURITY), ""),
    (Name::Header(header::TRANSFER_ENCODING), ""),
    (Name::Header(header::USER_AGENT), ""),
    (Name::Header(header::VARY), ""),
    (Name::Header(header::VIA), ""),
    (Name::Header(header::WWW_AUTHENTICATE), ""),
];

/// Where a field stands in the static table: the index of its name, and
/// whether its value is there too.
fn find_static(name: &Name, value: &[u8]) -> Option<(usize, bool)> {
    let first = match name {
        Name::Authority => 1,
        Name::Method => 2,
        Name::Path => 4,
        Name::Scheme => 6,
        Name::Status => 8,
        Name::Protocol | Name::Malformed(_) => return None,
        Name::Header(header) => static_name_index(header.as_str())?,
    };
    let same_name = STATIC_TABLE[first - 1..].iter().take_while(|(entry, _)| entry == name);
    match same_name.zip(first..).find(|((_, entry_value), _)| entry_value.as_bytes() == value) {
        Some((_, index)) => Some((index, true)),
        None => Some((first, false)),
    }
}

/// The static table's index of a header name: a match on the name's text,
/// which the compiler sorts by length, rather than comparing it with each
/// of the table's 47 names in turn.
fn static_name_index(name: &str) -> Option<usize> {
    Some(match name {
        "accept-charset" => 15,
        "accept-encoding" => 16,
        "accept-language" => 17,
        "accept-ranges" => 18,
        "accept" => 19,
        "access-control-allow-origin" => 20,
        "age" => 21,
        "allow" => 22,
        "authorization" => 23,
        "cache-control" => 24,
        "content-disposition" => 25,
        "content-encoding" => 26,
        "content-language" => 27,
        "content-length" => 28,
        "content-location" => 29,
        "content-range" => 30,
        "content-type" => 31,
        "cookie" => 32,
        "date" => 33,
        "etag" => 34,
        "expect" => 35,
        "expires" => 36,
        "from" => 37,
        "host" => 38,
        "if-match" => 39,
        "if-modified-since" => 40,
        "if-none-match" => 41,
        "if-range" => 42,
        "if-unmodified-since" => 43,
        "last-modified" => 44,
        "link" => 45,
        "location" => 46,
        "max-forwards" => 47,
        "proxy-authenticate" => 48,
        "proxy-authorization" => 49,
        "range" => 50,
        "referer" => 51,
        "refresh" => 52,
        "retry-after" => 53,
        "server" => 54,
        "set-cookie" => 55,
        "strict-transport-security" => 56,
        "transfer-encoding" => 57,
        "user-agent" => 58,
        "vary" => 59,
        "via" => 60,
        "www-authenticate" => 61,
        _ => return None,
    })
}

/// The dynamic table (RFC 7541, 2.3.2): newest first, oldest evicted.
#[derive(Debug)]
struct Table {
    entries: VecDeque<Field>,
    size: usize,
    max_size: usize,
}

impl Table {
    fn new(max_size: usize) -> Self {
        Self { entries: VecDeque::new(), size: 0, max_size }
    }

    /// An index in the table's address space (the static table's 61
    /// entries, then this one's, newest first).
    fn get(&self, index: usize) -> Option<Field> {
        match index {
            0 => None,
            1..=61 => {
                let (name, value) = &STATIC_TABLE[index - 1];
                Some(Field { name: name.clone(), value: Bytes::from_static(value.as_bytes()), sensitive: false })
            }
            _ => self.entries.get(index - 62).cloned(),
        }
    }

    fn insert(&mut self, field: Field) {
        let size = field.size();
        self.evict_to(self.max_size.saturating_sub(size));
        // An entry larger than the whole table empties it and is not added.
        if size <= self.max_size {
            self.size += size;
            self.entries.push_front(field);
        }
    }

    fn resize(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    fn evict_to(&mut self, size: usize) {
        while self.size > size {
            let oldest = self.entries.pop_back().expect("a table holding bytes holds entries");
            self.size -= oldest.size();
        }
    }
}

/// Why a header block could not be read. Each leaves the connection's
/// table out of step with the peer's, so each ends the connection
/// (`COMPRESSION_ERROR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The block ends inside a field.
    Truncated,
    /// An integer longer than any index or length can be.
    IntegerTooLarge,
    /// An index past both tables, or zero.
    NoSuchIndex(usize),
    Huffman(huffman::HuffmanError),
    /// A table size update above the size this side allowed.
    TableTooLarge {
        size: usize,
        allowed: usize,
    },
    /// A table size update after the block's first field.
    LateTableSizeUpdate,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("a header block ends inside a field"),
            Self::IntegerTooLarge => f.write_str("a header block holds an integer too large for it"),
            Self::NoSuchIndex(index) => write!(f, "a header block refers to index {index}, which neither table has"),
            Self::Huffman(huffman::HuffmanError::EndOfString) => f.write_str("a Huffman-coded string holds EOS"),
            Self::Huffman(huffman::HuffmanError::BadPadding) => f.write_str("a Huffman-coded string is badly padded"),
            Self::TableTooLarge { size, allowed } => {
                write!(f, "a header block sets its table to {size} bytes, above the {allowed} allowed")
            }
            Self::LateTableSizeUpdate => f.write_str("a header block updates its table size after a field"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Reads header blocks from one peer, keeping its dynamic table.
#[derive(Debug)]
pub struct Decoder {
    table: Table,
    /// The largest table this side allows (its `SETTINGS_HEADER_TABLE_SIZE`).
    allowed: usize,
    /// Where Huffman-coded strings are decoded (see [`huffman::decode`]).
    scratch: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self { table: Table::new(DEFAULT_TABLE_SIZE), allowed: DEFAULT_TABLE_SIZE, scratch: Vec::new() }
    }
}

impl Decoder {
    /// Hands each field of `block` to `field`, in order. On an error some
    /// fields may have been handed over already; the connection ends anyway.
    pub fn decode(&mut self, block: &Bytes, field: impl FnMut(Field)) -> Result<(), DecodeError> {
        let mut reader = Reader { block, at: 0, scratch: std::mem::take(&mut self.scratch) };
        let decoded = self.decode_fields(&mut reader, field);
        self.scratch = reader.scratch;
        decoded
    }

    fn decode_fields(&mut self, reader: &mut Reader<'_>, mut field: impl FnMut(Field)) -> Result<(), DecodeError> {
        let block = reader.block;
        let mut at_start = true;
        while let Some(&first) = block.get(reader.at) {
            let decoded = match first {
                // 1xxxxxxx: an indexed field.
                0x80..=0xff => {
                    let index = reader.integer(7)?;
                    self.table.get(index).ok_or(DecodeError::NoSuchIndex(index))?
                }
                // 01xxxxxx: a literal, added to the table.
                0x40..=0x7f => {
                    let decoded = self.literal(reader, 6, false)?;
                    self.table.insert(decoded.clone());
                    decoded
                }
                // 001xxxxx: a table size update, allowed only before the first field.
                0x20..=0x3f => {
                    if !at_start {
                        return Err(DecodeError::LateTableSizeUpdate);
                    }
                    let size = reader.integer(5)?;
                    if size > self.allowed {
                        return Err(DecodeError::TableTooLarge { size, allowed: self.allowed });
                    }
                    self.table.resize(size);
                    continue;
                }
                // 0001xxxx: a literal never to be indexed; 0000xxxx: a literal not indexed.
                0x10..=0x1f => self.literal(reader, 4, true)?,
                0x00..=0x0f => self.literal(reader, 4, false)?,
            };
            at_start = false;
            field(decoded);
        }
        Ok(())
    }

    fn literal(&self, reader: &mut Reader<'_>, prefix: u8, sensitive: bool) -> Result<Field, DecodeError> {
        let name = match reader.integer(prefix)? {
            0 => Name::parse(&reader.string()?),
            index => self.table.get(index).ok_or(DecodeError::NoSuchIndex(index))?.name,
        };
        Ok(Field { name, value: reader.string()?, sensitive })
    }
}

/// A position in a header block.
struct Reader<'a> {
    block: &'a Bytes,
    at: usize,
    /// The decoder's, for Huffman-coded strings.
    scratch: Vec<u8>,
}

impl Reader<'_> {
    /// An integer with a `prefix`-bit prefix (RFC 7541, 5.1).
    fn integer(&mut self, prefix: u8) -> Result<usize, DecodeError> {
        let max_prefix = (1usize << prefix) - 1;
        let first = *self.block.get(self.at).ok_or(DecodeError::Truncated)?;
        self.at += 1;
        let mut value = usize::from(first) & max_prefix;
        if value < max_prefix {
            return Ok(value);
        }
        // Four more bytes reach 2^28, more than any header block can hold.
        for shift in [0, 7, 14, 21] {
            let byte = *self.block.get(self.at).ok_or(DecodeError::Truncated)?;
            self.at += 1;
            value += usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::IntegerTooLarge)
    }

    /// A string literal (RFC 7541, 5.2): sliced from the block as it is,
    /// or decoded when Huffman-coded.
    fn string(&mut self) -> Result<Bytes, DecodeError> {
        let huffman = self.block.get(self.at).ok_or(DecodeError::Truncated)? & 0x80 != 0;
        let len = self.integer(7)?;
        let end = self.at.checked_add(len).filter(|&end| end <= self.block.len()).ok_or(DecodeError::Truncated)?;
        let raw = self.block.slice(self.at..end);
        self.at = end;
        if !huffman {
            return Ok(raw);
        }
        huffman::decode(&raw, &mut self.scratch).map_err(DecodeError::Huffman)
    }
}

/// How a field is to be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indexing {
    /// Added to the table, so it costs an index when it comes again.
    Indexed,
    /// Sent as it is: a value that differs from call to call.
    NotIndexed,
    /// Sent as it is, and never indexed by anyone who passes it on (a credential).
    Never,
}

impl Indexing {
    /// The choice for a header this layer sends: values that change from
    /// call to call (ids, deadlines, counters, dates) would only churn the
    /// table, and credentials stay out of every table.
    pub fn for_header(name: &Name, sensitive: bool) -> Self {
        if sensitive {
            return Self::Never;
        }
        let Name::Header(name) = name else { return Self::Indexed };
        const CHANGING: [&str; 10] = [
            "x-request-id",
            "grpc-timeout",
            "grpc-message",
            "grpc-status-details-bin",
            "ratelimit-remaining",
            "ratelimit-reset",
            "retry-after",
            "content-length",
            "date",
            "traceparent",
        ];
        if name == header::AUTHORIZATION || name == header::COOKIE || name.as_str() == "x-api-key" {
            Self::Never
        } else if CHANGING.contains(&name.as_str()) {
            Self::NotIndexed
        } else {
            Self::Indexed
        }
    }
}

/// Writes header blocks to one peer, keeping the table the peer keeps of them.
#[derive(Debug)]
pub struct Encoder {
    table: Table,
    /// Table sizes the peer asked for since the last block, to be
    /// announced at the start of the next: the smallest, then the last
    /// (RFC 7541, 4.2), so the peer evicts what this side evicted.
    resized: Option<(usize, usize)>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self { table: Table::new(DEFAULT_TABLE_SIZE), resized: None }
    }
}

impl Encoder {
    /// The peer's `SETTINGS_HEADER_TABLE_SIZE`. This encoder uses at most
    /// [`DEFAULT_TABLE_SIZE`] whatever the peer allows.
    pub fn set_peer_table_size(&mut self, allowed: usize) {
        let size = allowed.min(DEFAULT_TABLE_SIZE);
        if size != self.table.max_size {
            self.table.resize(size);
            let smallest = self.resized.map_or(size, |(smallest, _)| smallest.min(size));
            self.resized = Some((smallest, size));
        }
    }

    /// Starts a header block: announces a table size the peer changed.
    pub fn start_block(&mut self, dst: &mut BytesMut) {
        if let Some((smallest, last)) = self.resized.take() {
            if smallest < last {
                put_integer(smallest, 5, 0x20, dst);
            }
            put_integer(last, 5, 0x20, dst);
        }
    }

    /// Adds every header of `headers` HTTP/2 carries to the block, each
    /// indexed as [`Indexing::for_header`] chooses. `Host` is left out: a
    /// request says it with `:authority` (an HTTP/1.1 caller's, passed on,
    /// could contradict it), and an answer has no use for it.
    pub fn encode_headers(&mut self, headers: &http::HeaderMap, dst: &mut BytesMut) {
        for (name, value) in headers {
            if super::is_connection_specific(name) || name == header::HOST {
                continue;
            }
            let name = Name::Header(name.clone());
            let indexing = Indexing::for_header(&name, value.is_sensitive());
            self.encode(&name, value.as_bytes(), indexing, dst);
        }
    }

    /// Adds one field to the block begun with [`Encoder::start_block`].
    pub fn encode(&mut self, name: &Name, value: &[u8], indexing: Indexing, dst: &mut BytesMut) {
        debug_assert!(!matches!(name, Name::Malformed(_)), "a malformed name is never sent");
        let known = find_static(name, value);
        if let Some((index, true)) = known {
            return put_integer(index, 7, 0x80, dst);
        }
        let same_name = known.map(|(index, _)| index);
        let (prefix, flags) = match indexing {
            Indexing::Never => (4, 0x10),
            Indexing::NotIndexed => (4, 0x00),
            Indexing::Indexed => {
                // Lengths first: most entries differ in them, which is cheaper to see.
                let dynamic =
                    self.table.entries.iter().position(|entry| {
                        entry.value.len() == value.len() && entry.name == *name && entry.value == value
                    });
                if let Some(position) = dynamic {
                    return put_integer(62 + position, 7, 0x80, dst);
                }
                let name_index = same_name.or_else(|| {
                    self.table.entries.iter().position(|entry| entry.name == *name).map(|position| 62 + position)
                });
                put_literal(name_index, name, value, 6, 0x40, dst);
                let field = Field { name: name.clone(), value: Bytes::copy_from_slice(value), sensitive: false };
                return self.table.insert(field);
            }
        };
        put_literal(same_name, name, value, prefix, flags, dst);
    }
}

fn put_literal(name_index: Option<usize>, name: &Name, value: &[u8], prefix: u8, flags: u8, dst: &mut BytesMut) {
    match name_index {
        Some(index) => put_integer(index, prefix, flags, dst),
        None => {
            put_integer(0, prefix, flags, dst);
            put_string(name.as_str().as_bytes(), dst);
        }
    }
    put_string(value, dst);
}

/// A literal field not indexed, its name as given: for tests that send
/// what [`Name`] would refuse.
#[doc(hidden)]
pub fn put_unchecked_literal(name: &[u8], value: &[u8], dst: &mut BytesMut) {
    put_integer(0, 4, 0x00, dst);
    put_string(name, dst);
    put_string(value, dst);
}

fn put_string(bytes: &[u8], dst: &mut BytesMut) {
    put_integer(bytes.len(), 7, 0x00, dst);
    dst.extend_from_slice(bytes);
}

/// An integer with a `prefix`-bit prefix, the first byte's other bits `flags`.
/// Bytes go in with `extend_from_slice`, which inlines: `BufMut::put_u8` is a
/// call of its own for each byte, and a block is mostly one-byte fields.
fn put_integer(value: usize, prefix: u8, flags: u8, dst: &mut BytesMut) {
    let max_prefix = (1usize << prefix) - 1;
    if value < max_prefix {
        return dst.extend_from_slice(&[flags | value as u8]);
    }
    dst.extend_from_slice(&[flags | max_prefix as u8]);
    let mut rest = value - max_prefix;
    while rest >= 0x80 {
        dst.extend_from_slice(&[0x80 | (rest & 0x7f) as u8]);
        rest >>= 7;
    }
    dst.extend_from_slice(&[rest as u8]);
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;

    use super::*;

    fn hex(text: &str) -> Bytes {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()).collect()
    }

    fn decode_all(decoder: &mut Decoder, block: &Bytes) -> Result<Vec<(String, String)>, DecodeError> {
        let mut fields = Vec::new();
        decoder.decode(block, |field| {
            fields.push((field.name.as_str().to_owned(), String::from_utf8(field.value.to_vec()).unwrap()))
        })?;
        Ok(fields)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
    }

    /// A table's entries, newest first, and its size.
    fn entries(table: &Table) -> (Vec<(String, String)>, usize) {
        let entries = table
            .entries
            .iter()
            .map(|entry| (entry.name.as_str().to_owned(), String::from_utf8(entry.value.to_vec()).unwrap()))
            .collect();
        (entries, table.size)
    }

    #[test]
    fn the_rfcs_requests_decode_with_and_without_huffman() {
        // RFC 7541, C.3 (plain) and C.4 (Huffman): three requests on one connection.
        let blocks = [
            (
                "828684410f7777772e6578616d706c652e636f6d",
                "828684418cf1e3c2e5f23a6ba0ab90f4ff",
                vec![(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")],
                57,
            ),
            (
                "828684be58086e6f2d6361636865",
                "828684be5886a8eb10649cbf",
                vec![
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":path", "/"),
                    (":authority", "www.example.com"),
                    ("cache-control", "no-cache"),
                ],
                110,
            ),
            (
                "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
                "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
                vec![
                    (":method", "GET"),
                    (":scheme", "https"),
                    (":path", "/index.html"),
                    (":authority", "www.example.com"),
                    ("custom-key", "custom-value"),
                ],
                164,
            ),
        ];
        let (mut plain, mut huffman) = (Decoder::default(), Decoder::default());
        for (plain_block, huffman_block, expected, table_size) in blocks {
            assert_eq!(decode_all(&mut plain, &hex(plain_block)).unwrap(), pairs(&expected));
            assert_eq!(decode_all(&mut huffman, &hex(huffman_block)).unwrap(), pairs(&expected));
            assert_eq!(plain.table.size, table_size);
            assert_eq!(entries(&plain.table), entries(&huffman.table));
        }
        assert_eq!(
            entries(&plain.table).0,
            pairs(&[("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")])
        );
    }

    #[test]
    fn the_rfcs_responses_evict_the_oldest_entries() {
        // RFC 7541, C.5: a 256-byte table, so each response evicts.
        let mut decoder = Decoder::default();
        decoder.table.resize(256);
        let first = hex(
            "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
        );
        assert_eq!(
            decode_all(&mut decoder, &first).unwrap(),
            pairs(&[
                (":status", "302"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ])
        );
        assert_eq!(decoder.table.size, 222);
        let second = hex("4803333037c1c0bf");
        assert_eq!(
            decode_all(&mut decoder, &second).unwrap(),
            pairs(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ])
        );
        assert_eq!(decoder.table.size, 222);
        assert_eq!(entries(&decoder.table).0[0], (":status".into(), "307".into()));
        assert_eq!(decoder.table.entries.len(), 4, "\":status: 302\" was evicted");
    }

    #[test]
    fn literals_are_shared_with_the_block() {
        let block = hex("0f2b0a637573746f6d2d6b6579");
        let mut values = Vec::new();
        Decoder::default().decode(&block, |field| values.push(field.value)).unwrap();
        assert_eq!(values[0], "custom-key");
        assert_eq!(values[0].as_ptr(), block[3..].as_ptr(), "a plain literal is a slice of the block, not a copy");
    }

    #[test]
    fn never_indexed_fields_are_marked_sensitive() {
        // 0001 0000, then name "password" and value "secret" (RFC 7541, C.2.3).
        let block = hex("100870617373776f726406736563726574");
        let mut decoder = Decoder::default();
        let mut fields = Vec::new();
        decoder.decode(&block, |field| fields.push(field)).unwrap();
        assert_eq!(fields.len(), 1);
        assert!(fields[0].sensitive);
        assert!(decoder.table.entries.is_empty());
    }

    #[test]
    fn names_http2_forbids_are_malformed_but_keep_the_table_in_step() {
        let mut encoded = BytesMut::new();
        // "X-Upper: 1" and ":bogus: 2", both added to the table.
        for (name, value) in [("X-Upper", "1"), (":bogus", "2")] {
            encoded.put_u8(0x40);
            put_string(name.as_bytes(), &mut encoded);
            put_string(value.as_bytes(), &mut encoded);
        }
        let mut decoder = Decoder::default();
        let mut names = Vec::new();
        decoder.decode(&encoded.freeze(), |field| names.push(field.name)).unwrap();
        assert_eq!(names, [Name::Malformed(7), Name::Malformed(6)]);
        assert_eq!(decoder.table.size, (7 + 1 + 32) + (6 + 1 + 32));
    }

    #[test]
    fn bad_blocks_are_refused_with_their_reason() {
        let cases: [(&str, DecodeError); 7] = [
            ("80", DecodeError::NoSuchIndex(0)),
            ("be", DecodeError::NoSuchIndex(62)),
            ("ff80808080808001", DecodeError::IntegerTooLarge),
            ("ff", DecodeError::Truncated),
            ("400a6375", DecodeError::Truncated),
            ("3fe21f", DecodeError::TableTooLarge { size: 4097, allowed: 4096 }),
            ("8220", DecodeError::LateTableSizeUpdate),
        ];
        for (block, error) in cases {
            assert_eq!(decode_all(&mut Decoder::default(), &hex(block)), Err(error), "block {block}");
        }
        // A Huffman string padded with zeros.
        assert_eq!(
            decode_all(&mut Decoder::default(), &hex("0f2b8100")),
            Err(DecodeError::Huffman(huffman::HuffmanError::BadPadding))
        );
    }

    #[test]
    fn a_table_size_update_evicts_and_zero_empties() {
        let mut decoder = Decoder::default();
        decode_all(&mut decoder, &hex("400a637573746f6d2d6b65790c637573746f6d2d76616c7565")).unwrap();
        assert_eq!(decoder.table.entries.len(), 1);
        assert_eq!(decode_all(&mut decoder, &hex("2082")).unwrap(), pairs(&[(":method", "GET")]));
        assert!(decoder.table.entries.is_empty());
        assert_eq!(decoder.table.max_size, 0);
    }

    /// Encodes `fields` as one block.
    fn encode_block(encoder: &mut Encoder, fields: &[(Name, &str, Indexing)]) -> Bytes {
        let mut block = BytesMut::new();
        encoder.start_block(&mut block);
        for (name, value, indexing) in fields {
            encoder.encode(name, value.as_bytes(), *indexing, &mut block);
        }
        block.freeze()
    }

    #[test]
    fn every_static_name_is_found_at_its_index() {
        for (index, (name, _)) in STATIC_TABLE.iter().enumerate().skip(14) {
            let first = STATIC_TABLE.iter().position(|(other, _)| other == name).unwrap() + 1;
            assert_eq!(static_name_index(name.as_str()), Some(first), "{name:?} is entry {}", index + 1);
        }
        assert_eq!(static_name_index("x-request-id"), None);
    }

    #[test]
    fn the_encoder_indexes_what_repeats_and_nothing_else() {
        let content_type = Name::Header(header::CONTENT_TYPE);
        let request_id = Name::parse(b"x-request-id");
        let fields = [
            (Name::Method, "POST", Indexing::Indexed),
            (Name::Path, "/wizdata.registry.v1.RegistryService/GetSymbol", Indexing::Indexed),
            (content_type.clone(), "application/grpc", Indexing::Indexed),
            (request_id.clone(), "0b9e3c", Indexing::NotIndexed),
            (Name::Header(header::AUTHORIZATION), "Bearer secret", Indexing::Never),
        ];
        let (mut encoder, mut decoder) = (Encoder::default(), Decoder::default());
        let first = encode_block(&mut encoder, &fields);
        let second = encode_block(&mut encoder, &fields);
        let expected: Vec<(String, String)> =
            fields.iter().map(|(name, value, _)| (name.as_str().to_owned(), value.to_string())).collect();
        assert_eq!(decode_all(&mut decoder, &first).unwrap(), expected);
        assert_eq!(decode_all(&mut decoder, &second).unwrap(), expected);
        // :method POST is static (one byte), :path and content-type are in
        // the table by then (one byte each); the id and the credential are
        // literals each time, on their static or literal names.
        let literals = (1 + 1 + 12 + 1 + 6) + (2 + 1 + 13);
        assert_eq!(second.len(), 3 + literals, "{second:?}");
        assert_eq!(entries(&decoder.table).0.len(), 2, "only :path and content-type were indexed");
        assert_eq!(entries(&decoder.table), entries(&encoder.table));
    }

    #[test]
    fn a_smaller_peer_table_is_announced_and_kept_to() {
        let mut encoder = Encoder::default();
        let mut decoder = Decoder::default();
        let field = [(Name::parse(b"x-tenant"), "acme", Indexing::Indexed)];
        decode_all(&mut decoder, &encode_block(&mut encoder, &field)).unwrap();
        encoder.set_peer_table_size(0);
        let block = encode_block(&mut encoder, &field);
        assert_eq!(block[0], 0x20, "the block starts by setting the table to zero");
        assert_eq!(decode_all(&mut decoder, &block).unwrap(), pairs(&[("x-tenant", "acme")]));
        assert!(decoder.table.entries.is_empty() && encoder.table.entries.is_empty());
    }

    #[test]
    fn credentials_and_changing_values_stay_out_of_tables() {
        let never = ["authorization", "cookie", "x-api-key"];
        let changing = ["x-request-id", "grpc-timeout", "date", "ratelimit-remaining"];
        for name in never {
            assert_eq!(Indexing::for_header(&Name::parse(name.as_bytes()), false), Indexing::Never, "{name}");
        }
        for name in changing {
            assert_eq!(Indexing::for_header(&Name::parse(name.as_bytes()), false), Indexing::NotIndexed, "{name}");
        }
        assert_eq!(Indexing::for_header(&Name::parse(b"content-type"), false), Indexing::Indexed);
        assert_eq!(Indexing::for_header(&Name::parse(b"content-type"), true), Indexing::Never);
        assert_eq!(Indexing::for_header(&Name::Path, false), Indexing::Indexed);
    }

    fn field_strategy() -> impl proptest::strategy::Strategy<Value = (Name, String, Indexing)> {
        use proptest::prelude::*;
        let name = prop_oneof![
            Just(Name::Method),
            Just(Name::Path),
            Just(Name::Status),
            Just(Name::Authority),
            "[a-z][a-z0-9-]{0,20}".prop_map(|name| Name::parse(name.as_bytes())),
            Just(Name::Header(header::CONTENT_TYPE)),
        ];
        let indexing = prop_oneof![Just(Indexing::Indexed), Just(Indexing::NotIndexed), Just(Indexing::Never)];
        (name, "[ -~]{0,300}", indexing)
    }

    proptest::proptest! {
        #[test]
        fn any_blocks_round_trip_and_the_tables_agree(
            blocks in proptest::collection::vec(proptest::collection::vec(field_strategy(), 0..12), 1..8),
            resizes in proptest::collection::vec(0usize..5000, 0..3),
        ) {
            let (mut encoder, mut decoder) = (Encoder::default(), Decoder::default());
            for (number, fields) in blocks.iter().enumerate() {
                // The peer's settings change between blocks, once or more.
                if number == 1 {
                    resizes.iter().for_each(|&size| encoder.set_peer_table_size(size));
                }
                let fields: Vec<(Name, &str, Indexing)> =
                    fields.iter().map(|(name, value, indexing)| (name.clone(), value.as_str(), *indexing)).collect();
                let block = encode_block(&mut encoder, &fields);
                let expected: Vec<(String, String)> =
                    fields.iter().map(|(name, value, _)| (name.as_str().to_owned(), value.to_string())).collect();
                proptest::prop_assert_eq!(decode_all(&mut decoder, &block).unwrap(), expected);
                proptest::prop_assert_eq!(entries(&encoder.table), entries(&decoder.table));
            }
        }

        #[test]
        fn any_block_decodes_or_is_refused(block: Vec<u8>) {
            let _ = Decoder::default().decode(&Bytes::from(block), |_| {});
        }
    }
}

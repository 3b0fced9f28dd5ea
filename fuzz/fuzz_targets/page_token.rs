//! Page tokens come back from callers: any string must be refused with
//! INVALID_ARGUMENT or decode to a cursor this service issued, and a cursor
//! must survive its round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use wizdata_common::ErrorCode;
use wizdata_common::pagination::PageTokens;

fuzz_target!(|input: &[u8]| {
    let tokens = PageTokens::new(Some(&SecretString::from("fuzzing key".to_owned())));
    let text = String::from_utf8_lossy(input);
    match tokens.decode(&text, b"filters") {
        Ok(_) => {}
        Err(error) => assert_eq!(error.code(), ErrorCode::InvalidArgument, "{text:?}: {error:?}"),
    }
    let cursor = String::from_utf8_lossy(input);
    let token = tokens.encode(b"filters", &cursor);
    assert_eq!(tokens.decode(&token, b"filters").expect("its own token").as_deref(), Some(&*cursor));
    assert!(tokens.decode(&token, b"other filters").is_err(), "a token is bound to its filters");
});

//! Bearer tokens are the first thing read from every call: any string must
//! parse to an unverified token or a typed error, and nothing unsigned by
//! the key may verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wizdata_common::auth::token;

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    if let Ok(parsed) = token::parse(&text) {
        let _ = parsed.kid();
        let key = ed25519_key();
        assert!(parsed.verify(&key.verifying_key(), 0, 30).is_err(), "a token the key never signed: {text:?}");
    }
});

fn ed25519_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
}

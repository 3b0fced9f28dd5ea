//! Random identifiers and hex text, as every service spells them.

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `prefix` and then `len` random bytes in hex, e.g. `key_3f9a0c...`.
pub fn random_id(prefix: &str, len: usize) -> String {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    format!("{prefix}{}", hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_hex_of_the_asked_length() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
        let id = random_id("key_", 8);
        assert!(id.starts_with("key_") && id.len() == 4 + 16, "{id}");
        assert!(id[4..].bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_ne!(random_id("", 8), random_id("", 8));
    }
}

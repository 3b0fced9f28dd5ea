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

/// A fresh call id: random-looking UUIDs (version 4 in form) made from a
/// seed drawn once per process and a counter, without the system call per
/// id that `Uuid::new_v4` makes. The counter goes through a bijective mix,
/// so no two calls of a process share an id, and the seed keeps processes
/// apart.
pub fn request_id() -> uuid::Uuid {
    static SEED: std::sync::LazyLock<[u64; 2]> = std::sync::LazyLock::new(|| {
        let mut seed = [0u8; 16];
        getrandom::fill(&mut seed).expect("the OS random number generator is available");
        let (high, low) = seed.split_at(8);
        [high, low].map(|half| u64::from_le_bytes(half.try_into().expect("8 bytes")))
    });
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let [high, low] = SEED.map(|seed| splitmix64(seed ^ call));
    uuid::Builder::from_random_bytes(((u128::from(high) << 64) | u128::from(low)).to_be_bytes()).into_uuid()
}

/// The splitmix64 finaliser: a bijection of `u64` whose outputs look
/// random. For spread and uniqueness, not secrecy.
pub fn splitmix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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

    #[test]
    fn request_ids_are_version_4_uuids_and_never_repeat() {
        let ids: std::collections::HashSet<uuid::Uuid> = (0..10_000).map(|_| request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id.get_version_num() == 4 && id.get_variant() == uuid::Variant::RFC4122));
    }
}

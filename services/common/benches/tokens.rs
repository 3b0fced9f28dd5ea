//! What checking a caller's token costs per call: the full local
//! verification (parse, Ed25519 signature, claims), and the authentication
//! every server runs, which reuses a token verified before.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use wizdata_common::auth::Caller;
use wizdata_common::auth::token::{self, Claims, ISSUER};
use wizdata_common::auth::verifier::VerifiedCallers;

fn claims(now: i64) -> Claims {
    Claims {
        iss: ISSUER.into(),
        sub: "user:ada".into(),
        scope: "indicator:read marketdata:read marketdata:write registry:read registry:write".into(),
        tier: "standard".into(),
        iat: now,
        exp: now + 300,
        jti: "0123456789abcdef0123456789abcdef".into(),
        key_id: Some("key_0123456789abcdef".into()),
    }
}

fn tokens(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[9; 32]);
    let public = key.verifying_key();
    let now = chrono::Utc::now().timestamp();
    let signed = token::sign(&claims(now), "sig_0123456789abcdef", &key);
    let mut group = c.benchmark_group("tokens");
    group.bench_function("sign", |b| b.iter(|| token::sign(black_box(&claims(now)), "sig_0123456789abcdef", &key)));
    group.bench_function("verify", |b| {
        b.iter(|| token::parse(black_box(&signed)).unwrap().verify(&public, now, 30).unwrap())
    });
    let verified = VerifiedCallers::default();
    let caller = Caller::anonymous(&["indicator:read".into(), "marketdata:read".into(), "registry:read".into()]);
    verified.insert(&signed, caller, Duration::from_secs(300));
    group.bench_function("verified_before", |b| b.iter(|| verified.get(black_box(&signed)).unwrap()));
    group.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);

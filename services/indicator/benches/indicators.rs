//! Every indicator at TA-Lib's defaults over the bars `make bench-indicators`
//! writes (WIZDATA_BENCH_BARS: raw little-endian f64, open, high, low, close,
//! volume per bar), through the same `run` the RPCs use. The Makefile then
//! times TA-Lib on the same file and reports ns/bar side by side.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wizdata_common::FieldViolations;
use wizdata_indicator::catalog::{self, INDICATORS};
use wizdata_indicator::run;
use wizdata_indicator::studies::{Bar, Bars};

/// The allocator the `wizdata` binary runs with, so the times are the service's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bars() -> Bars {
    let path = std::env::var("WIZDATA_BENCH_BARS")
        .expect("WIZDATA_BENCH_BARS names the bars file; `make bench-indicators` writes it");
    let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    bytes
        .chunks_exact(5 * 8)
        .map(|bar| {
            let value = |index: usize| f64::from_le_bytes(bar[index * 8..index * 8 + 8].try_into().unwrap());
            Bar { open: value(0), high: value(1), low: value(2), close: value(3), volume: value(4) }
        })
        .collect()
}

fn indicators(c: &mut Criterion) {
    let bars = bars();
    let mut group = c.benchmark_group("indicators");
    group.throughput(Throughput::Elements(bars.len() as u64)).sample_size(20);
    for indicator in INDICATORS {
        let mut violations = FieldViolations::default();
        let configured =
            catalog::configure(indicator, &HashMap::new(), "bench", &mut violations).expect("the defaults are valid");
        group.bench_function(indicator.name, |b| {
            b.iter(|| run(configured.study(), indicator.outputs.len(), black_box(&bars)))
        });
    }
    group.finish();
}

criterion_group!(benches, indicators);
criterion_main!(benches);

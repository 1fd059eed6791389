use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use anosys::{Config, LogLevel, Pipeline};
use criterion::{criterion_group, criterion_main, Criterion};

include!("discard.rs");

#[inline(never)]
fn bare(x: u64) -> u64 {
    black_box(x)
}

#[inline(never)]
#[tracing::instrument]
fn traced(x: u64) -> u64 {
    black_box(x)
}

#[inline(never)]
#[anosys::logger]
fn logged(x: u64) -> u64 {
    black_box(x)
}

fn calls(c: &mut Criterion) {
    let config = Config::builder().queue_size(1 << 20).log_level(LogLevel::Off).build().unwrap();
    let guard = anosys::init_with(Pipeline::builder(config).without_builtin_sinks().sink(Arc::new(Discard))).unwrap();
    let mut group = c.benchmark_group("no-op function");
    group.bench_function("bare (baseline)", |b| b.iter(|| bare(black_box(7))));
    group.bench_function("tracing::instrument, no subscriber", |b| b.iter(|| traced(black_box(7))));
    group.bench_function("anosys::logger", |b| b.iter(|| logged(black_box(7))));
    group.finish();
    let report = guard.shutdown(None);
    eprintln!("logger: {} captured, {} dropped", report.counters.captured, report.counters.dropped);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = calls
}
criterion_main!(benches);

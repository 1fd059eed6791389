//! Whole-system delivery: typical LLM records through a `Pipeline` and its
//! AnoSys sink to a loopback stand-in (an axum server on its own runtime
//! and thread, answering 200 at once), and draining a full outbox to it.
//!
//! Run by `scripts/bench-delivery.sh`, which builds this same file against
//! the code before the delivery rework (commit 212314c, compiled with
//! `--cfg anosys_bench_base`, where there is no outbox) and runs both in
//! interleaved rounds, so every figure is a ratio within one run. Alone:
//!
//! ```text
//! cargo bench -p anosys --bench delivery -- healthy   # records/s, backend up
//! cargo bench -p anosys --bench delivery -- drain     # records/s, draining the outbox
//! cargo bench -p anosys --bench delivery -- drain_records  # the same, rows as kept before bodies were
//! ```
//!
//! `ANOSYS_BENCH_RECORDS` sets the number of records (100,000). Run
//! without `--bench` (as `cargo test --benches` does), it does a quick
//! check with 2,000.
//!
//! Each line printed is `<mode> records=<n> seconds=<s> rate=<records/s>`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anosys::{Config, LogLevel, Pipeline, Record, RecordKind, SinkKind, SpanKind, Status};
use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use serde_json::json;

include!("common/records.rs");

/// The AnoSys stand-in: counts the POSTs it answered.
struct StandIn {
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
    _runtime: tokio::runtime::Runtime,
}

fn stand_in() -> StandIn {
    // One thread for the server, the pipeline's worker on the other core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("stand-in")
        .enable_all()
        .build()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let counted = hits.clone();
    let app = Router::new().route(
        "/log",
        post(move |body: Bytes| {
            let counted = counted.clone();
            async move {
                std::hint::black_box(body);
                counted.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        axum::serve(listener, app).await.unwrap();
    });
    StandIn { addr, hits, _runtime: runtime }
}

fn config(server: &StandIn, db: &std::path::Path) -> Config {
    Config::builder()
        .api_url(format!("http://{}/log", server.addr))
        .sinks([SinkKind::Anosys])
        .db_path(db)
        .log_level(LogLevel::Off)
        .build()
        .unwrap()
}

fn temp_db(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("anosys-bench-delivery-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("anosys.db")
}

/// CPU seconds used so far by this process's threads, by thread name,
/// from `/proc/self/task` (Linux; empty elsewhere). The stand-in's threads
/// are `stand-in`, the caller is the main thread (`main`); everything else
/// is the pipeline's (its worker, blocking pool and any threads of its own).
fn cpu_by_thread() -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return out };
    // Clock ticks are 100 a second on every Linux this runs on.
    const TICKS: f64 = 100.0;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        // `pid (comm) state ...`: comm may hold spaces, so split after ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let main = task.file_name().to_str() == Some(&std::process::id().to_string());
        let name = if main { "main".to_owned() } else { stat[open + 1..close].to_owned() };
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // utime and stime are fields 14 and 15 of the whole line.
        let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) else { continue };
        let ticks = u.parse::<f64>().unwrap_or(0.0) + s.parse::<f64>().unwrap_or(0.0);
        *out.entry(name).or_insert(0.0) += ticks / TICKS;
    }
    out
}

/// CPU seconds used since `before`: by the pipeline (`client`), the
/// stand-in and the caller (the main thread: making the records and
/// waiting). Threads that ended in between are not counted: the figures
/// are a floor.
struct Cpu {
    client: f64,
    stand_in: f64,
    caller: f64,
}

fn cpu_since(before: &std::collections::BTreeMap<String, f64>) -> Cpu {
    let mut cpu = Cpu { client: 0.0, stand_in: 0.0, caller: 0.0 };
    for (name, after) in cpu_by_thread() {
        let used = after - before.get(&name).copied().unwrap_or(0.0);
        if name.starts_with("stand-in") {
            cpu.stand_in += used;
        } else if name == "main" {
            cpu.caller += used;
        } else {
            cpu.client += used;
        }
    }
    cpu
}

fn report(mode: &str, n: u64, took: Duration, cpu: Cpu) -> f64 {
    let rate = n as f64 / took.as_secs_f64();
    let per = |s: f64| s * 1e6 / n as f64;
    println!(
        "{mode} records={n} seconds={:.3} rate={rate:.0} cpu_us_per_record: client={:.1} stand_in={:.1} caller={:.1}",
        took.as_secs_f64(),
        per(cpu.client),
        per(cpu.stand_in),
        per(cpu.caller)
    );
    rate
}

/// Records/s from the first `submit` until every record is delivered. The
/// caller keeps at most `WINDOW` records undelivered (what the backend
/// sustains, not a burst: a lane holding more than a quarter of the queue
/// would keep the rest in its outbox, by design). Once it has that many
/// out, it sleeps until half of them are delivered, looking every
/// millisecond: an application does not spin on the pipeline's counters,
/// and a harness that did (50 µs sleeps) took about 9 µs of CPU a record
/// from the two cores the pipeline and the stand-in share.
fn healthy(server: &StandIn, n: u64) -> f64 {
    const WINDOW: u64 = 1024;
    let db = temp_db("healthy");
    let pipeline = Pipeline::new(config(server, &db)).unwrap();
    let records: Vec<Record> = (0..n).map(|_| typical_record()).collect();
    let hits = server.hits.load(Ordering::Relaxed);
    let cpu = cpu_by_thread();
    let started = Instant::now();
    for (submitted, record) in (0u64..).zip(records) {
        if submitted - pipeline.counters().delivered >= WINDOW {
            while submitted - pipeline.counters().delivered > WINDOW / 2 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        pipeline.submit(record);
    }
    pipeline.flush(Some(Duration::from_secs(120)));
    while pipeline.counters().pending() > 0 && started.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = started.elapsed();
    let cpu = cpu_since(&cpu);
    let c = pipeline.shutdown(Some(Duration::from_secs(10))).counters;
    assert_eq!(c.delivered, n, "not all delivered: {c:?}");
    assert!(server.hits.load(Ordering::Relaxed) - hits >= n);
    let _ = std::fs::remove_dir_all(db.parent().unwrap());
    report("healthy", n, took, cpu)
}

/// Records/s draining `n` records kept in the outbox by an earlier
/// process, from the pipeline's start until the outbox is empty. The rows
/// are what a lane writes (the sink's request bodies), or with
/// `as_records` what versions before that wrote (the records' JSON).
#[cfg(not(anosys_bench_base))]
fn drain(server: &StandIn, n: u64, as_records: bool) -> f64 {
    use anosys::sinks::outbox::{Entry, Outbox};
    use anosys::sinks::{AnosysSink, Sink};
    let db = temp_db("drain");
    let config = config(server, &db);
    let destination = AnosysSink::new(&config).unwrap().destination().unwrap();
    {
        let mut outbox = Outbox::open(&db, &destination, config.outbox_max_bytes() as u64).unwrap();
        if !as_records {
            outbox.set_wire(AnosysSink::new(&config).unwrap().wire_encoder());
        }
        let mut left = n;
        while left > 0 {
            let chunk: Vec<Record> = (0..left.min(1000)).map(|_| typical_record()).collect();
            let entries: Vec<Entry<'_>> = chunk.iter().map(|record| Entry { record, uncertain: false }).collect();
            assert_eq!(outbox.put(&entries).unwrap().written, chunk.len());
            left -= chunk.len() as u64;
        }
        assert_eq!(outbox.stats().unwrap().records, n);
    }
    let hits = server.hits.load(Ordering::Relaxed);
    let cpu = cpu_by_thread();
    let started = Instant::now();
    let pipeline = Pipeline::new(config).unwrap();
    loop {
        let c = pipeline.counters();
        if c.outbox_delivered >= n && c.in_outbox == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "the outbox did not drain: {c:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = started.elapsed();
    let cpu = cpu_since(&cpu);
    let c = pipeline.shutdown(Some(Duration::from_secs(10))).counters;
    assert_eq!((c.outbox_delivered, c.outbox_failed, c.duplicates), (n, 0, 0), "{c:?}");
    assert!(server.hits.load(Ordering::Relaxed) - hits >= n);
    let outbox = Outbox::open(&db, &destination, 1 << 30).unwrap();
    assert_eq!(outbox.stats().unwrap().records, 0);
    drop(outbox);
    let _ = std::fs::remove_dir_all(db.parent().unwrap());
    report(if as_records { "drain_records" } else { "drain" }, n, took, cpu)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let benching = args.iter().any(|a| a == "--bench");
    let n: u64 = match std::env::var("ANOSYS_BENCH_RECORDS") {
        Ok(v) => v.parse().expect("ANOSYS_BENCH_RECORDS: a number"),
        Err(_) if benching => 100_000,
        Err(_) => 2_000,
    };
    let modes: Vec<&str> = args.iter().map(String::as_str).filter(|a| !a.starts_with('-')).collect();
    let server = stand_in();
    let all = modes.is_empty();
    let mut healthy_rate = None;
    if all || modes.contains(&"healthy") {
        healthy_rate = Some(healthy(&server, n));
    }
    #[cfg(not(anosys_bench_base))]
    if all || modes.contains(&"drain") {
        let rate = drain(&server, n, false);
        if let Some(h) = healthy_rate {
            println!("drain/healthy ratio={:.2}", rate / h);
        }
    }
    #[cfg(not(anosys_bench_base))]
    if modes.contains(&"drain_records") {
        let rate = drain(&server, n, true);
        if let Some(h) = healthy_rate {
            println!("drain_records/healthy ratio={:.2}", rate / h);
        }
    }
    let _ = healthy_rate;
}

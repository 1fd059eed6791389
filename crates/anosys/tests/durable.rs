//! Durable delivery against a real HTTP stand-in on 127.0.0.1 and real
//! SQLite files: outages, refusals, slow backends, restarts, two processes
//! on one store, and the byte bounds. Every record carries a sequence
//! number and is counted at the stand-in. (Shortened forms: the full-length
//! scenarios run from `scripts/faults.sh`.)

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anosys::sinks::outbox::{self, Entry, Outbox};
use anosys::sinks::{AnosysSink, Sink};
use anosys::{Config, ConfigBuilder, LogLevel, Pipeline, SinkKind};
use serde_json::json;
use support::{decode, free_port, temp_dir, Backend, Reply};

fn config(url: &str, dir: &std::path::Path) -> ConfigBuilder {
    Config::builder()
        .api_url(url)
        .flush_interval(Duration::from_millis(20))
        .db_path(dir.join("store.db"))
        .jsonl_path(dir.join("records.jsonl"))
        .request_timeout(Duration::from_secs(2))
        .log_level(LogLevel::Off)
}

fn record(seq: u64) -> anosys::Record {
    anosys::sources::raw::raw_record(json!({"seq": seq, "pad": "x".repeat(200)}))
}

/// How many times the stand-in accepted each sequence number.
fn seen(backend: &Backend) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for body in backend.accepted() {
        *seen.entry(decode(&body)["seq"].as_u64().unwrap()).or_insert(0) += 1;
    }
    seen
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

/// Logs `n` records at about `per_second`, calling `during` with the
/// elapsed time before each.
fn log_at(pipeline: &Pipeline, n: u64, per_second: u64, mut during: impl FnMut(Duration)) {
    let started = Instant::now();
    for seq in 0..n {
        let due = Duration::from_secs_f64(seq as f64 / per_second as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        during(started.elapsed());
        pipeline.submit(record(seq));
    }
}

fn all_delivered_once(backend: &Backend, n: u64) -> bool {
    let seen = seen(backend);
    seen.len() as u64 == n && seen.keys().copied().eq(0..n)
}

#[test]
fn an_outage_of_503s_loses_nothing_and_recovers_in_the_same_process() {
    let backend = Backend::start();
    *backend.shared.default_reply.lock().unwrap() = Some(Reply::status(503));
    let dir = temp_dir("durable-503");
    let pipeline = Pipeline::new(config(&backend.url(), &dir).build().unwrap()).unwrap();
    let n = 600;
    let shared = backend.shared.clone();
    // Down for the first 2 of 3 seconds.
    log_at(&pipeline, n, 200, |t| {
        if t >= Duration::from_secs(2) {
            *shared.default_reply.lock().unwrap() = None;
        }
    });
    assert!(pipeline.counters().kept_in_outbox > 0, "{:?}", pipeline.counters());
    // Delivered from the outbox without a shutdown, soon after the return.
    assert!(wait_until(Duration::from_secs(15), || all_delivered_once(&backend, n)), "{:?}", pipeline.counters());
    let report = pipeline.shutdown(Some(Duration::from_secs(5)));
    let c = report.counters;
    assert_eq!(c.captured, n);
    assert_eq!(c.delivered + c.kept_in_outbox, n, "{c:?}");
    assert_eq!(c.outbox_delivered, c.kept_in_outbox, "{c:?}");
    assert_eq!((c.dropped, c.failed, c.in_outbox, report.pending), (0, 0, 0, 0), "{c:?}");
    // A 503 is an answer: nothing was sent twice.
    assert_eq!(c.duplicates, 0);
}

#[test]
fn a_refused_connection_loses_nothing() {
    let port = free_port();
    let dir = temp_dir("durable-refused");
    let url = format!("http://127.0.0.1:{port}/log");
    let pipeline = Pipeline::new(config(&url, &dir).build().unwrap()).unwrap();
    let n = 400;
    let mut backend = None;
    log_at(&pipeline, n, 200, |t| {
        if t >= Duration::from_millis(1500) && backend.is_none() {
            backend = Some(Backend::start_on(port));
        }
    });
    let backend = backend.unwrap();
    assert!(wait_until(Duration::from_secs(15), || all_delivered_once(&backend, n)), "{:?}", pipeline.counters());
    let c = pipeline.shutdown(Some(Duration::from_secs(5))).counters;
    assert_eq!(c.delivered + c.kept_in_outbox, n, "{c:?}");
    assert!(c.kept_in_outbox > 0 && c.outbox_delivered == c.kept_in_outbox, "{c:?}");
    assert_eq!((c.dropped, c.failed, c.in_outbox), (0, 0, 0), "{c:?}");
}

#[test]
fn a_slow_backend_never_holds_up_the_local_sinks() {
    let backend = Backend::start();
    *backend.shared.default_reply.lock().unwrap() = Some(Reply::status(200).delay(Duration::from_secs(3)));
    let dir = temp_dir("durable-slow");
    let c = config(&backend.url(), &dir).sinks([SinkKind::Anosys, SinkKind::Jsonl]).build().unwrap();
    let pipeline = Pipeline::new(c).unwrap();
    let started = Instant::now();
    for seq in 0..50 {
        pipeline.submit(record(seq));
    }
    let lines = || std::fs::read_to_string(dir.join("records.jsonl")).map(|t| t.lines().count()).unwrap_or(0);
    assert!(wait_until(Duration::from_secs(2), || lines() == 50), "{} lines", lines());
    // Well before the first AnoSys answer.
    assert!(started.elapsed() < Duration::from_millis(2500), "{:?}", started.elapsed());
    assert!(backend.accepted().is_empty());
    let c = pipeline.shutdown(Some(Duration::from_secs(10))).counters;
    assert_eq!(c.delivered + c.kept_in_outbox, 50, "{c:?}");
}

#[test]
fn a_flush_is_not_held_up_by_a_slow_backend() {
    // Every answer takes 4 s (the request timeout is 6 s): a flush answers
    // in about a second with the records kept in the outbox, and the
    // answers, when they come, take them out again: delivered once, no
    // duplicate, nothing left.
    let backend = Backend::start();
    *backend.shared.default_reply.lock().unwrap() = Some(Reply::status(200).delay(Duration::from_secs(4)));
    let dir = temp_dir("durable-slow-flush");
    let c = config(&backend.url(), &dir)
        .sinks([SinkKind::Anosys, SinkKind::Jsonl])
        .request_timeout(Duration::from_secs(6))
        .build()
        .unwrap();
    let pipeline = Pipeline::new(c).unwrap();
    let n = 16;
    for seq in 0..n {
        pipeline.submit(record(seq));
    }
    let started = Instant::now();
    let report = pipeline.flush(Some(Duration::from_secs(20)));
    let took = started.elapsed();
    assert!(report.completed, "{report:?}");
    assert!(took < Duration::from_millis(3500), "the flush took {took:?}: {report:?}");
    let c = report.counters;
    assert_eq!((c.kept_in_outbox, c.pending()), (n, 0), "{c:?}");
    let lines = std::fs::read_to_string(dir.join("records.jsonl")).unwrap().lines().count();
    assert_eq!(lines as u64, n);
    // The slow answers arrive: every record exactly once, the outbox empty.
    assert!(wait_until(Duration::from_secs(30), || all_delivered_once(&backend, n)), "{:?}", seen(&backend));
    assert!(
        wait_until(Duration::from_secs(10), || pipeline.counters().outbox_delivered == n),
        "{:?}",
        pipeline.counters()
    );
    let c = pipeline.shutdown(Some(Duration::from_secs(5))).counters;
    assert_eq!((c.outbox_delivered, c.duplicates, c.in_outbox, c.dropped), (n, 0, 0, 0), "{c:?}");
    assert!(seen(&backend).values().all(|&times| times == 1), "{:?}", seen(&backend));
    let conn = anosys::sinks::sqlite::open(&dir.join("store.db")).unwrap();
    assert_eq!(outbox::list(&conn).unwrap()[0].records, 0);
}

#[test]
fn written_ahead_batches_are_on_disk_while_they_are_sent() {
    let backend = Backend::start();
    *backend.shared.default_reply.lock().unwrap() = Some(Reply::status(200).delay(Duration::from_millis(1500)));
    let dir = temp_dir("durable-write-ahead");
    let c = config(&backend.url(), &dir).outbox_write_ahead(true).build().unwrap();
    let pipeline = Pipeline::new(c).unwrap();
    let n = 12;
    for seq in 0..n {
        pipeline.submit(record(seq));
    }
    let waiting = || {
        let conn = anosys::sinks::sqlite::open(&dir.join("store.db")).ok()?;
        outbox::list(&conn).ok()?.first().map(|o| o.records)
    };
    // While the answers take their time, every record is on disk.
    assert!(wait_until(Duration::from_secs(5), || waiting() == Some(n)), "{:?}", waiting());
    assert!(backend.accepted().is_empty());
    // Delivered: counted as delivered (not as kept), and gone from the disk.
    assert!(wait_until(Duration::from_secs(20), || all_delivered_once(&backend, n)), "{:?}", seen(&backend));
    assert!(wait_until(Duration::from_secs(5), || waiting() == Some(0)), "{:?}", waiting());
    let c = pipeline.shutdown(Some(Duration::from_secs(5))).counters;
    assert_eq!((c.delivered, c.kept_in_outbox, c.outbox_delivered, c.duplicates), (n, 0, 0, 0), "{c:?}");

    // Down: what was written ahead stays, counted as kept, and goes out
    // from there once the destination is back.
    *backend.shared.default_reply.lock().unwrap() = Some(Reply::status(503));
    let c = config(&backend.url(), &dir).outbox_write_ahead(true).build().unwrap();
    let pipeline = Pipeline::new(c).unwrap();
    for seq in n..2 * n {
        pipeline.submit(record(seq));
    }
    assert!(
        wait_until(Duration::from_secs(10), || pipeline.counters().kept_in_outbox == n),
        "{:?}",
        pipeline.counters()
    );
    *backend.shared.default_reply.lock().unwrap() = None;
    assert!(wait_until(Duration::from_secs(20), || all_delivered_once(&backend, 2 * n)), "{:?}", seen(&backend));
    let c = pipeline.shutdown(Some(Duration::from_secs(5))).counters;
    assert_eq!((c.kept_in_outbox, c.outbox_delivered, c.in_outbox), (n, n, 0), "{c:?}");
}

#[test]
fn the_next_process_delivers_what_an_earlier_one_kept() {
    let port = free_port();
    let dir = temp_dir("durable-restart");
    let url = format!("http://127.0.0.1:{port}/log");
    let first = Pipeline::new(config(&url, &dir).build().unwrap()).unwrap();
    for seq in 0..100 {
        first.submit(record(seq));
    }
    let c = first.shutdown(Some(Duration::from_secs(1))).counters;
    assert_eq!((c.kept_in_outbox, c.in_outbox), (100, 100), "{c:?}");
    drop(first);

    let backend = Backend::start_on(port);
    let second = Pipeline::new(config(&url, &dir).build().unwrap()).unwrap();
    assert!(wait_until(Duration::from_secs(10), || all_delivered_once(&backend, 100)));
    let c = second.shutdown(Some(Duration::from_secs(5))).counters;
    assert_eq!((c.captured, c.outbox_delivered, c.in_outbox), (0, 100, 0), "{c:?}");
}

#[test]
fn two_processes_on_one_store_never_send_the_same_row_twice() {
    let backend = Backend::start();
    *backend.shared.default_reply.lock().unwrap() = Some(Reply::status(200).delay(Duration::from_millis(2)));
    let dir = temp_dir("durable-two");
    let config = config(&backend.url(), &dir).build().unwrap();
    let destination = AnosysSink::new(&config).unwrap().destination().unwrap();
    let n = 2000u64;
    {
        let mut outbox = Outbox::open(&dir.join("store.db"), &destination, 1 << 30).unwrap();
        let records: Vec<_> = (0..n).map(record).collect();
        let entries: Vec<Entry<'_>> = records.iter().map(|record| Entry { record, uncertain: false }).collect();
        assert_eq!(outbox.put(&entries).unwrap().written, n as usize);
    }
    let a = Pipeline::new(config.clone()).unwrap();
    let b = Pipeline::new(config).unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || seen(&backend).len() as u64 == n),
        "{} of {n}",
        seen(&backend).len()
    );
    let (ca, cb) = (a.shutdown(None).counters, b.shutdown(None).counters);
    let twice: Vec<_> = seen(&backend).into_iter().filter(|(_, times)| *times > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(ca.outbox_delivered + cb.outbox_delivered, n, "{ca:?} {cb:?}");
    // Both took part.
    assert!(ca.outbox_delivered > 0 && cb.outbox_delivered > 0, "{ca:?} {cb:?}");
    let conn = anosys::sinks::sqlite::open(&dir.join("store.db")).unwrap();
    assert_eq!(outbox::list(&conn).unwrap()[0].records, 0);
}

/// Fills the outbox of `config`'s AnoSys destination with records `0..n`.
fn fill_outbox(config: &Config, dir: &std::path::Path, n: u64) {
    let destination = AnosysSink::new(config).unwrap().destination().unwrap();
    let mut outbox = Outbox::open(&dir.join("store.db"), &destination, 1 << 30).unwrap();
    outbox.set_wire(AnosysSink::new(config).unwrap().wire_encoder());
    let records: Vec<_> = (0..n).map(record).collect();
    let entries: Vec<Entry<'_>> = records.iter().map(|record| Entry { record, uncertain: false }).collect();
    assert_eq!(outbox.put(&entries).unwrap().written, n as usize);
}

/// The sequence numbers the stand-in accepted, in the order it did.
fn accepted_in_order(backend: &Backend) -> Vec<u64> {
    backend.accepted().iter().map(|body| decode(body)["seq"].as_u64().unwrap()).collect()
}

#[test]
fn drains_claiming_ahead_still_send_oldest_first_and_each_row_once() {
    // One request at a time and small claims: many drains, each claiming
    // while the one before sends; the stand-in sees every row once, in
    // the order of the outbox.
    let backend = Backend::start();
    let dir = temp_dir("durable-drain-order");
    let n = 1000u64;
    let config = config(&backend.url(), &dir).batch_size(16).max_in_flight(1).build().unwrap();
    fill_outbox(&config, &dir, n);
    let pipeline = Pipeline::new(config).unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || backend.accepted().len() as u64 >= n),
        "{}",
        backend.accepted().len()
    );
    let c = pipeline.shutdown(Some(Duration::from_secs(5))).counters;
    assert_eq!(accepted_in_order(&backend), (0..n).collect::<Vec<_>>());
    // Counters exact: each row claimed, sent and delivered once.
    assert_eq!((c.outbox_delivered, c.outbox_failed, c.duplicates, c.retried, c.in_outbox), (n, 0, 0, n, 0), "{c:?}");
}

#[test]
fn a_drain_told_to_wait_holds_back_the_one_claimed_after_it() {
    // 503s in the middle of a drain: the drain claimed after the failing
    // one sends nothing, and the rows go again from the oldest, so the
    // stand-in still accepts every row once, in order.
    let backend = Backend::start();
    let dir = temp_dir("durable-drain-wait");
    let n = 400u64;
    let config = config(&backend.url(), &dir).batch_size(16).max_in_flight(1).build().unwrap();
    fill_outbox(&config, &dir, n);
    backend.plan((0..40).map(|_| Reply::status(200)).chain([Reply::status(503), Reply::status(503)]));
    let pipeline = Pipeline::new(config).unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || backend.accepted().len() as u64 >= n),
        "{}",
        backend.accepted().len()
    );
    let c = pipeline.shutdown(Some(Duration::from_secs(5))).counters;
    assert_eq!(accepted_in_order(&backend), (0..n).collect::<Vec<_>>());
    let refused = backend.hits().iter().filter(|h| h.status == 503).count();
    assert_eq!(refused, 2);
    assert_eq!((c.outbox_delivered, c.outbox_failed, c.duplicates, c.in_outbox), (n, 0, 0, 0), "{c:?}");
    // Every row claimed once, and the 8 from the refused one on claimed
    // twice more (two probes of 8 while the destination was down): a
    // drain held back sends nothing, so counts no try.
    assert_eq!(c.retried, n + 16, "{c:?}");
}

#[test]
fn a_full_outbox_drops_its_oldest_and_counts_them() {
    let port = free_port();
    let dir = temp_dir("durable-full");
    let url = format!("http://127.0.0.1:{port}/log");
    let max = 64 * 1024;
    let pipeline = Pipeline::new(config(&url, &dir).outbox_max_bytes(max).build().unwrap()).unwrap();
    let n = 500;
    for seq in 0..n {
        pipeline.submit(record(seq));
    }
    let c = pipeline.shutdown(Some(Duration::from_secs(1))).counters;
    assert_eq!(c.kept_in_outbox, n, "{c:?}");
    assert!(c.outbox_dropped > 0, "{c:?}");
    let conn = anosys::sinks::sqlite::open(&dir.join("store.db")).unwrap();
    let stats = outbox::list(&conn).unwrap().remove(0);
    assert!(stats.bytes <= max as u64, "{stats:?}");
    assert_eq!(stats.records + c.outbox_dropped, n, "{stats:?} {c:?}");
    // The newest are kept.
    let kept: Vec<u64> = support::outboxed(&dir.join("store.db"))
        .iter()
        .map(|r| r.raw.as_ref().unwrap()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(*kept.last().unwrap(), n - 1);
    assert!(kept[0] > 0);
}

#[test]
fn memory_is_bounded_in_bytes_as_well_as_count() {
    let backend = Backend::start();
    *backend.shared.default_reply.lock().unwrap() = Some(Reply::status(200).delay(Duration::from_secs(5)));
    let dir = temp_dir("durable-bytes");
    let c =
        config(&backend.url(), &dir).queue_max_bytes(256 * 1024).outbox_max_bytes(0).max_in_flight(1).build().unwrap();
    let pipeline = Pipeline::new(c).unwrap();
    let mut accepted = 0u64;
    for seq in 0..1000u64 {
        let mut r = record(seq);
        r.output = Some(json!("y".repeat(10_000)));
        accepted += u64::from(pipeline.submit(r));
    }
    // About 25 records of 10 KB fit in 256 KiB.
    assert!(accepted < 60, "{accepted} accepted");
    let c = pipeline.counters();
    assert!(c.dropped >= 1000 - accepted, "{c:?}");
    pipeline.shutdown(Some(Duration::from_millis(500)));
}

#[test]
fn what_a_full_lane_spills_is_drained_without_a_restart() {
    let backend = Backend::start();
    *backend.shared.default_reply.lock().unwrap() = Some(Reply::status(200).delay(Duration::from_millis(300)));
    let dir = temp_dir("durable-spill");
    // A quarter of 256 KiB: the lane holds about a hundred records, the rest
    // of a burst goes to the outbox.
    let c = config(&backend.url(), &dir).queue_max_bytes(256 * 1024).build().unwrap();
    let pipeline = Pipeline::new(c).unwrap();
    let n = 600;
    for seq in 0..n {
        pipeline.submit(record(seq));
        if seq % 50 == 49 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(wait_until(Duration::from_secs(5), || pipeline.counters().kept_in_outbox > 0), "{:?}", pipeline.counters());
    *backend.shared.default_reply.lock().unwrap() = None;
    // Delivered from the outbox by the same process, no shutdown needed.
    // (On a machine too busy to write the outbox as fast as the burst
    // comes, the memory bound drops some at capture: counted, and then
    // never sent.)
    let expected = || n - pipeline.counters().dropped;
    assert!(
        wait_until(Duration::from_secs(30), || seen(&backend).len() as u64 == expected()),
        "{:?}",
        pipeline.counters()
    );
    let c = pipeline.shutdown(Some(Duration::from_secs(5))).counters;
    assert!(c.kept_in_outbox > 0, "{c:?}");
    assert_eq!(c.delivered + c.kept_in_outbox + c.dropped, n, "{c:?}");
    assert_eq!((c.outbox_delivered, c.in_outbox), (c.kept_in_outbox, 0), "{c:?}");
    assert!(seen(&backend).values().all(|&times| times == 1), "{:?}", seen(&backend));
}

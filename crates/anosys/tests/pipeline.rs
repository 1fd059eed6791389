//! The pipeline with custom sinks: batching, panics contained, reports.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anosys::sinks::{BoxFuture, ExportContext, ExportReport, Sink};
use anosys::{Config, LogLevel, Pipeline, Record, RecordKind};

#[derive(Default)]
struct Memory {
    batches: Mutex<Vec<Vec<Record>>>,
}

impl Sink for Memory {
    fn name(&self) -> &str {
        "memory"
    }
    fn export<'a>(&'a self, batch: &'a [Record], _: ExportContext) -> BoxFuture<'a, ExportReport> {
        self.batches.lock().unwrap().push(batch.to_vec());
        Box::pin(async { ExportReport::default() })
    }
}

struct Panics;

impl Sink for Panics {
    fn name(&self) -> &str {
        "panics"
    }
    fn export<'a>(&'a self, _: &'a [Record], _: ExportContext) -> BoxFuture<'a, ExportReport> {
        Box::pin(async { panic!("a broken sink") })
    }
}

fn config() -> anosys::ConfigBuilder {
    Config::builder().log_level(LogLevel::Off)
}

#[test]
fn batches_by_count_and_fills_the_resource() {
    let memory = Arc::new(Memory::default());
    let c = config().batch_size(3).flush_interval(Duration::from_secs(600)).build().unwrap();
    let pipeline = Pipeline::builder(c).without_builtin_sinks().sink(memory.clone()).build().unwrap();
    for i in 0..7 {
        pipeline.submit(Record::new(RecordKind::Raw, format!("r{i}")));
    }
    // Two full batches go without waiting for the interval.
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while memory.batches.lock().unwrap().len() < 2 && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    let report = pipeline.flush(Some(Duration::from_secs(10)));
    assert!(report.completed);
    assert_eq!(report.counters.delivered, 7);
    let batches = memory.batches.lock().unwrap();
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![3, 3, 1]);
    let names: Vec<String> = batches.iter().flatten().map(|r| r.name.clone()).collect();
    assert_eq!(names, (0..7).map(|i| format!("r{i}")).collect::<Vec<_>>());
    let resource = batches[0][0].resource.as_ref().unwrap();
    assert_eq!(resource.attributes["telemetry.sdk.name"], "anosys");
    assert!(resource.service_name().is_some());
}

#[test]
fn batches_by_time() {
    let memory = Arc::new(Memory::default());
    let c = config().batch_size(1000).flush_interval(Duration::from_millis(30)).build().unwrap();
    let pipeline = Pipeline::builder(c).without_builtin_sinks().sink(memory.clone()).build().unwrap();
    pipeline.submit(Record::new(RecordKind::Raw, "alone"));
    let end = std::time::Instant::now() + Duration::from_secs(10);
    // The sink has the batch before the pipeline counts it delivered.
    while (memory.batches.lock().unwrap().is_empty() || pipeline.counters().delivered == 0)
        && std::time::Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(memory.batches.lock().unwrap().len(), 1, "the interval alone sends a partial batch");
    assert_eq!(pipeline.counters().delivered, 1);
}

#[test]
fn a_panicking_sink_is_contained_and_counted() {
    let memory = Arc::new(Memory::default());
    let c = config().build().unwrap();
    let pipeline =
        Pipeline::builder(c).without_builtin_sinks().sink(Arc::new(Panics)).sink(memory.clone()).build().unwrap();
    for _ in 0..4 {
        pipeline.submit(Record::new(RecordKind::Raw, "r"));
    }
    let report = pipeline.shutdown(Some(Duration::from_secs(10)));
    assert!(report.completed);
    assert_eq!(report.counters.failed, 4);
    assert_eq!(report.counters.errors, 1);
    assert_eq!(report.pending, 0);
    // The other sink still got the batch.
    assert_eq!(memory.batches.lock().unwrap().iter().map(Vec::len).sum::<usize>(), 4);
    // After shutdown, records are dropped and counted, never queued.
    assert!(!pipeline.submit(Record::new(RecordKind::Raw, "late")));
    assert_eq!(pipeline.counters().dropped, 1);
    assert!(pipeline.shutdown(Some(Duration::from_secs(1))).completed);
}

#[test]
fn the_default_sink_is_the_sqlite_store() {
    let dir = support::temp_dir("default");
    let c = config().db_path(dir.join("sub/anosys.db")).build().unwrap();
    let pipeline = Pipeline::new(c).unwrap();
    assert!(pipeline.destinations()[0].contains("sub/anosys.db"));
    pipeline.submit(anosys::sources::raw::raw_record(serde_json::json!({"event": "local"})));
    pipeline.shutdown(Some(Duration::from_secs(10)));
    let records = support::stored(&dir.join("sub/anosys.db"));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].name, "local");
    assert_eq!(records[0].kind, RecordKind::Raw);
}

#[test]
fn the_jsonl_sink_on_request() {
    let dir = support::temp_dir("jsonl");
    let c = config().sinks([anosys::SinkKind::Jsonl]).jsonl_path(dir.join("r.jsonl")).build().unwrap();
    let pipeline = Pipeline::new(c).unwrap();
    pipeline.submit(anosys::sources::raw::raw_record(serde_json::json!({"event": "line"})));
    pipeline.shutdown(Some(Duration::from_secs(10)));
    let text = std::fs::read_to_string(dir.join("r.jsonl")).unwrap();
    let r: Record = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(r.name, "line");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_inside_a_multi_thread_runtime() {
    let memory = Arc::new(Memory::default());
    let pipeline = Pipeline::builder(config().build().unwrap())
        .without_builtin_sinks()
        .sink(memory.clone())
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let p = pipeline.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    assert!(p.submit(Record::new(RecordKind::Raw, format!("{t}-{i}"))));
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // The blocking flush is fine on a runtime thread: the worker has its own.
    let report = pipeline.flush(Some(Duration::from_secs(10)));
    assert!(report.completed);
    assert_eq!(report.counters.delivered, 100);
    assert_eq!(memory.batches.lock().unwrap().iter().map(Vec::len).sum::<usize>(), 100);
    drop(pipeline); // the worker delivers what is left and stops on its own
}

/// Takes batches and keeps nothing.
struct Forgets;

impl Sink for Forgets {
    fn name(&self) -> &str {
        "forgets"
    }
    fn export<'a>(&'a self, _: &'a [Record], _: ExportContext) -> BoxFuture<'a, ExportReport> {
        Box::pin(async { ExportReport::default() })
    }
}

#[test]
fn delivered_records_are_all_freed_once_no_capture_comes() {
    // Every record holds a clone of this resource: its count says how many
    // are not freed yet.
    let marker = Arc::new(anosys::Resource::default());
    let made = |i: usize| {
        let mut r = Record::new(RecordKind::LlmCall, format!("r{i}"));
        r.resource = Some(marker.clone());
        r
    };
    let c = config().batch_size(8).flush_interval(Duration::from_millis(100)).build().unwrap();
    let pipeline = Pipeline::builder(c).without_builtin_sinks().sink(Arc::new(Forgets)).build().unwrap();
    for i in 0..8 {
        assert!(pipeline.submit(made(i)));
    }
    assert!(pipeline.flush(Some(Duration::from_secs(10))).completed);
    assert_eq!(pipeline.counters().delivered, 8);
    // Later captures free some of them as they go (`batch::Spent`'s unit
    // tests show how many; here the timing of the batch's release decides).
    for i in 8..12 {
        assert!(pipeline.submit(made(i)));
    }
    // No capture for a while: the pipeline's thread frees the rest.
    assert!(pipeline.flush(Some(Duration::from_secs(10))).completed);
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&marker) > 1 && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(Arc::strong_count(&marker), 1, "records still held after the pipeline went idle");
    assert_eq!(pipeline.counters().delivered, 12);
}

#[test]
fn nothing_waits_to_be_freed_after_shutdown() {
    let marker = Arc::new(anosys::Resource::default());
    let c = config().batch_size(4).flush_interval(Duration::from_secs(600)).build().unwrap();
    let pipeline = Pipeline::builder(c).without_builtin_sinks().sink(Arc::new(Forgets)).build().unwrap();
    for i in 0..10 {
        let mut r = Record::new(RecordKind::LlmCall, format!("r{i}"));
        r.resource = Some(marker.clone());
        assert!(pipeline.submit(r));
    }
    let report = pipeline.shutdown(Some(Duration::from_secs(10)));
    assert!(report.completed);
    assert_eq!(report.counters.delivered, 10);
    assert_eq!(Arc::strong_count(&marker), 1, "records still held after shutdown");
}

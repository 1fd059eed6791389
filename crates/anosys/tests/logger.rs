//! `#[anosys::logger]` on every kind of function, with records checked.

mod support;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anosys::{Record, StatusCode};
use serde_json::{json, Value};
use support::MemorySink;

fn memory() -> &'static (anosys::Pipeline, Arc<MemorySink>) {
    static MEMORY: OnceLock<(anosys::Pipeline, Arc<MemorySink>)> = OnceLock::new();
    MEMORY.get_or_init(|| {
        let (builder, memory) = support::memory_builder();
        let guard = anosys::init_with(builder).unwrap();
        let pipeline = guard.pipeline().unwrap().clone();
        std::mem::forget(guard);
        (pipeline, memory)
    })
}

/// The records whose function name ends with `name`.
fn records_of(name: &str) -> Vec<Record> {
    let (pipeline, memory) = memory();
    pipeline.flush(Some(Duration::from_secs(10)));
    memory
        .records
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.name.ends_with(&format!("::{name}")))
        .cloned()
        .collect()
}

fn one(name: &str) -> Record {
    let mut r = records_of(name);
    assert_eq!(r.len(), 1, "{name}: {r:#?}");
    r.remove(0)
}

#[anosys::logger(source = "math")]
fn add(a: i32, b: i32) -> i32 {
    a + b
}

#[test]
fn a_sync_function_is_recorded_with_inputs_output_and_caller() {
    memory();
    let line = line!() + 1;
    assert_eq!(add(2, 3), 5);
    let r = one("add");
    assert_eq!(r.kind, anosys::RecordKind::FunctionCall);
    assert_eq!(r.name, "logger::add");
    assert_eq!(r.source.as_deref(), Some("math"));
    assert_eq!(r.input, Some(json!([2, 3])));
    assert_eq!(r.output, Some(json!(5)));
    assert_eq!(r.status.code, StatusCode::Ok);
    let caller = r.caller.clone().unwrap();
    assert!(caller.file.ends_with("tests/logger.rs"), "{caller:?}");
    assert_eq!(caller.line, line);
    assert_eq!(r.attribute("code.function.name"), Some(&json!("logger::add")));
    assert_eq!(r.attribute("thread.name"), Some(&json!("a_sync_function_is_recorded_with_inputs_output_and_caller")));
    assert!(r.end_time >= r.start_time);
}

#[derive(Debug)]
struct Declined {
    cause: std::io::Error,
}

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "card declined")
    }
}

impl std::error::Error for Declined {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

#[anosys::logger]
fn charge(cents: u64) -> Result<String, Declined> {
    if cents > 100 {
        return Err(Declined { cause: std::io::Error::other("issuer said no") });
    }
    Ok(format!("charged {cents}"))
}

#[test]
fn err_is_recorded_with_type_message_and_cause_chain() {
    memory();
    assert_eq!(charge(50).unwrap(), "charged 50");
    assert!(charge(500).is_err());
    let records = records_of("charge");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].output, Some(json!("charged 50")));
    let r = &records[1];
    assert_eq!(r.status.code, StatusCode::Error);
    let e = r.error.as_ref().unwrap();
    assert_eq!(e.error_type, "logger::Declined");
    assert_eq!(e.message, "card declined");
    assert_eq!(e.stack.as_deref(), Some("caused by: issuer said no"));
    assert_eq!(r.attribute("error.type"), Some(&json!("logger::Declined")));
    assert!(r.output.is_none());
}

#[anosys::logger]
fn explode(at: u32) -> u32 {
    if at > 0 {
        panic!("boom at {at}");
    }
    at
}

#[test]
fn a_panic_is_recorded_and_goes_on_unchanged() {
    memory();
    let result = std::panic::catch_unwind(|| explode(7));
    let payload = result.unwrap_err();
    assert_eq!(payload.downcast_ref::<String>().map(String::as_str), Some("boom at 7"));
    let r = one("explode");
    assert_eq!(r.status.code, StatusCode::Error);
    let e = r.error.clone().unwrap();
    assert_eq!(e.error_type, "panic");
    assert_eq!(e.message, "boom at 7");
    let stack = e.stack.unwrap();
    assert!(stack.starts_with("panicked at ") && stack.contains("tests/logger.rs:"), "{stack}");
    assert_eq!(r.attribute("anosys.outcome"), Some(&json!("panicked")));
}

#[anosys::logger(source = "async")]
async fn inner_async(x: u64) -> u64 {
    tokio::task::yield_now().await;
    x * 2
}

#[anosys::logger(source = "async")]
async fn outer_async(x: u64) -> u64 {
    let a = inner_async(x).await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    let b = tokio::spawn(async move { a + 1 }).await.unwrap();
    inner_async(b).await
}

fn check_nesting(tag: u64) {
    let outer: Vec<Record> = records_of("outer_async").into_iter().filter(|r| r.input == Some(json!([tag]))).collect();
    assert_eq!(outer.len(), 1);
    let outer = &outer[0];
    assert_eq!(outer.output, Some(json!((tag * 2 + 1) * 2)));
    let inner: Vec<Record> =
        records_of("inner_async").into_iter().filter(|r| r.parent_span_id == Some(outer.span_id)).collect();
    assert_eq!(inner.len(), 2, "both inner calls are children of the outer one");
    assert!(inner.iter().all(|r| r.trace_id == outer.trace_id));
    assert!(outer.parent_span_id.is_none());
    assert_eq!(outer.caller.as_ref().unwrap().function.as_deref(), Some("outer_async"), "async records the definition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_calls_nest_on_a_multi_thread_runtime() {
    memory();
    assert_eq!(outer_async(10).await, 42);
    tokio::task::spawn_blocking(|| check_nesting(10)).await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn async_calls_nest_on_a_current_thread_runtime() {
    memory();
    assert_eq!(outer_async(20).await, 82);
    check_nesting(20);
}

#[anosys::logger]
async fn slow(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

#[tokio::test(flavor = "current_thread")]
async fn an_async_call_dropped_early_is_recorded_as_cancelled() {
    memory();
    assert!(tokio::time::timeout(Duration::from_millis(20), slow(5_000)).await.is_err());
    let r = one("slow");
    assert_eq!(r.attribute("anosys.outcome"), Some(&json!("cancelled")));
    assert_eq!(r.status.code, StatusCode::Unset);
    assert!(r.output.is_none());
}

#[anosys::logger(skip(password), fields(user.tier = "gold", attempt = retries + 1))]
fn login(user: &str, password: &str, retries: u32) -> bool {
    !user.is_empty() && !password.is_empty() && retries < 3
}

#[anosys::logger(skip_all)]
fn secret(token: &str) -> usize {
    token.len()
}

#[test]
fn skip_skip_all_and_fields() {
    memory();
    assert!(login("ada", "hunter2", 1));
    let r = one("login");
    assert_eq!(r.input, Some(json!(["ada", 1])));
    assert_eq!(r.attribute("user.tier"), Some(&json!("gold")));
    assert_eq!(r.attribute("attempt"), Some(&json!(2)));
    assert!(!serde_json::to_string(&r).unwrap().contains("hunter2"));
    assert_eq!(secret("abc"), 3);
    assert_eq!(one("secret").input, Some(json!([])));
}

/// Neither `Serialize` nor `Debug`.
struct Opaque;

#[derive(Debug)]
struct DebugOnly {
    #[allow(dead_code)]
    n: u8,
}

struct Broken;

impl serde::Serialize for Broken {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("cannot"))
    }
}

#[derive(serde::Serialize, Debug, Clone)]
struct Counter {
    n: u32,
}

impl Counter {
    #[anosys::logger]
    fn get(&self) -> u32 {
        self.n
    }

    #[anosys::logger(skip(self))]
    fn bump(&mut self, by: u32) -> u32 {
        self.n += by;
        self.n
    }

    #[anosys::logger]
    fn into_inner(self) -> u32 {
        self.n
    }

    #[anosys::logger]
    async fn get_later(&self) -> u32 {
        self.n
    }
}

trait Greeter {
    fn greet(&self, name: &str) -> String;
}

impl Greeter for Counter {
    #[anosys::logger]
    fn greet(&self, name: &str) -> String {
        format!("hello {name} #{}", self.n)
    }
}

#[anosys::logger]
fn describe<T: std::fmt::Debug>(value: T, opaque: Opaque, debug: DebugOnly, broken: Broken) -> String {
    let _ = (opaque, broken);
    format!("{value:?} {debug:?}")
}

#[anosys::logger]
fn later(x: u32) -> impl std::future::Future<Output = Result<u32, String>> {
    async move { if x > 0 { Ok(x) } else { Err("zero".to_owned()) } }
}

#[tokio::test(flavor = "current_thread")]
async fn methods_generics_traits_and_odd_types() {
    memory();
    let mut c = Counter { n: 1 };
    assert_eq!(c.get(), 1);
    assert_eq!(c.bump(4), 5);
    assert_eq!(c.get_later().await, 5);
    assert_eq!(c.greet("bo"), "hello bo #5");
    assert_eq!(c.clone().into_inner(), 5);
    assert_eq!(one("get").input, Some(json!([{"n": 1}])));
    assert_eq!(one("bump").input, Some(json!([4])));
    assert_eq!(one("get_later").output, Some(json!(5)));
    assert_eq!(one("greet").input, Some(json!([{"n": 5}, "bo"])));
    assert_eq!(one("into_inner").output, Some(json!(5)));

    assert_eq!(describe(7u8, Opaque, DebugOnly { n: 1 }, Broken), "7 DebugOnly { n: 1 }");
    let input = one("describe").input.unwrap();
    // In a generic function a value is captured through the bounds in
    // scope: here `T: Debug`.
    assert_eq!(input[0], json!("7"));
    assert_eq!(input[1], json!("<logger::Opaque>"));
    assert_eq!(input[2], json!("DebugOnly { n: 1 }"));
    assert!(input[3].as_str().unwrap().starts_with("<unserializable logger::Broken: cannot"), "{input}");

    assert_eq!(later(3).await, Ok(3));
    assert_eq!(later(0).await, Err("zero".to_owned()));
    let r = records_of("later");
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].output, Some(json!(3)));
    assert_eq!(r[1].error.as_ref().unwrap().message, "zero");
    assert!(r[0].caller.as_ref().unwrap().file.ends_with("tests/logger.rs"));
}

#[test]
fn a_child_of_a_sync_call_gets_its_trace() {
    #[anosys::logger]
    fn parent_fn() -> Value {
        let call = anosys::sources::openai::OpenAiCall::start(
            "https://api.openai.com/v1/chat/completions",
            json!({"model": "m"}),
            &Default::default(),
        );
        json!({"parent": call.record().parent_span_id.map(|s| s.to_string()), "trace": call.record().trace_id.to_string()})
    }
    memory();
    let seen = parent_fn();
    let r = one("parent_fn");
    assert_eq!(seen["parent"], json!(r.span_id.to_string()));
    assert_eq!(seen["trace"], json!(r.trace_id.to_string()));
}

#[anosys::logger]
fn load_config(path: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    Ok(text)
}

#[anosys::logger]
fn boxed(fail: bool) -> Result<u8, Box<dyn std::error::Error>> {
    if fail {
        return Err(Box::new(Declined { cause: std::io::Error::other("no funds") }));
    }
    Ok(1)
}

#[test]
fn anyhow_and_boxed_errors_keep_their_chain() {
    memory();
    assert!(load_config("/definitely/not/here.toml").is_err());
    let r = one("load_config");
    let e = r.error.unwrap();
    assert_eq!(e.error_type, "anyhow::Error");
    assert_eq!(e.message, "reading /definitely/not/here.toml");
    let stack = e.stack.unwrap();
    assert!(stack.contains("No such file or directory"), "{stack}");

    assert!(boxed(true).is_err());
    let e = one("boxed").error.unwrap();
    assert_eq!(e.message, "card declined");
    assert_eq!(e.stack.as_deref(), Some("caused by: no funds"));
}

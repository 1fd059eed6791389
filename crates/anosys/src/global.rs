//! The process-wide pipeline behind [`capture`], [`log_raw`] and friends.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Once, RwLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, ConfigBuilder, StartingIndices};
use crate::diag::{self, LogLevel};
use crate::pipeline::{BeforeSend, Counters, FlushReport, InitError, Pipeline, PipelineBuilder};
use crate::record::Record;
use crate::sources::raw;

static GLOBAL: RwLock<Option<Pipeline>> = RwLock::new(None);

/// Whether the pipeline in [`GLOBAL`] captures content: 0 none there, 1
/// no, 2 yes. Set with every change of `GLOBAL`, under its lock, so that
/// [`capture_content_enabled`] (asked on every call a language package
/// records) is one load, not the lock and the pipeline's reference count,
/// which other threads touch too.
static CONTENT: AtomicU8 = AtomicU8::new(0);

/// Notes what `GLOBAL` (whose write lock the caller holds) now holds.
fn note_content(global: &Option<Pipeline>) {
    CONTENT.store(global.as_ref().map_or(0, |p| 1 + u8::from(p.capture_content())), Ordering::Release);
}
/// Pipelines replaced by a later `init`; still delivered at exit.
static RETIRED: Mutex<Vec<Pipeline>> = Mutex::new(Vec::new());
static AT_EXIT: Once = Once::new();
/// The configuration last given to [`init_with`] or `setup_api`: a pipeline
/// started again later (after [`shutdown`], or in a forked child) uses it
/// rather than the bare environment.
static LAST_CONFIG: Mutex<Option<Config>> = Mutex::new(None);

fn remember(config: &Config) {
    *LAST_CONFIG.lock().unwrap_or_else(|p| p.into_inner()) = Some(config.clone());
}

/// Flushes the global pipeline when dropped (or when [`Guard::shutdown`] is
/// called). Keep it alive for as long as the program captures.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("anosys-guard-doc-{}", std::process::id()));
/// let config = anosys::Config::builder().db_path(dir.join("r.db")).build()?;
/// let _guard = anosys::init_with(config)?;
/// anosys::log_raw(serde_json::json!({"event": "started"}));
/// // dropped at the end of main: everything queued is delivered
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping the guard shuts the pipeline down at once"]
#[derive(Debug)]
pub struct Guard {
    pipeline: Option<Pipeline>,
}

impl Guard {
    /// The pipeline this guard owns.
    pub fn pipeline(&self) -> Option<&Pipeline> {
        self.pipeline.as_ref()
    }

    /// Stops the pipeline and delivers everything queued, waiting up to
    /// `timeout` (`None`: the configured shutdown timeout), and returns
    /// what happened.
    pub fn shutdown(mut self, timeout: Option<Duration>) -> FlushReport {
        match self.pipeline.take() {
            Some(p) => p.shutdown(timeout),
            None => FlushReport::empty(),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.pipeline.take() {
            let _ = catch_unwind(AssertUnwindSafe(|| p.shutdown(None)));
        }
    }
}

extern "C" fn deliver_at_exit() {
    let _ = catch_unwind(|| {
        crate::sources::openai::deferred::wait_idle(DEFERRED_WAIT);
        let mut all: Vec<Pipeline> = Vec::new();
        if let Ok(g) = GLOBAL.try_read() {
            all.extend(g.iter().cloned());
        }
        if let Ok(r) = RETIRED.try_lock() {
            all.extend(r.iter().cloned());
        }
        for p in all {
            p.shutdown(None);
        }
    });
}

fn install_global(pipeline: Pipeline) {
    let old = {
        let mut g = GLOBAL.write().unwrap_or_else(|p| p.into_inner());
        let old = g.replace(pipeline);
        note_content(&g);
        old
    };
    if let Some(old) = old {
        // Stop it taking records; what it holds is still delivered (at exit
        // at the latest) to where it was going.
        let o = old.clone();
        let _ = std::thread::Builder::new().name("anosys-retire".into()).spawn(move || {
            o.shutdown(None);
        });
        RETIRED.lock().unwrap_or_else(|p| p.into_inner()).push(old);
    }
    register_at_exit();
}

/// Delivers what the global pipelines hold when the process exits, also
/// when the program never kept (or dropped) a guard.
fn register_at_exit() {
    AT_EXIT.call_once(|| {
        // SAFETY: registering a plain `extern "C" fn()` with the C runtime.
        unsafe {
            libc::atexit(deliver_at_exit);
        }
    });
}

/// Starts the global pipeline from the environment (see [`Config`]) and
/// returns a guard that delivers everything when dropped. Never waits on
/// the network.
///
/// ```no_run
/// fn main() -> Result<(), anosys::InitError> {
///     let _guard = anosys::init()?;
///     anosys::log_raw(serde_json::json!({"event": "hello"}));
///     Ok(())
/// }
/// ```
pub fn init() -> Result<Guard, InitError> {
    init_with(Config::from_env()?)
}

/// Starts the global pipeline with `config` (or with a
/// [`PipelineBuilder`](crate::PipelineBuilder), to add sinks of your own),
/// replacing any earlier one (which still delivers what it already holds),
/// and returns a guard that delivers everything when dropped.
///
/// ```
/// use std::sync::Arc;
/// # let dir = std::env::temp_dir().join(format!("anosys-init-with-doc-{}", std::process::id()));
/// let config = anosys::Config::builder().db_path(dir.join("r.db")).build()?;
/// let _guard = anosys::init_with(config.clone())?;
///
/// // With a sink of your own next to the configured ones:
/// let builder = anosys::Pipeline::builder(config).sink(Arc::new(anosys::sinks::StdoutSink));
/// let _guard = anosys::init_with(builder)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn init_with(start: impl Into<PipelineBuilder>) -> Result<Guard, InitError> {
    let pipeline = start_global(start.into())?;
    Ok(Guard { pipeline: Some(pipeline) })
}

/// Builds the pipeline, makes it the global one and remembers its
/// configuration for a later restart.
fn start_global(builder: PipelineBuilder) -> Result<Pipeline, InitError> {
    let config = builder.config().clone();
    let pipeline = builder.build()?;
    remember(&config);
    install_global(pipeline.clone());
    Ok(pipeline)
}

/// The global pipeline, started from the environment on first use.
pub(crate) fn global() -> Option<Pipeline> {
    if let Some(p) = GLOBAL.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
        return Some(p.clone());
    }
    let mut g = GLOBAL.write().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = g.as_ref() {
        return Some(p.clone());
    }
    let last = LAST_CONFIG.try_lock().ok().and_then(|c| c.clone());
    let config = last.unwrap_or_else(|| {
        Config::from_env().unwrap_or_else(|e| {
            diag::log(LogLevel::Error, &format!("{e}; using the defaults instead"));
            Config::default()
        })
    });
    let started = match Pipeline::new(config.clone()) {
        // A price file that cannot be read costs the calls their price,
        // not their capture.
        Err(InitError::Prices(e)) => {
            diag::log(LogLevel::Error, &format!("{}; LLM calls are priced with the built-in prices", diag::chain(&e)));
            let mut config = config;
            config.prices = None;
            Pipeline::new(config)
        }
        // Nor do bad redaction settings cost the records: the default
        // redaction applies.
        Err(InitError::Redaction(e)) => {
            diag::log(LogLevel::Error, &format!("{e}; the default redaction applies"));
            let mut config = config;
            config.redact = None;
            config.redact_patterns = None;
            Pipeline::new(config)
        }
        started => started,
    };
    match started {
        Ok(p) => {
            *g = Some(p.clone());
            note_content(&g);
            drop(g);
            register_at_exit();
            Some(p)
        }
        Err(e) => {
            diag::once("global-init", LogLevel::Error, || format!("{e}; records are not captured"));
            None
        }
    }
}

/// Hands a finished record to the global pipeline without blocking.
/// Returns `false` when it was dropped (queue full, or shut down).
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("anosys-capture-doc-{}", std::process::id()));
/// # let _g = anosys::init_with(anosys::Config::builder().db_path(dir.join("r.db")).build().unwrap()).unwrap();
/// let mut record = anosys::Record::new(anosys::RecordKind::FunctionCall, "job.run");
/// record.finish(anosys::Status::ok());
/// assert!(anosys::capture(record));
/// ```
pub fn capture(record: Record) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        let hook = global_before_send();
        global().is_some_and(|p| p.submit_through(record, hook.as_deref().map(|f| f as &dyn Fn(&mut Record) -> bool)))
    }))
    .unwrap_or(false)
}

/// [`capture`] of a record whose call ended while no [`set_before_send`]
/// callback was set (see [`crate::embed::DeferredCall`]): one set since
/// does not see it, as it would not have, had it been captured then.
pub(crate) fn capture_without_hook(record: Record) -> bool {
    catch_unwind(AssertUnwindSafe(|| global().is_some_and(|p| p.submit(record)))).unwrap_or(false)
}

/// [`capture`] through one more callback, after the global one: for a
/// binding whose callback must run where only it can call it (the Node
/// package's, on the JavaScript thread). Records it turns down are counted
/// as `filtered`.
pub fn capture_through(record: Record, callback: &dyn Fn(&mut Record) -> bool) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        global().is_some_and(|p| {
            let keep = |r: &mut Record| {
                let hook = global_before_send();
                hook.is_none_or(|h| h(r)) && callback(r)
            };
            p.submit_through(record, Some(&keep))
        })
    }))
    .unwrap_or(false)
}

/// How long [`flush`], [`shutdown`] (with no timeout) and [`counters`]
/// wait for OpenAI calls still being made into records off their caller's
/// thread ([`crate::embed::DeferredCall`]): each takes microseconds.
const DEFERRED_WAIT: Duration = Duration::from_secs(5);

/// Whether a [`set_before_send`] callback is set.
pub(crate) fn has_before_send() -> bool {
    HAS_BEFORE_SEND.load(Ordering::Acquire)
}

static BEFORE_SEND: RwLock<Option<BeforeSend>> = RwLock::new(None);
static HAS_BEFORE_SEND: AtomicBool = AtomicBool::new(false);

/// The callback of [`set_before_send`], if any (one atomic load when none).
fn global_before_send() -> Option<BeforeSend> {
    HAS_BEFORE_SEND
        .load(Ordering::Acquire)
        .then(|| BEFORE_SEND.read().unwrap_or_else(|p| p.into_inner()).clone())
        .flatten()
}

/// Calls `callback` with every record captured for the global pipeline
/// (by [`capture`], the OpenAI client, `#[logger]`, the raw logger), on
/// the capturing thread, before it is queued: it may change the record and
/// returns whether to keep it (records turned down are counted as
/// `filtered`). Replaces an earlier callback; it also applies to global
/// pipelines started later (after a fork, or by [`init_with`]), next to a
/// builder's own [`before_send`](crate::PipelineBuilder::before_send). A
/// callback that panics drops the record (counted as `filtered`, and once
/// in `errors`). The Python and Node packages set theirs through this.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("anosys-set-before-send-doc-{}", std::process::id()));
/// # let _g = anosys::init_with(anosys::Config::builder().db_path(dir.join("r.db")).build().unwrap()).unwrap();
/// anosys::set_before_send(|record: &mut anosys::Record| {
///     record.attributes.shift_remove("enduser.id");
///     record.name != "heartbeat"
/// });
/// assert!(!anosys::capture(anosys::Record::new(anosys::RecordKind::Raw, "heartbeat")));
/// assert!(anosys::capture(anosys::Record::new(anosys::RecordKind::Raw, "order")));
/// anosys::clear_before_send();
/// assert!(anosys::capture(anosys::Record::new(anosys::RecordKind::Raw, "heartbeat")));
/// ```
pub fn set_before_send(callback: impl Fn(&mut Record) -> bool + Send + Sync + 'static) {
    *BEFORE_SEND.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(callback));
    HAS_BEFORE_SEND.store(true, Ordering::Release);
}

/// Removes the callback of [`set_before_send`].
pub fn clear_before_send() {
    HAS_BEFORE_SEND.store(false, Ordering::Release);
    *BEFORE_SEND.write().unwrap_or_else(|p| p.into_inner()) = None;
}

/// Logs arbitrary JSON (the seed's `anosys_raw_logger`): each top-level key
/// of an object goes to its own AnoSys column, the whole value to `raw`.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("anosys-raw-doc-{}", std::process::id()));
/// # let _g = anosys::init_with(anosys::Config::builder().db_path(dir.join("r.db")).build().unwrap()).unwrap();
/// anosys::log_raw(serde_json::json!({"event": "user_action", "action": "button_click", "user_id": "12345"}));
/// ```
pub fn log_raw(data: Value) -> bool {
    catch_unwind(AssertUnwindSafe(|| raw::raw_record(data))).map(capture).unwrap_or(false)
}

/// [`log_raw`] for any `Serialize` value.
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Signup { plan: &'static str, seats: u32 }
/// # let dir = std::env::temp_dir().join(format!("anosys-raws-doc-{}", std::process::id()));
/// # let _g = anosys::init_with(anosys::Config::builder().db_path(dir.join("r.db")).build().unwrap()).unwrap();
/// anosys::log_raw_serialize(&Signup { plan: "pro", seats: 3 });
/// ```
pub fn log_raw_serialize<T: Serialize + ?Sized>(data: &T) -> bool {
    catch_unwind(AssertUnwindSafe(|| raw::raw_record_from(data))).map(capture).unwrap_or(false)
}

/// Delivers everything the global pipeline holds, waiting up to
/// `timeout` (`None`: the configured shutdown timeout,
/// `ANOSYS_SHUTDOWN_TIMEOUT_MS`). Does not start a pipeline: with none
/// running the report is empty.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("anosys-flush-doc-{}", std::process::id()));
/// # let _g = anosys::init_with(anosys::Config::builder().db_path(dir.join("r.db")).build().unwrap()).unwrap();
/// anosys::log_raw(serde_json::json!({"event": "bye"}));
/// let report = anosys::flush(None);
/// assert!(report.completed);
/// assert_eq!(report.pending, 0);
/// ```
pub fn flush(timeout: Option<Duration>) -> FlushReport {
    crate::sources::openai::deferred::wait_idle(timeout.unwrap_or(DEFERRED_WAIT));
    match running() {
        Some(p) => p.flush(timeout),
        None => FlushReport::empty(),
    }
}

/// Shuts the global pipeline down, delivering what it holds (waiting up to
/// `timeout`; `None`: the configured shutdown timeout). Later captures
/// start a new one, from the configuration last given to [`init_with`] or
/// [`setup_api`](crate::compat::setup_api), else from the environment.
pub fn shutdown(timeout: Option<Duration>) -> FlushReport {
    crate::sources::openai::deferred::wait_idle(timeout.unwrap_or(DEFERRED_WAIT));
    let p = {
        let mut g = GLOBAL.write().unwrap_or_else(|p| p.into_inner());
        let p = g.take();
        note_content(&g);
        p
    };
    match p {
        Some(p) => p.shutdown(timeout),
        None => FlushReport::empty(),
    }
}

/// The global pipeline if one is running (never starts one).
fn running() -> Option<Pipeline> {
    GLOBAL.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Whether the global pipeline captures content (prompts, replies,
/// inputs, outputs): `ANOSYS_CAPTURE_CONTENT`, on by default. Sources that
/// build records themselves (the language packages) ask before converting
/// what they would otherwise throw away.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("anosys-cc-doc-{}", std::process::id()));
/// let config = anosys::Config::builder().db_path(dir.join("r.db")).capture_content(false).build()?;
/// let _guard = anosys::init_with(config)?;
/// assert!(!anosys::embed::capture_content_enabled());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn capture_content_enabled() -> bool {
    match CONTENT.load(Ordering::Acquire) {
        1 => false,
        2 => true,
        // None yet: started here, as a capture would.
        _ => catch_unwind(|| global().is_none_or(|p| p.capture_content())).unwrap_or(true),
    }
}

/// Call in a child process right after `fork()`. The child inherits the
/// parent's pipelines but not their worker threads, so records it queued
/// there would never be sent; this forgets them (the parent still delivers
/// what they hold) and lets the next capture start a fresh pipeline from
/// the environment, or from the configuration last given to
/// [`setup_api`](crate::compat::setup_api). The Python package calls it from `os.register_at_fork`.
///
/// Only safe in the child of a fork, before it starts other threads.
pub fn after_fork_in_child() {
    crate::sources::openai::deferred::after_fork_in_child();
    // A lock another thread held at the moment of the fork stays locked in
    // the child: never wait on one.
    if let Ok(mut g) = GLOBAL.try_write() {
        if let Some(old) = g.take() {
            std::mem::forget(old);
        }
        note_content(&g);
    } else {
        diag::log(LogLevel::Warn, "after fork: the pipeline lock was held; records of this process are not captured");
        return;
    }
    if let Ok(mut r) = RETIRED.try_lock() {
        for old in r.drain(..) {
            std::mem::forget(old);
        }
    }
}

/// The global pipeline's counters (all zero when none is running; like
/// [`flush`], this does not start one).
pub fn counters() -> Counters {
    crate::sources::openai::deferred::wait_idle(DEFERRED_WAIT);
    running().as_ref().map(Pipeline::counters).unwrap_or_default()
}

/// The original SDK's `setup_api(path, starting_indices)`: send to `path`
/// (or, with `None`, to what the environment says) and start dynamic slots
/// at `starting_indices`. Restarts the global pipeline.
///
/// ```no_run
/// anosys::compat::setup_api(Some("https://example.invalid/log"), None)?;
/// # Ok::<(), anosys::InitError>(())
/// ```
pub fn setup_api(path: Option<&str>, starting_indices: Option<StartingIndices>) -> Result<(), InitError> {
    let mut builder = ConfigBuilder::from_env()?;
    if let Some(path) = path {
        builder = builder.api_url(path);
    }
    if let Some(si) = starting_indices {
        builder = builder.starting_indices(si);
    }
    // No guard: the original SDK had none to keep; the pipeline stays
    // global until exit (or the next start).
    start_global(builder.build()?.into())?;
    Ok(())
}

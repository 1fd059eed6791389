//! Fault-injection scenario 8: the logging proxy (`anosys proxy`, the real
//! binary) killed with `kill -9` mid-load and restarted on the same store,
//! while a client sends chat calls through it at a fixed rate. The upstream
//! is the recorded-replies server on 127.0.0.1, AnoSys a stand-in on
//! 127.0.0.1 that counts records by the sequence number each call carries
//! (its `x-anosys-session-id` header, which becomes the record's
//! `session.id`).
//!
//! A completed call (2xx and its whole body received) is in the proxy's
//! memory until the next flush point (`ANOSYS_FLUSH_INTERVAL_MS`, or a full
//! batch), then handed to the store and to AnoSys; the proxy writes every
//! batch for AnoSys to its outbox before sending it
//! (`ANOSYS_OUTBOX_WRITE_AHEAD`, on in the proxy). A kill loses at most
//! what was still in memory: the calls of the last flush interval still in
//! the queue, and a batch whose outbox write had not committed. So every
//! call completed more than one flush interval (plus a margin for that
//! write) before a kill is delivered once the proxy is back. This test
//! measures that per kill and asserts it; what completed after the last
//! restart is all delivered by the graceful shutdown (SIGTERM).
//!
//! Release builds only, like `anosys/tests/faults.rs` (`scripts/test.sh`
//! runs it shortened, `scripts/faults.sh` at full length with
//! `ANOSYS_FAULTS=full`). It prints one `FAULTS|…` line for the README
//! table: calls completed, delivered, duplicated, dropped (counted by the
//! proxy), lost (completed and never delivered), and the proxy's peak
//! resident memory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anosys_cli::replay;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::json;

/// The marker before each call's sequence number.
const MARK: &str = "s8seq-";

/// The sequence number after the first [`MARK`] in `text`.
fn seq_in(text: &str) -> Option<u64> {
    let at = text.find(MARK)? + MARK.len();
    let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

// ---------------------------------------------------------------------
// The AnoSys stand-in: counts every sequence number it accepts.

#[derive(Default)]
struct Stand {
    /// seq → times accepted.
    seen: Mutex<BTreeMap<u64, u32>>,
    unreadable: Mutex<u64>,
}

async fn intake(State(s): State<Arc<Stand>>, body: Bytes) -> StatusCode {
    match seq_in(&String::from_utf8_lossy(&body)) {
        Some(seq) => *s.seen.lock().unwrap().entry(seq).or_insert(0) += 1,
        None => *s.unreadable.lock().unwrap() += 1,
    }
    StatusCode::OK
}

impl Stand {
    fn delivered(&self) -> BTreeSet<u64> {
        self.seen.lock().unwrap().keys().copied().collect()
    }

    fn duplicated(&self) -> u64 {
        self.seen.lock().unwrap().values().filter(|n| **n > 1).count() as u64
    }

    fn accepted(&self) -> u64 {
        self.seen.lock().unwrap().values().map(|n| u64::from(*n)).sum()
    }
}

// ---------------------------------------------------------------------
// The proxy process.

struct ProxyProcess {
    child: Child,
    stderr: PathBuf,
}

fn start_proxy(port: u16, upstream: &str, stand_url: &str, db: &Path, dir: &Path, run: usize, flush: Option<u64>) -> ProxyProcess {
    let stderr = dir.join(format!("proxy-{run}.stderr"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_anosys"));
    cmd.args(["proxy", "--quiet", "--listen", &format!("127.0.0.1:{port}"), "--upstream", upstream]);
    for (k, _) in std::env::vars() {
        if k.starts_with("ANOSYS_") || k.starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("ANOSYS_API_URL", stand_url)
        .env("ANOSYS_DB", db)
        // AnoSys and the local store: what the store holds after a kill is
        // what reached the disk.
        .env("ANOSYS_SINKS", "anosys,sqlite")
        .env("ANOSYS_TIMEOUT_MS", "2000")
        .env("ANOSYS_LOG_LEVEL", if std::env::var_os("FAULT_DEBUG").is_some() { "debug" } else { "warn" });
    if let Some(ms) = flush {
        cmd.env("ANOSYS_FLUSH_INTERVAL_MS", ms.to_string());
    }
    let file = std::fs::File::create(&stderr).unwrap();
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::from(file)).spawn().unwrap();
    let proxy = ProxyProcess { child, stderr };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !healthy(port) {
        assert!(Instant::now() < deadline, "the proxy did not come up: {}", proxy.stderr_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    proxy
}

impl ProxyProcess {
    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The peak resident memory so far, in KiB.
    fn peak_rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
            .unwrap_or(0)
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
    }

    /// Waits (at most 30 s) for the exit.
    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the proxy did not stop: {}", self.stderr_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether the proxy on `port` answers its health check (a plain
/// HTTP/1.1 request on a socket: the proxy is another process).
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// The sequence numbers in the store's records table, after an integrity
/// check (`None` when the store cannot be opened or is damaged).
fn stored(db: &Path) -> Option<BTreeSet<u64>> {
    let conn = anosys::sinks::sqlite::open_read_only(db).ok()?;
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).ok()?;
    if ok != "ok" {
        return None;
    }
    let mut stmt = conn.prepare("SELECT record FROM records").ok()?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).ok()?;
    Some(rows.filter_map(|r| r.ok().and_then(|t| seq_in(&t))).collect())
}

// ---------------------------------------------------------------------
// The client: chat calls at a fixed rate, each with its sequence number.

#[derive(Default)]
struct Load {
    stop: AtomicBool,
    /// seq → when its whole 2xx answer had arrived.
    completed: Mutex<BTreeMap<u64, Instant>>,
    sent: Mutex<u64>,
}

async fn run_load(load: Arc<Load>, url: String, rate: u64, max_calls: u64, max_time: Duration) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let started = Instant::now();
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say this is a test"}]});
    let mut calls = tokio::task::JoinSet::new();
    for seq in 0..max_calls {
        if load.stop.load(Ordering::Relaxed) || started.elapsed() >= max_time {
            break;
        }
        let due = started + Duration::from_secs_f64(seq as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        *load.sent.lock().unwrap() += 1;
        let (client, load, url, body) = (client.clone(), load.clone(), url.clone(), body.clone());
        calls.spawn(async move {
            let sent = client.post(&url).header("x-anosys-session-id", format!("{MARK}{seq}")).json(&body).send().await;
            let Ok(response) = sent else { return };
            if response.status().is_success() && response.bytes().await.is_ok() {
                load.completed.lock().unwrap().insert(seq, Instant::now());
            }
        });
        while calls.try_join_next().is_some() {}
    }
    while calls.join_next().await.is_some() {}
}

// ---------------------------------------------------------------------
// The scenario.

struct Scale {
    rate: u64,
    kills: usize,
    /// Load between two kills: at least, plus a random part up to.
    segment: (Duration, Duration),
}

fn scale() -> Scale {
    let mut s = if std::env::var("ANOSYS_FAULTS").as_deref() == Ok("full") {
        Scale { rate: 500, kills: 12, segment: (Duration::from_millis(1500), Duration::from_millis(3000)) }
    } else {
        Scale { rate: 200, kills: 2, segment: (Duration::from_millis(1200), Duration::from_millis(1000)) }
    };
    if let Some(rate) = std::env::var("ANOSYS_FAULTS_RATE").ok().and_then(|v| v.parse().ok()) {
        s.rate = rate;
    }
    s
}

/// One kill: when, and when the next proxy answered.
struct Kill {
    at: Instant,
    back: Instant,
}

#[test]
#[cfg_attr(debug_assertions, ignore = "timing-sensitive: run in release (scripts/test.sh and scripts/faults.sh do)")]
fn s8_proxy_kill_9_loses_at_most_what_was_in_memory() {
    let s = scale();
    // The proxy's flush interval and batch size: the defaults, unless
    // ANOSYS_FAULTS_FLUSH_MS sets the interval.
    let flush_override = std::env::var("ANOSYS_FAULTS_FLUSH_MS").ok().and_then(|v| v.parse::<u64>().ok());
    let defaults = anosys::Config::builder().build().unwrap();
    let flush = flush_override.map(Duration::from_millis).unwrap_or(defaults.flush_interval());
    let batch = defaults.batch_size() as u64;
    // Time for a flushed batch to reach the outbox (its write commits), on a
    // busy machine.
    let write_margin = Duration::from_millis(500);

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let upstream = runtime.block_on(replay::ReplayServer::start(replay::Pacing::default())).unwrap();
    let stand = Arc::new(Stand::default());
    let stand_listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let stand_url = format!("http://{}/log", stand_listener.local_addr().unwrap());
    let app = Router::new().route("/log", post(intake)).with_state(stand.clone());
    runtime.spawn(async move { axum::serve(stand_listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("proxy.db");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let up = format!("http://{}", upstream.addr());
    let start = |run| start_proxy(port, &up, &stand_url, &db, dir.path(), run, flush_override);

    let mut proxy = start(0);
    let load = Arc::new(Load::default());
    let segment = |rng: &mut fastrand::Rng| s.segment.0 + Duration::from_millis(rng.u64(0..=s.segment.1.as_millis() as u64));
    let mut rng = fastrand::Rng::new();
    let budget = (s.segment.0 + s.segment.1) * (s.kills as u32 + 1) + Duration::from_secs(30);
    let max_calls = s.rate * budget.as_secs();
    let load_started = Instant::now();
    let client = runtime.spawn(run_load(load.clone(), format!("http://127.0.0.1:{port}/v1/chat/completions"), s.rate, max_calls, budget));

    let mut kills = Vec::new();
    let mut peak_rss_kb = 0;
    for run in 0..s.kills {
        std::thread::sleep(segment(&mut rng));
        peak_rss_kb = peak_rss_kb.max(proxy.peak_rss_kb());
        let at = Instant::now();
        proxy.signal(libc::SIGKILL);
        proxy.wait();
        assert!(stored(&db).is_some(), "the store does not open, or is damaged, after kill {}", run + 1);
        proxy = start(run + 1);
        kills.push(Kill { at, back: Instant::now() });
    }
    std::thread::sleep(segment(&mut rng));
    load.stop.store(true, Ordering::Relaxed);
    runtime.block_on(client).unwrap();
    let load_ended = Instant::now();
    peak_rss_kb = peak_rss_kb.max(proxy.peak_rss_kb());
    proxy.signal(libc::SIGTERM);
    let status = proxy.wait();
    let stopped = proxy.stderr_text();
    assert!(status.success(), "the proxy did not stop cleanly: {stopped}");
    // The proxy delivers before it exits; give the stand-in a moment to
    // count the last answers.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = stand.accepted();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let now = stand.accepted();
        if now == last {
            break;
        }
        last = now;
    }

    let completed = load.completed.lock().unwrap().clone();
    let sent = *load.sent.lock().unwrap();
    let delivered = stand.delivered();
    let in_store = stored(&db).expect("the store opens after the graceful stop");
    let lost: BTreeMap<u64, Instant> = completed.iter().filter(|(seq, _)| !delivered.contains(seq)).map(|(s, t)| (*s, *t)).collect();
    let not_stored = completed.keys().filter(|seq| !in_store.contains(seq)).count();
    let dropped: u64 = stopped
        .lines()
        .rev()
        .find_map(|l| l.split_once("anosys proxy stopped:").map(|(_, rest)| rest.to_owned()))
        .and_then(|rest| rest.split(',').find_map(|part| part.trim().strip_suffix(" dropped")?.parse().ok()))
        .unwrap_or(0);

    // Per kill: the calls that completed while that proxy ran, those lost,
    // and those completed within one flush interval before the kill.
    let mut from = None::<Instant>;
    let (mut worst_lost, mut worst_age, mut worst_window) = (0u64, Duration::ZERO, 0u64);
    let (mut older_than_interval, mut flushed_lost, mut worst_flushed) = (0u64, 0u64, 0u64);
    for (i, kill) in kills.iter().enumerate() {
        let in_run = |t: &Instant| from.is_none_or(|f| *t >= f) && *t < kill.back;
        let lost_here: Vec<(u64, Instant)> = lost.iter().map(|(s, t)| (*s, *t)).filter(|(_, t)| in_run(t)).collect();
        let window = completed.values().filter(|t| in_run(t) && **t + flush > kill.at).count() as u64;
        let age = lost_here.iter().map(|(_, t)| kill.at.saturating_duration_since(*t)).max().unwrap_or_default();
        let old: Vec<u64> =
            lost_here.iter().filter(|(_, t)| *t + flush + write_margin <= kill.at).map(|(s, _)| *s).collect();
        older_than_interval += old.len() as u64;
        // Lost for AnoSys although past a flush point: the local store has
        // them (batches the AnoSys lane held, being delivered, when the kill
        // came). The others were still in the queue.
        let flushed = lost_here.iter().filter(|(seq, _)| in_store.contains(seq)).count() as u64;
        flushed_lost += flushed;
        worst_flushed = worst_flushed.max(flushed);
        let n = lost_here.len() as u64;
        let line = format!(
            "kill {}: {n} lost ({flushed} of them flushed to the local store but not yet delivered), oldest {} ms before the kill; {window} completed in the last flush interval",
            i + 1,
            age.as_millis()
        );
        println!("{line}");
        assert!(
            n - flushed <= window + batch,
            "kill {}: {} completed calls not yet flushed were lost, more than the {window} completed in the last flush interval ({} ms) plus one batch ({batch}): the proxy held more than its last flush interval in its queue",
            i + 1,
            n - flushed,
            flush.as_millis(),
        );
        assert!(
            old.is_empty(),
            "kill {}: {} calls completed more than a flush interval ({} ms) and {} ms before the kill were lost (e.g. {:?}): they should have been in the outbox",
            i + 1,
            old.len(),
            flush.as_millis(),
            write_margin.as_millis(),
            &old[..old.len().min(5)]
        );
        worst_lost = worst_lost.max(n);
        worst_window = worst_window.max(window);
        worst_age = worst_age.max(age);
        from = Some(kill.back);
    }
    let after_last = lost.values().filter(|t| from.is_none_or(|f| **t >= f)).count();
    let total_lost = lost.len() as u64;
    let completed_n = completed.len() as u64;
    let delivered_of_completed = completed_n - total_lost;
    println!(
        "FAULTS|8 proxy kill -9 mid-load, restart (calls)|{completed_n}|{delivered_of_completed}|{}|{dropped}|{total_lost}|{:.0}|{} kills at random moments, {}/s chat calls for {:.0} s ({sent} sent); flush interval {} ms: at most {worst_lost} lost at a kill (its last interval held up to {worst_window}), the oldest {} ms before it, {older_than_interval} older than one interval and 500 ms; {flushed_lost} of the lost (at most {worst_flushed} at a kill) were flushed and being delivered (in the local store); {not_stored} completed calls not in the local store",
        stand.duplicated(),
        peak_rss_kb as f64 / 1024.0,
        s.kills,
        s.rate,
        load_ended.saturating_duration_since(load_started).as_secs_f64(),
        flush.as_millis(),
        worst_age.as_millis(),
    );
    assert_eq!(after_last, 0, "calls completed after the last restart were lost: the graceful stop did not deliver them");
    assert!(completed_n > s.rate, "too few calls completed ({completed_n} of {sent}): {stopped}");
    assert_eq!(*stand.unreadable.lock().unwrap(), 0, "records without a sequence number reached the stand-in");
}

// What the caller and encoder benchmarks share (included by `capture`,
// `capture_mimalloc` and `ratios`, after `records.rs`).

/// A typical record with 30 attributes, as an encoder sees many.
fn thirty_field_record() -> Record {
    let mut r = typical_record();
    r.set_attribute("server.port", 443);
    r.set_attribute("is_streaming", false);
    r.set_attribute("gen_ai.usage.total_tokens", 59);
    r.set_attribute(
        "gen_ai.input.messages",
        json!([{"role": "user", "parts": [{"type": "text", "content": "Say this is a test"}]}]),
    );
    r.set_attribute(
        "gen_ai.output.messages",
        json!([{"role": "assistant", "parts": [{"type": "text", "content": "This is a test."}], "finish_reason": "stop"}]),
    );
    for i in 0..7 {
        r.set_attribute(format!("app.tag{i}"), format!("value-{i}"));
    }
    for i in 0..3 {
        r.set_attribute(format!("app.metric{i}"), i as f64 * 1.5);
    }
    r.set_attribute("app.flag", true);
    assert!(r.attributes.len() >= 28, "{}", r.attributes.len());
    r
}

/// Submits `iters` typical records, timed in runs of at most 4,096 with
/// `start` and `elapsed`, each run followed by an untimed flush.
fn submit_runs<T>(pipeline: &Pipeline, iters: u64, start: impl Fn() -> T, elapsed: impl Fn(T) -> Duration) -> Duration {
    let mut timed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let run = left.min(4_096);
        let started = start();
        for _ in 0..run {
            black_box(pipeline.submit(typical_record()));
        }
        timed += elapsed(started);
        left -= run;
        pipeline.flush(Some(Duration::from_secs(30)));
    }
    timed
}

/// CPU time of the calling thread so far (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to write into.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    assert!(ok, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}


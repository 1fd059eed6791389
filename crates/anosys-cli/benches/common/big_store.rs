// A large store of typical records, built once in the temp folder and
// reused (include!d by the stats and ui benchmarks; the includer imports
// Duration, SystemTime, PathBuf, json, Record, RecordKind, Status,
// ErrorInfo, Filter and Store).

const MODELS: &[&str] = &["gpt-4o-mini", "gpt-4o", "gpt-4.1", "o4-mini", "text-embedding-3-small"];
const SOURCES: &[&str] = &["billing", "search", "assistant", "ingest"];

/// Record `i`; records are spread evenly over the 30 days from `t0`, `step` apart.
fn record(i: usize, rng: &mut fastrand::Rng, t0: SystemTime, step: Duration) -> Record {
    let llm = !i.is_multiple_of(5);
    let mut r = if llm {
        let model = MODELS[rng.usize(..MODELS.len())];
        let mut r = Record::new(RecordKind::LlmCall, format!("chat {model}"));
        r.source = Some("openai".into());
        r.set_attribute("gen_ai.operation.name", "chat");
        r.set_attribute("gen_ai.provider.name", "openai");
        r.set_attribute("gen_ai.request.model", model);
        r.set_attribute("gen_ai.usage.input_tokens", rng.u32(5..2000));
        r.set_attribute("gen_ai.usage.output_tokens", rng.u32(1..800));
        if rng.bool() {
            r.set_attribute("gen_ai.response.time_to_first_chunk", rng.f64() * 0.8);
        }
        r.input = Some(json!([{"role": "user", "content": "Summarise the ticket in one line."}]));
        r.output = Some(json!("Customer cannot log in after the password reset."));
        // 2,000 users; sessions of 25 records in a row.
        r.user_context = Some(json!({"user_id": format!("user-{}", rng.u32(..2000)), "session_id": format!("s-{}", i / 25)}));
        r
    } else {
        let mut r = Record::new(RecordKind::FunctionCall, "app::handler");
        r.source = Some(SOURCES[rng.usize(..SOURCES.len())].into());
        r.input = Some(json!([rng.u32(..)]));
        r
    };
    r.start_time = t0 + step * i as u32;
    r.end_time = r.start_time + Duration::from_micros(rng.u64(1_000..3_000_000));
    if rng.u8(..100) < 3 {
        r.fail(ErrorInfo { error_type: "RateLimitError".into(), message: "slow down".into(), stack: None });
    } else {
        r.status = Status::ok();
    }
    r
}

fn store_with(n: usize) -> PathBuf {
    let path = std::env::temp_dir().join(format!("anosys-bench-stats-v2-{n}.db"));
    if let Ok(store) = Store::open(&path)
        && store.count(&Filter::default()).ok() == Some(n as u64)
    {
        return path;
    }
    let _ = std::fs::remove_file(&path);
    eprintln!("building a store of {n} records at {} (once)", path.display());
    let mut conn = anosys::sinks::sqlite::open(&path).expect("create the store");
    let mut rng = fastrand::Rng::with_seed(7);
    let t0 = SystemTime::now() - Duration::from_secs(30 * 86_400);
    let step = Duration::from_secs(30 * 86_400) / n.max(1) as u32;
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        batch.push(record(i, &mut rng, t0, step));
        if batch.len() == batch.capacity() {
            anosys::sinks::sqlite::insert(&mut conn, &batch).expect("insert");
            batch.clear();
        }
    }
    anosys::sinks::sqlite::insert(&mut conn, &batch).expect("insert");
    path
}

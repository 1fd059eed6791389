// What the async-openai layer does on the caller's thread for a plain call
// (included by `openai` and `ratios`).

/// Times `n` calls to `uri` handed over as the async-openai layer hands a
/// plain call: the request as sent (`sent`) and the answer's bytes
/// (`body`) kept and passed to the extraction thread, which makes the
/// record. Every 32 calls the timing stops until that thread has made them
/// all, so the caller never finds its queue full (it would then do the
/// work itself).
fn hand_over(uri: &str, sent: &[u8], body: &[u8], options: &CaptureOptions, n: u64) -> Duration {
    let mut spent = Duration::ZERO;
    let mut done = 0;
    while done < n {
        let run = (n - done).min(32);
        let started = Instant::now();
        for _ in 0..run {
            let request = RequestJson::Bytes(black_box(sent).to_vec());
            let mut call = DeferredCall::start(uri.to_string(), request, options.clone(), None);
            let answer = ResponseJson::Bytes(black_box(body).to_vec());
            call.finish_deferred_into(200, answer, |record| drop(black_box(record)));
        }
        spent += started.elapsed();
        // Waits until the extraction thread has made them.
        anosys::counters();
        done += run;
    }
    spent
}

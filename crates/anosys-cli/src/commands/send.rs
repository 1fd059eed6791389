//! `anosys send`: replays stored records to AnoSys or an OTLP backend.

use anosys::sinks::{AnosysSink, ExportContext, OtlpSink, Sink};
use anosys::Record;

use super::{filter, progress, CliError};
use crate::cli::{Destination, FilterArgs, SendArgs};
use crate::output::{self, paint, BAD, GOOD};
use crate::store::{Store, Stored};

/// What a send achieved.
#[derive(Debug, Default)]
struct Tally {
    delivered: u64,
    failed: u64,
    unreadable: Vec<i64>,
}

pub(super) fn run(store: &Store, args: SendArgs) -> Result<(), CliError> {
    let filter = filter(&args.filter)?;
    // GenAI metrics describe live traffic as it happens; replaying stored
    // records would count old calls again at today's time.
    let config = anosys::ConfigBuilder::from_env()?.otlp_metrics(false).build()?;
    let sink: Box<dyn Sink> = match args.to {
        Destination::Anosys => {
            if config.api_key().is_none() && config.api_url().is_none() {
                return Err(CliError::new("sending to AnoSys needs an API key")
                    .hint("set ANOSYS_API_KEY to your AnoSys key (or ANOSYS_API_URL to an ingestion URL) and run again"));
            }
            // No fallback: what cannot be delivered stays in the store and is
            // reported, never written back to it.
            Box::new(AnosysSink::new(&config).map_err(|e| CliError::caused_by("cannot send to AnoSys", &e))?)
        }
        Destination::Otlp => {
            if config.otlp_endpoint().is_none() && config.otlp_traces_endpoint().is_none() {
                return Err(CliError::new("sending to an OTLP backend needs its address").hint(
                    "set OTEL_EXPORTER_OTLP_ENDPOINT (for example http://localhost:4318; add OTEL_EXPORTER_OTLP_PROTOCOL=grpc for port 4317)",
                ));
            }
            Box::new(OtlpSink::new(&config))
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?;
    if args.outbox {
        if args.filter != FilterArgs::default() {
            return Err(CliError::new("--outbox sends everything waiting in the outbox; it takes no filter")
                .hint("drop --since/--model/--status/... or drop --outbox to send stored records"));
        }
        return send_outbox(store, &*sink, &config, &runtime);
    }
    let total = store.count(&filter)?;
    let bar = progress(total, "sending");
    let cx = ExportContext::new();
    let mut tally = Tally::default();
    let mut batch: Vec<Record> = Vec::with_capacity(config.batch_size());
    let export = |batch: &mut Vec<Record>, tally: &mut Tally| {
        if batch.is_empty() {
            return;
        }
        let report = runtime.block_on(sink.export(batch, cx.clone()));
        // One attempt: what is worth another try is not delivered either
        // (it stays in the store; run again later).
        let failed = (report.failed + report.retry.len()).min(batch.len()) as u64;
        tally.failed += failed;
        tally.delivered += batch.len() as u64 - failed;
        bar.inc(batch.len() as u64);
        batch.clear();
    };
    store.for_each(&filter, |s: Stored| -> Result<(), CliError> {
        match s.record() {
            Ok(r) => batch.push(r),
            Err(_) => {
                tally.unreadable.push(s.id);
                bar.inc(1);
            }
        }
        if batch.len() >= config.batch_size() {
            export(&mut batch, &mut tally);
        }
        Ok(())
    })?;
    export(&mut batch, &mut tally);
    runtime.block_on(sink.shutdown());
    bar.finish_and_clear();

    let line = format!(
        "sent {} of {} records: {} delivered, {} failed",
        output::count(tally.delivered + tally.failed),
        output::count(total),
        paint(GOOD, output::count(tally.delivered)),
        paint(if tally.failed > 0 { BAD } else { GOOD }, output::count(tally.failed)),
    );
    output::emit(&format!("{line}\n  {}\n", sink.describe()))?;
    if !tally.unreadable.is_empty() {
        let ids: Vec<String> = tally.unreadable.iter().take(10).map(i64::to_string).collect();
        output::emit(&format!(
            "  {} records could not be read and were skipped (ids {}{})\n",
            tally.unreadable.len(),
            ids.join(", "),
            if tally.unreadable.len() > 10 { ", …" } else { "" }
        ))?;
    }
    if tally.failed > 0 {
        return Err(CliError::new(format!("{} records were not delivered", output::count(tally.failed)))
            .hint("they are still in the store: run the same command again to retry; ANOSYS_LOG_LEVEL=debug says why"));
    }
    Ok(())
}

/// `--outbox`: what waits in the outbox for `sink`'s destination, sent
/// oldest first until it is empty or the destination stops taking it.
fn send_outbox(
    store: &Store,
    sink: &dyn Sink,
    config: &anosys::Config,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), CliError> {
    use anosys::sinks::outbox::{Outbox, Sending, Settle};

    let Some(destination) = sink.destination() else {
        return Err(CliError::new("this destination has no outbox"));
    };
    // Only an outbox that exists: a send never creates one.
    let waiting = store.outboxes()?.into_iter().find(|o| o.key == destination.key()).map_or(0, |o| o.records);
    if waiting == 0 {
        output::emit(&format!("nothing waits in the outbox: {}\n", sink.describe()))?;
        return Ok(());
    }
    let mut outbox = Outbox::open(store.path(), &destination, config.outbox_max_bytes() as u64)
        .map_err(|e| CliError::caused_by("cannot open the outbox", &e))?;
    let bar = progress(waiting, "sending");
    let lease = std::time::Duration::from_secs(30) + config.request_timeout() * 2;
    let (mut delivered, mut failed, mut duplicates, mut unreadable) = (0u64, 0u64, 0u64, 0u64);
    let mut stopped = None;
    loop {
        let rows = outbox.claim_now(config.batch_size(), lease).map_err(|e| CliError::caused_by("cannot read the outbox", &e))?;
        if rows.is_empty() {
            break;
        }
        // Rows of records and rows kept as request bodies alike.
        let rows = Sending::new(rows);
        let report = runtime.block_on(rows.export(sink, ExportContext::new()));
        let (ids, uncertain) = (&rows.ids, &rows.uncertain);
        let bad: Vec<i64> = rows.unreadable.iter().map(|(id, _)| *id).collect();
        let (mut settle, done) = Settle::after(ids, uncertain, &report);
        unreadable += bad.len() as u64;
        settle.failed.extend(bad);
        if done.retry > 0 {
            // Back in the outbox for the apps' next try, in a second.
            settle.next_try = std::time::Duration::from_secs(1);
            settle.error = Some(format!("{} of {} records not delivered (anosys send)", done.retry, ids.len()));
            stopped = Some(done.retry);
        }
        outbox.settle(&settle).map_err(|e| CliError::caused_by("cannot update the outbox", &e))?;
        (delivered, failed, duplicates) =
            (delivered + done.delivered as u64, failed + done.failed as u64, duplicates + done.duplicates as u64);
        bar.inc((settle.delivered.len() + settle.failed.len() + settle.retry.len()) as u64);
        if stopped.is_some() {
            break;
        }
    }
    runtime.block_on(sink.shutdown());
    bar.finish_and_clear();
    let left = outbox.records().map_err(|e| CliError::caused_by("cannot read the outbox", &e))?;
    let mut text = format!(
        "outbox: {} delivered, {} refused, {} left\n  {}\n",
        paint(GOOD, output::count(delivered)),
        paint(if failed > 0 { BAD } else { GOOD }, output::count(failed)),
        paint(if left > 0 { BAD } else { GOOD }, output::count(left)),
        sink.describe()
    );
    if duplicates > 0 {
        text.push_str(&format!(
            "  {} of them may have been delivered before (an earlier attempt got no answer): the backend can drop them by anosys_record_id\n",
            output::count(duplicates)
        ));
    }
    if unreadable > 0 {
        text.push_str(&format!("  {} rows could not be read back and were removed\n", output::count(unreadable)));
    }
    output::emit(&text)?;
    if stopped.is_some() {
        return Err(CliError::new(format!("the destination did not take everything: {} records wait in the outbox", output::count(left)))
            .hint("they stay there: apps using this store send them when it answers, or run the same command again; ANOSYS_LOG_LEVEL=debug says why"));
    }
    Ok(())
}

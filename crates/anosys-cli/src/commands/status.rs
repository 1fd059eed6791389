//! `anosys status`: what the local store holds and what waits in its
//! outbox for each remote destination.

use std::time::SystemTime;

use super::CliError;
use crate::cli::StatusArgs;
use crate::output::{self, paint, Align, Table, BAD, DIM, GOOD, HEADING};
use crate::store::{Filter, Store, StoreError};

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn age(ms: u64, now: u64) -> String {
    let secs = now.saturating_sub(ms) / 1000;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string() + " ago"
}

pub(super) fn run(path: &std::path::Path, args: StatusArgs) -> Result<(), CliError> {
    let store = match Store::open(path) {
        Ok(store) => store,
        Err(StoreError::Missing(_)) => {
            if args.json {
                output::emit(&format!("{}\n", serde_json::json!({"store": path, "records": 0, "outbox": []})))?;
            } else {
                output::emit(&format!("no local store at {}: nothing is waiting for delivery\n", path.display()))?;
            }
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let records = store.count(&Filter::default())?;
    let outboxes = store.outboxes()?;
    if args.json {
        let value = serde_json::json!({"store": path, "records": records, "outbox": outboxes});
        output::emit(&format!("{value}\n"))?;
        return Ok(());
    }
    let now = anosys::record::time::epoch_millis(SystemTime::now());
    let mut text = format!(
        "{} {} ({} records)\n\n",
        paint(HEADING, "Store"),
        path.display(),
        output::count(records)
    );
    let waiting: u64 = outboxes.iter().map(|o| o.records).sum();
    if waiting == 0 {
        text += &format!("{} {}\n", paint(HEADING, "Outbox"), paint(GOOD, "empty: nothing is waiting for delivery"));
    } else {
        text += &format!("{} records waiting for delivery\n", paint(HEADING, "Outbox"));
        let mut table = Table::new(&[
            ("destination", Align::Left),
            ("records", Align::Right),
            ("bytes", Align::Right),
            ("oldest", Align::Right),
            ("last error", Align::Left),
        ]);
        for o in &outboxes {
            let error = match &o.last_error {
                Some((message, at)) => (format!("{message} ({})", age(*at, now)), BAD),
                None => ("-".into(), DIM),
            };
            table.row(vec![
                (o.label.clone(), HEADING),
                (output::count(o.records), Default::default()),
                (bytes(o.bytes), Default::default()),
                (o.oldest_ms.map(|ms| age(ms, now)).unwrap_or_else(|| "-".into()), Default::default()),
                error,
            ]);
        }
        text += &table.render();
        text += &format!(
            "\n{}\n",
            paint(DIM, "They are sent as soon as a process with a sink for that destination runs (an app, or `anosys proxy`) and the destination answers.")
        );
    }
    output::emit(&text)?;
    Ok(())
}

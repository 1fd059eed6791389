//! `anosys`: the command-line tool.
//!
//! - `anosys demo`: captures a few records through the engine to the
//!   configured sink (the embedded one with no account) and says where they
//!   went.

use std::process::ExitCode;
use std::time::Duration;

use anosys::{Caller, Config, ErrorInfo, Record, RecordKind, Status};
use clap::{Parser, Subcommand};
use serde_json::json;

#[derive(Parser)]
#[command(name = "anosys", version, about = "LLM observability for OpenAI-style APIs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Capture a few example records and say where they went.
    ///
    /// With no ANOSYS_API_KEY or ANOSYS_API_URL set, records go to the
    /// embedded sink (.anosys/records.jsonl in the working directory).
    ///
    /// Example: anosys demo
    Demo,
}

fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    let guard = anosys::init_with(config)?;

    anosys::log_raw(json!({"event": "demo.started", "user_id": "u-123", "plan": "pro", "seats": 3}));

    let mut ok = Record::new(RecordKind::FunctionCall, "demo::add");
    ok.source = Some("demo".into());
    ok.input = Some(json!([2, 3]));
    ok.output = Some(json!(5));
    ok.caller = Some(Caller { function: Some("demo".into()), file: file!().into(), line: line!() });
    ok.finish(Status::ok());
    anosys::capture(ok);

    let mut failed = Record::new(RecordKind::FunctionCall, "demo::charge_card");
    failed.source = Some("demo".into());
    failed.input = Some(json!([{"amount_cents": 1999}]));
    std::thread::sleep(Duration::from_millis(3));
    failed.finish(Status::default());
    failed.fail(ErrorInfo {
        error_type: "CardDeclined".into(),
        message: "the card was declined".into(),
        stack: Some("caused by: issuer answered 05 (do not honour)".into()),
    });
    anosys::capture(failed);

    let destinations: Vec<String> = guard.pipeline().map(|p| p.destinations().to_vec()).unwrap_or_default();
    let report = guard.shutdown();
    let c = report.counters;
    println!(
        "anosys demo: captured {} records: {} delivered, {} kept locally, {} failed, {} dropped, {} pending",
        c.captured, c.delivered, c.kept_in_fallback, c.failed, c.dropped, report.pending
    );
    for d in destinations {
        println!("  {d}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo => demo(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("anosys: {e}");
            ExitCode::FAILURE
        }
    }
}

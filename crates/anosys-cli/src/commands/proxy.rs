//! `anosys proxy`: the logging proxy, until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use anstream::eprintln;

use super::CliError;
use crate::cli::{DemoServerArgs, ProxyArgs};
use crate::output::{paint, ACCENT, HEADING};
use crate::proxy::{AccessLogFormat, Proxy, ProxyConfig, Route};

/// A multi-threaded runtime, and a listener on `addr` in it.
pub(super) fn runtime_and_listener(addr: std::net::SocketAddr) -> Result<(tokio::runtime::Runtime, tokio::net::TcpListener), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // Named apart from the pipeline's threads (its blocking pool is
        // `tokio-rt-worker`), for `top -H` and profiles.
        .thread_name("anosys-serve")
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(addr)).map_err(|e| {
        CliError::new(format!("cannot listen on {addr}: {e}"))
            .hint("another process may use that port: pick another with --listen 127.0.0.1:PORT")
    })?;
    Ok((runtime, listener))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub(super) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

pub(super) fn run(db: Option<PathBuf>, args: ProxyArgs) -> Result<(), CliError> {
    let mut routes = Vec::new();
    for spec in &args.routes {
        routes.push(Route::parse(spec).map_err(|e| CliError::new(format!("--route {e}")).hint("write --route /ollama/v1=http://127.0.0.1:11434/v1"))?);
    }
    let upstream = match (&args.upstream, routes.is_empty()) {
        (Some(u), _) => Some(u.clone()),
        (None, true) => Some("https://api.openai.com".to_owned()),
        (None, false) => None,
    };
    if let Some(u) = upstream {
        routes.push(Route::new("/", &u).map_err(|e| CliError::new(format!("--upstream {e}")).hint("write --upstream https://api.openai.com"))?);
    }
    let mut builder = anosys::ConfigBuilder::from_env()?;
    // A server restarted by a supervisor (or killed by one): every batch
    // for a remote sink is on disk before it is sent, unless told otherwise.
    if std::env::var_os("ANOSYS_OUTBOX_WRITE_AHEAD").is_none() {
        builder = builder.outbox_write_ahead(true);
    }
    if let Some(db) = db {
        builder = builder.db_path(db);
    }
    let config = builder.build()?;
    let store = config.db_path().to_path_buf();
    let pipeline = anosys::Pipeline::new(config)?;
    let destinations = pipeline.destinations().to_vec();
    let proxy_config = ProxyConfig {
        routes: routes.clone(),
        max_body_bytes: args.max_body_mb.saturating_mul(1 << 20),
        upstream_timeout: Duration::from_secs(args.upstream_timeout.max(1)),
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        access_log: if args.quiet { AccessLogFormat::Off } else { args.access_log },
        header_timeout: (args.header_timeout > 0).then(|| Duration::from_secs(args.header_timeout)),
        idle_timeout: (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout)),
        max_connections: (args.max_connections > 0).then_some(args.max_connections),
    };
    let proxy = Proxy::new(proxy_config, pipeline.clone()).map_err(|e| CliError::caused_by("cannot start the proxy", &e))?;
    let drain = proxy.drain_handle();
    let (runtime, listener) = runtime_and_listener(args.listen)?;
    let served = runtime.block_on(async {
        let addr = listener.local_addr().map_err(CliError::from)?;
        eprintln!("{} listening on {}", paint(HEADING, "anosys proxy"), paint(ACCENT, Proxy::base_url(addr)));
        for r in &routes {
            eprintln!("  {} -> {}", r.prefix, r.upstream);
        }
        for d in &destinations {
            eprintln!("  {d}");
        }
        eprintln!(
            "  point clients at it: OPENAI_BASE_URL={}/v1 (GET /healthz, GET /metrics); Ctrl-C stops",
            Proxy::base_url(addr)
        );
        if args.ui {
            let access = super::ui::access(None);
            let viewer = super::ui::listen(args.ui_listen, &access, &store).await?;
            // Stops with the runtime, after the proxy.
            tokio::spawn(crate::ui::serve(viewer, crate::ui::Viewer::new(store, access), std::future::pending()));
        }
        proxy.serve(listener, shutdown_signal()).await.map_err(CliError::from)
    });
    drop(runtime);
    // Requests cut off as the runtime stopped: their records, their lines.
    drain.drain();
    let report = pipeline.shutdown(None);
    let c = report.counters;
    eprintln!(
        "anosys proxy stopped: {} records captured, {} delivered, {} kept in the outbox, {} failed, {} dropped, {} pending",
        c.captured, c.delivered, c.kept_in_outbox, c.failed, c.dropped, report.pending
    );
    served
}

/// `anosys demo-server`: the replay server until SIGINT or SIGTERM.
pub(super) fn demo_server(args: DemoServerArgs) -> Result<(), CliError> {
    let pacing = crate::replay::Pacing {
        first_byte: Duration::from_millis(args.first_byte_ms),
        between_events: Duration::from_millis(args.event_ms),
    };
    let (runtime, listener) = runtime_and_listener(args.listen)?;
    runtime.block_on(async {
        let addr = listener.local_addr().map_err(CliError::from)?;
        eprintln!("{} answering on {}/v1 (recorded OpenAI replies); Ctrl-C stops", paint(HEADING, "anosys demo-server"), paint(ACCENT, Proxy::base_url(addr)));
        axum::serve(listener, crate::replay::router(pacing))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(CliError::from)
    })
}

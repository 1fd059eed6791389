//! `anosys ui`: the web viewer, until SIGINT or SIGTERM.

use std::path::PathBuf;

use anstream::eprintln;

use super::proxy::shutdown_signal;
use super::{store_path, CliError};
use crate::cli::UiArgs;
use crate::output::{paint, ACCENT, HEADING};
use crate::ui::{self, Access, Viewer};

/// The token: `--token`, else `ANOSYS_UI_TOKEN`.
pub(super) fn access(token: Option<String>) -> Access {
    let token = token.or_else(|| std::env::var("ANOSYS_UI_TOKEN").ok()).filter(|t| !t.is_empty());
    Access { token }
}

/// Binds the viewer's listener (in the current runtime) and says where it is.
pub(super) async fn listen(
    listen: Option<std::net::SocketAddr>,
    access: &Access,
    db: &std::path::Path,
) -> Result<tokio::net::TcpListener, CliError> {
    if let Some(addr) = listen {
        access.check_listen(addr).map_err(|e| CliError::new(e).hint("listen on 127.0.0.1, or set ANOSYS_UI_TOKEN"))?;
    }
    let listener = ui::bind(listen).await.map_err(|e| {
        CliError::new(format!("cannot listen for the viewer: {e}"))
            .hint("pick another address with --listen 127.0.0.1:PORT")
    })?;
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() { "127.0.0.1".to_owned() } else { addr.ip().to_string() };
    let host = if addr.is_ipv6() && !host.starts_with('[') { format!("[{host}]") } else { host };
    let url = format!("http://{host}:{}/", addr.port());
    eprintln!("{} {} (store {})", paint(HEADING, "anosys ui"), paint(ACCENT, &url), db.display());
    if access.token.is_some() {
        eprintln!("  every request needs the token: open {url}?token=<your token>");
    }
    Ok(listener)
}

pub(super) fn run(db: Option<PathBuf>, args: UiArgs) -> Result<(), CliError> {
    let db = store_path(db)?;
    let access = access(args.token);
    // Small: two workers, and at most four store queries at once.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let listener = listen(args.listen, &access, &db).await?;
        if !db.exists() {
            eprintln!("  no store at {} yet: records appear as applications write them", db.display());
        }
        eprintln!("  Ctrl-C stops");
        ui::serve(listener, Viewer::new(db, access), shutdown_signal()).await.map_err(CliError::from)
    })
}

//! What the local sinks (SQLite store, JSON-lines file) share: a handle
//! opened on first use, dropped after an error so the next batch reopens
//! it, and writes run on the blocking pool, never on the worker's runtime
//! thread.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::diag::{self, LogLevel};

/// A local file and its lazily opened handle.
#[derive(Debug)]
pub(crate) struct LocalFile<H> {
    path: PathBuf,
    handle: Arc<Mutex<Option<H>>>,
}

impl<H> Clone for LocalFile<H> {
    fn clone(&self) -> Self {
        LocalFile { path: self.path.clone(), handle: self.handle.clone() }
    }
}

impl<H: Send + 'static> LocalFile<H> {
    /// `path`, made absolute.
    pub(crate) fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let path = std::path::absolute(&path).unwrap_or(path);
        LocalFile { path, handle: Arc::new(Mutex::new(None)) }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the handle if needed and runs `write` with it on the blocking
    /// pool, giving back what it gave. On failure the handle is dropped
    /// (reopened next time), the error is logged once per file, and `None`
    /// is returned.
    pub(crate) async fn write<T: Send + 'static, E: Display + Send + 'static>(
        &self,
        open: fn(&Path) -> Result<H, E>,
        write: impl FnOnce(&mut H) -> Result<T, E> + Send + 'static,
    ) -> Option<T> {
        let (path, handle) = (self.path.clone(), self.handle.clone());
        let done = tokio::task::spawn_blocking(move || {
            let mut guard = handle.lock().unwrap_or_else(|p| p.into_inner());
            let result = match guard.as_mut() {
                Some(h) => write(h),
                None => open(&path).and_then(|mut h| {
                    let r = write(&mut h);
                    *guard = Some(h);
                    r
                }),
            };
            if result.is_err() {
                *guard = None;
            }
            result
        })
        .await;
        match done {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                diag::once(&format!("local-{}", self.path.display()), LogLevel::Error, || {
                    let message = e.to_string();
                    let path = self.path.display().to_string();
                    // Errors that name the file already are clear enough alone.
                    if message.contains(&path) { message } else { format!("cannot write {path}: {message}") }
                });
                None
            }
            Err(_) => None,
        }
    }
}

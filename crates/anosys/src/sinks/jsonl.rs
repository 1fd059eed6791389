//! JSON lines: one record per line, appended to a file. The embedded
//! default sink when no AnoSys key or URL is set.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{BoxFuture, ExportContext, ExportReport, Sink};
use crate::diag::{self, LogLevel};
use crate::record::Record;

/// Appends records as JSON lines (the [`Record`] serde form) to a file,
/// creating it and its folder on first use.
///
/// ```
/// use anosys::sinks::JsonlSink;
/// let sink = JsonlSink::new(std::env::temp_dir().join("anosys-doc.jsonl"));
/// assert!(sink.path().ends_with("anosys-doc.jsonl"));
/// ```
#[derive(Debug, Clone)]
pub struct JsonlSink {
    path: PathBuf,
    file: Arc<Mutex<Option<File>>>,
}

impl JsonlSink {
    /// A sink writing to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let path = std::path::absolute(&path).unwrap_or(path);
        JsonlSink { path, file: Arc::new(Mutex::new(None)) }
    }

    /// The file written to (absolute).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(path: &Path, file: &Mutex<Option<File>>, bytes: &[u8]) -> std::io::Result<()> {
        let mut guard = file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            *guard = Some(OpenOptions::new().create(true).append(true).open(path)?);
        }
        let f = guard.as_mut().expect("opened above");
        f.write_all(bytes)?;
        f.flush()
    }
}

impl Sink for JsonlSink {
    fn name(&self) -> &str {
        "jsonl"
    }

    fn describe(&self) -> String {
        format!("records are written to {}", self.path.display())
    }

    fn export<'a>(&'a self, batch: &'a [Record], _cx: ExportContext) -> BoxFuture<'a, ExportReport> {
        Box::pin(async move {
            let mut bytes = Vec::with_capacity(batch.len() * 512);
            let mut failed = 0;
            for record in batch {
                match serde_json::to_writer(&mut bytes, record) {
                    Ok(()) => bytes.push(b'\n'),
                    Err(_) => failed += 1,
                }
            }
            let (path, file) = (self.path.clone(), self.file.clone());
            let written = tokio::task::spawn_blocking(move || Self::write(&path, &file, &bytes)).await;
            match written {
                Ok(Ok(())) => ExportReport { failed, ..Default::default() },
                Ok(Err(e)) => {
                    diag::once(&format!("jsonl-{}", self.path.display()), LogLevel::Error, || {
                        format!("cannot write {}: {e}", self.path.display())
                    });
                    // The file may have been reopened; try again next batch.
                    *self.file.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    ExportReport { failed: batch.len(), ..Default::default() }
                }
                Err(_) => ExportReport { failed: batch.len(), ..Default::default() },
            }
        })
    }
}

//! JSON lines: one record per line, appended to a file. The embedded
//! default sink when no AnoSys key or URL is set.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::local::LocalFile;
use super::{BoxFuture, ExportContext, ExportReport, Sink};
use crate::record::Record;

/// Appends records as JSON lines (the [`Record`] serde form, its content
/// written out: [`Record::write_json_expanded`]) to a file,
/// creating it and its folder on first use.
///
/// ```
/// use anosys::sinks::JsonlSink;
/// let sink = JsonlSink::new(std::env::temp_dir().join("anosys-doc.jsonl"));
/// assert!(sink.path().ends_with("anosys-doc.jsonl"));
/// ```
#[derive(Debug, Clone)]
pub struct JsonlSink {
    file: LocalFile<File>,
}

fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

impl JsonlSink {
    /// A sink writing to `path`.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        JsonlSink { file: LocalFile::new(path) }
    }

    /// The file written to (absolute).
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

impl Sink for JsonlSink {
    fn name(&self) -> &str {
        "jsonl"
    }

    fn describe(&self) -> String {
        format!("records are written to {}", self.path().display())
    }

    fn export<'a>(&'a self, batch: &'a [Record], cx: ExportContext) -> BoxFuture<'a, ExportReport> {
        Box::pin(async move {
            let mut bytes = Vec::with_capacity(batch.len() * 512);
            let mut failed = 0;
            let mut pace = cx.pace();
            for record in batch {
                pace.between();
                // A line says everything on its own: content kept once in
                // `raw` is written out (see `Record::write_json_expanded`).
                let line_start = bytes.len();
                match record.write_json_expanded(&mut bytes) {
                    Ok(()) => bytes.push(b'\n'),
                    Err(_) => {
                        // No half line.
                        bytes.truncate(line_start);
                        failed += 1;
                    }
                }
            }
            let written = self.file.write(open, move |f| f.write_all(&bytes).and_then(|_| f.flush())).await;
            ExportReport { failed: if written { failed } else { batch.len() }, ..Default::default() }
        })
    }
}

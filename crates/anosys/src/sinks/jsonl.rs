//! JSON lines: one record per line, appended to a file. The embedded
//! default sink when no AnoSys key or URL is set.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

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

/// The bytes of lines the JSON-lines sink gathers before writing them.
const WRITE_BUFFER: usize = 256 * 1024;

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
        self.export_shared(batch.into(), cx)
    }

    /// The pipeline's batch is written from where it is, not copied, on the
    /// blocking pool: each record made into its line and the lines written
    /// through a buffer of 256 KiB (a batch of long chats
    /// is tens of MB of lines, which one buffer for the whole batch made the
    /// process take and give back every time).
    fn export_shared(&self, batch: Arc<[Record]>, cx: ExportContext) -> BoxFuture<'_, ExportReport> {
        Box::pin(async move {
            let n = batch.len();
            let mut pace = cx.pace();
            // The records that could not be made into lines, or `None`
            // when the file could not be written (the whole batch failed).
            let written = self
                .file
                .write(open, move |file| {
                    let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
                    let mut line = Vec::with_capacity(4096);
                    let mut unwritable = 0;
                    for record in batch.iter() {
                        pace.between();
                        // A line says everything on its own: content kept
                        // once in `raw` is written out.
                        line.clear();
                        match record.write_json_expanded(&mut line) {
                            Ok(()) => {
                                line.push(b'\n');
                                out.write_all(&line)?;
                            }
                            Err(_) => unwritable += 1,
                        }
                    }
                    out.flush().map(|()| unwritable)
                })
                .await;
            ExportReport { failed: written.unwrap_or(n), ..Default::default() }
        })
    }
}

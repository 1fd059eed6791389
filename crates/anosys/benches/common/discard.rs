/// Accepts and forgets every batch: the whole pipeline runs, nothing piles up.
struct Discard;

impl anosys::sinks::Sink for Discard {
    fn name(&self) -> &str {
        "discard"
    }
    fn export<'a>(
        &'a self,
        _: &'a [anosys::Record],
        _: anosys::sinks::ExportContext,
    ) -> anosys::sinks::BoxFuture<'a, anosys::sinks::ExportReport> {
        Box::pin(async { anosys::sinks::ExportReport::default() })
    }
}

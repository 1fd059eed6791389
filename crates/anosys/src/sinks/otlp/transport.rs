//! What the span and the metric exporters share: where and how they
//! connect ([`Transport`], the one place an `opentelemetry-otlp` builder is
//! configured), the lazily built exporter ([`LazyExporter`]) and the
//! typed errors ([`OtlpError`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_otlp::{ExporterBuildError, Protocol, RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkError;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use crate::config::{Config, OtlpProtocol};

/// Why an OTLP export did not happen.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OtlpError {
    /// The exporter could not be built (a bad endpoint or header, TLS).
    #[error("cannot set up the OTLP exporter")]
    Build(#[source] Arc<ExporterBuildError>),
    /// The metrics could not be collected from their reader.
    #[error("cannot collect the GenAI metrics")]
    Collect(#[source] Arc<OTelSdkError>),
    /// The backend did not take the export (unreachable, refused, timed
    /// out).
    #[error("the OTLP export failed")]
    Export(#[source] Arc<OTelSdkError>),
}

/// Where and how one signal's exporter connects.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    pub protocol: OtlpProtocol,
    pub endpoint: String,
    timeout: Duration,
    pub(super) headers: Vec<(String, String)>,
}

impl Transport {
    /// The transport of `signal` (`traces`, `metrics`): its own endpoint
    /// as is when set (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, …), else the
    /// base endpoint (or the protocol's default), plus `/v1/{signal}` for
    /// HTTP.
    pub fn new(config: &Config, own_endpoint: Option<&str>, signal: &str) -> Transport {
        let endpoint = match own_endpoint {
            Some(full) => full.to_owned(),
            None => {
                let default_base = match config.otlp_protocol {
                    OtlpProtocol::HttpProtobuf => "http://localhost:4318",
                    OtlpProtocol::Grpc => "http://localhost:4317",
                };
                let base = config.otlp_endpoint.as_deref().unwrap_or(default_base).trim_end_matches('/');
                match config.otlp_protocol {
                    OtlpProtocol::HttpProtobuf => format!("{base}/v1/{signal}"),
                    OtlpProtocol::Grpc => base.to_owned(),
                }
            }
        };
        Transport {
            protocol: config.otlp_protocol,
            endpoint,
            timeout: config.request_timeout,
            headers: config.otlp_headers.clone(),
        }
    }

    /// One attempt per export, no retries of the exporter's own: the
    /// sinks have one retry policy, which knows the budget, the shutdown
    /// deadline and the fallback.
    fn common<B: WithExportConfig>(&self, builder: B, protocol: Protocol) -> B {
        builder.with_protocol(protocol).with_endpoint(&self.endpoint).with_timeout(self.timeout)
    }

    fn http<B: WithExportConfig + WithHttpConfig>(&self, builder: B) -> B {
        let headers: HashMap<String, String> = self.headers.iter().cloned().collect();
        self.common(builder, Protocol::HttpBinary).with_retry_policy(RetryPolicy::disabled()).with_headers(headers)
    }

    fn grpc<B: WithExportConfig + WithTonicConfig>(&self, builder: B) -> Result<B, ExporterBuildError> {
        let mut metadata = http::HeaderMap::new();
        for (k, v) in &self.headers {
            let name = http::HeaderName::from_bytes(k.trim().to_ascii_lowercase().as_bytes())
                .map_err(|_| ExporterBuildError::InternalFailure(format!("invalid OTLP header name {k:?}")))?;
            let value = http::HeaderValue::from_str(v)
                .map_err(|_| ExporterBuildError::InternalFailure(format!("invalid value of OTLP header {k:?}")))?;
            metadata.insert(name, value);
        }
        let metadata = opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(metadata);
        Ok(self.common(builder, Protocol::Grpc).with_retry_policy(RetryPolicy::disabled()).with_metadata(metadata))
    }

    /// A span exporter over this transport.
    pub fn span_exporter(&self) -> Result<opentelemetry_otlp::SpanExporter, ExporterBuildError> {
        let builder = opentelemetry_otlp::SpanExporter::builder();
        match self.protocol {
            OtlpProtocol::HttpProtobuf => self.http(builder.with_http()).build(),
            OtlpProtocol::Grpc => self.grpc(builder.with_tonic())?.build(),
        }
    }

    /// A metric exporter over this transport, cumulative (a failed export
    /// is made up for by the next, which carries the same totals).
    pub fn metric_exporter(&self) -> Result<opentelemetry_otlp::MetricExporter, ExporterBuildError> {
        let builder = opentelemetry_otlp::MetricExporter::builder()
            .with_temporality(opentelemetry_sdk::metrics::Temporality::Cumulative);
        match self.protocol {
            OtlpProtocol::HttpProtobuf => self.http(builder.with_http()).build(),
            OtlpProtocol::Grpc => self.grpc(builder.with_tonic())?.build(),
        }
    }
}

/// An exporter built on first use, inside the pipeline's runtime (gRPC
/// channels need one), and held under a lock while used, so exports never
/// overlap (as the exporters require) and arrive in order. A failed build
/// is kept: it is not retried per batch.
pub(crate) struct LazyExporter<E> {
    slot: Mutex<Option<Result<E, Arc<ExporterBuildError>>>>,
}

impl<E> LazyExporter<E> {
    pub fn new() -> Self {
        LazyExporter { slot: Mutex::new(None) }
    }

    /// The exporter, built with `build` on first use.
    pub async fn lock(
        &self,
        build: impl FnOnce() -> Result<E, ExporterBuildError>,
    ) -> Result<MappedMutexGuard<'_, E>, OtlpError> {
        let mut guard = self.slot.lock().await;
        guard.get_or_insert_with(|| build().map_err(Arc::new));
        MutexGuard::try_map(guard, |slot| slot.as_mut().and_then(|r| r.as_mut().ok())).map_err(|slot| {
            let error = slot.as_ref().and_then(|r| r.as_ref().err()).cloned();
            OtlpError::Build(error.unwrap_or_else(|| Arc::new(ExporterBuildError::InternalFailure("not built".into()))))
        })
    }

    /// The exporter if it was ever built (for shutdown).
    pub async fn built(&self) -> Option<MappedMutexGuard<'_, E>> {
        MutexGuard::try_map(self.slot.lock().await, |slot| slot.as_mut().and_then(|r| r.as_mut().ok())).ok()
    }
}

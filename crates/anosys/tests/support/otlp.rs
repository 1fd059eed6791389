//! A real OTLP receiver on 127.0.0.1, built from opentelemetry-proto:
//! HTTP/protobuf (`POST /v1/traces`, `POST /v1/metrics`) and gRPC
//! (`TraceService/Export`, `MetricsService/Export`). It keeps every export
//! request and answers span exports with a planned status.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{json, Value};

use super::LocalServer;

#[derive(Default)]
pub struct Shared {
    pub requests: Mutex<Vec<ExportTraceServiceRequest>>,
    /// Headers of every request.
    pub headers: Mutex<Vec<HeaderMap>>,
    /// HTTP statuses to answer span exports with, in order; then 200.
    pub plan: Mutex<VecDeque<u16>>,
    /// Metrics export requests.
    pub metrics: Mutex<Vec<ExportMetricsServiceRequest>>,
    /// Headers of every metrics request.
    pub metrics_headers: Mutex<Vec<HeaderMap>>,
}

pub struct OtlpReceiver {
    pub shared: Arc<Shared>,
    server: LocalServer,
}

async fn http_traces(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    s.headers.lock().unwrap().push(headers);
    if let Some(status) = s.plan.lock().unwrap().pop_front() {
        return StatusCode::from_u16(status).unwrap().into_response();
    }
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            s.requests.lock().unwrap().push(request);
            let body = ExportTraceServiceResponse::default().encode_to_vec();
            ([(axum::http::header::CONTENT_TYPE, "application/x-protobuf")], body).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn http_metrics(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    s.metrics_headers.lock().unwrap().push(headers);
    match ExportMetricsServiceRequest::decode(body) {
        Ok(request) => {
            s.metrics.lock().unwrap().push(request);
            let body = ExportMetricsServiceResponse::default().encode_to_vec();
            ([(axum::http::header::CONTENT_TYPE, "application/x-protobuf")], body).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

struct Grpc(Arc<Shared>);

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.metrics_headers.lock().unwrap().push(request.metadata().clone().into_headers());
        self.0.metrics.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.headers.lock().unwrap().push(request.metadata().clone().into_headers());
        if let Some(status) = self.0.plan.lock().unwrap().pop_front() {
            return Err(tonic::Status::unavailable(format!("planned failure {status}")));
        }
        self.0.requests.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl OtlpReceiver {
    /// OTLP over HTTP/protobuf.
    pub fn http() -> OtlpReceiver {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/v1/traces", post(http_traces))
            .route("/v1/metrics", post(http_metrics))
            .with_state(shared.clone());
        OtlpReceiver { shared, server: LocalServer::start(0, app) }
    }

    /// OTLP over gRPC (HTTP/2 without TLS).
    pub fn grpc() -> OtlpReceiver {
        let shared = Arc::new(Shared::default());
        let routes = tonic::service::Routes::new(TraceServiceServer::new(Grpc(shared.clone())))
            .add_service(MetricsServiceServer::new(Grpc(shared.clone())));
        OtlpReceiver { shared, server: LocalServer::start(0, routes.into_axum_router()) }
    }

    /// The base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    pub fn fail_next(&self, statuses: &[u16]) {
        self.shared.plan.lock().unwrap().extend(statuses);
    }

    /// Every span received, with its resource's attributes.
    pub fn spans(&self) -> Vec<(Value, Span)> {
        let mut out = Vec::new();
        for request in self.shared.requests.lock().unwrap().iter() {
            for rs in &request.resource_spans {
                let resource = rs.resource.as_ref().map(|r| attributes(&r.attributes)).unwrap_or(Value::Null);
                for ss in &rs.scope_spans {
                    for span in &ss.spans {
                        out.push((resource.clone(), span.clone()));
                    }
                }
            }
        }
        out
    }
}

/// OTLP attributes as a JSON object (arrays as JSON arrays).
pub fn attributes(kvs: &[KeyValue]) -> Value {
    let mut map = serde_json::Map::new();
    for kv in kvs {
        map.insert(kv.key.clone(), kv.value.as_ref().and_then(|v| v.value.as_ref()).map_or(Value::Null, any));
    }
    Value::Object(map)
}

fn any(v: &AnyValue) -> Value {
    match v {
        AnyValue::StringValue(s) => json!(s),
        AnyValue::BoolValue(b) => json!(b),
        AnyValue::IntValue(i) => json!(i),
        AnyValue::DoubleValue(d) => json!(d),
        AnyValue::ArrayValue(a) => {
            Value::Array(a.values.iter().map(|v| v.value.as_ref().map_or(Value::Null, any)).collect())
        }
        AnyValue::KvlistValue(kv) => attributes(&kv.values),
        AnyValue::BytesValue(b) => json!(b),
        #[allow(unreachable_patterns)]
        _ => Value::Null,
    }
}

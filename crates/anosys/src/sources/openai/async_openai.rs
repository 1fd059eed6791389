//! Records every call an [async-openai](https://docs.rs/async-openai)
//! client makes, with no change to the caller's types: a tower layer on the
//! client's HTTP path (its `with_http_service` hook). Chat (plain and
//! streamed), legacy completions, embeddings, images and the Responses API
//! all go through the one extraction module; any other endpoint still gives
//! a record with its request and response.
//!
//! A plain call's record is made on the engine's extraction thread (see
//! [`DeferredCall`]): the caller's task only
//! keeps the request as sent and the response's bytes. A stream's record
//! is built as the stream is read. A call whose future is dropped before
//! its answer is recorded as cancelled.
//!
//! Enable the `async-openai` feature.
//!
//! ```no_run
//! use async_openai::types::chat::CreateChatCompletionRequestArgs;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let _guard = anosys::init()?;
//! let client = anosys::sources::openai::async_openai::client(async_openai::config::OpenAIConfig::default());
//! let request = CreateChatCompletionRequestArgs::default()
//!     .model("gpt-4o-mini")
//!     .messages([async_openai::types::chat::ChatCompletionRequestUserMessage::from("Say this is a test").into()])
//!     .build()?;
//! let response = client.chat().create(request).await?; // recorded
//! # Ok(()) }
//! ```
//!
//! With a tower stack of your own, put [`AnosysLayer`] outermost so that a
//! call retried by an inner layer is one record:
//!
//! ```no_run
//! use async_openai::middleware::{retry::OpenAIRetryLayer, ReqwestService};
//! use anosys::sources::openai::async_openai::AnosysLayer;
//!
//! let service = tower::ServiceBuilder::new()
//!     .layer(AnosysLayer::new())
//!     .layer(OpenAIRetryLayer::default())
//!     .service(ReqwestService::new(reqwest::Client::new()));
//! let client = async_openai::Client::with_config(async_openai::config::OpenAIConfig::default())
//!     .with_http_service(service);
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_openai::config::Config;
use async_openai::error::OpenAIError;
use async_openai::middleware::{retry::OpenAIRetryLayer, HttpRequestFactory, ReqwestService};
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use serde_json::Value;

use super::deferred::asks_stream;
use super::{
    prepare_request, reqwest_message, CaptureOptions, DeferredCall, OpenAiCall, RecordedBody, RequestJson, ResponseJson,
    StreamRecorder,
};
use crate::pipeline::Pipeline;
use crate::record::{ErrorInfo, Record};

/// Where records go: the global pipeline, or a given one.
#[derive(Clone, Debug, Default)]
enum Destination {
    #[default]
    Global,
    Pipeline(Pipeline),
}

impl Destination {
    fn emit(&self, record: Record) {
        match self {
            Destination::Global => {
                crate::capture(record);
            }
            Destination::Pipeline(p) => {
                p.submit(record);
            }
        }
    }
}

/// The tower layer that records calls. See the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct AnosysLayer {
    options: Option<Arc<CaptureOptions>>,
    destination: Destination,
}

impl AnosysLayer {
    /// Records to the global pipeline, capturing content as it is
    /// configured (`ANOSYS_CAPTURE_CONTENT`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Captures with these options.
    pub fn options(mut self, options: CaptureOptions) -> Self {
        self.options = Some(Arc::new(options));
        self
    }

    /// Records to `pipeline` instead of the global one.
    pub fn pipeline(mut self, pipeline: Pipeline) -> Self {
        self.destination = Destination::Pipeline(pipeline);
        self
    }
}

impl<S> tower::Layer<S> for AnosysLayer {
    type Service = AnosysService<S>;

    fn layer(&self, inner: S) -> AnosysService<S> {
        AnosysService { inner, layer: self.clone() }
    }
}

/// The service [`AnosysLayer`] makes.
#[derive(Clone, Debug)]
pub struct AnosysService<S> {
    inner: S,
    layer: AnosysLayer,
}

/// An async-openai client whose calls are recorded to the global pipeline,
/// with async-openai's own retries inside (one record per call).
pub fn client<C: Config>(config: C) -> async_openai::Client<C> {
    client_with(config, AnosysLayer::new())
}

/// [`client`] with a layer of your choosing (options, pipeline).
pub fn client_with<C: Config>(config: C, layer: AnosysLayer) -> async_openai::Client<C> {
    let service = tower::ServiceBuilder::new()
        .layer(layer)
        .layer(OpenAIRetryLayer::default())
        .service(ReqwestService::new(reqwest::Client::new()));
    async_openai::Client::with_config(config).with_http_service(service)
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The error of a request that got no response.
fn request_error(e: &OpenAIError) -> ErrorInfo {
    match e {
        OpenAIError::Reqwest(r) => {
            let kind = if r.is_timeout() {
                "timeout"
            } else if r.is_connect() {
                "connection_error"
            } else {
                "http_error"
            };
            ErrorInfo::new(kind, reqwest_message(r))
        }
        other => {
            let kind = format!("{other:?}").split(['(', ' ', '{']).next().unwrap_or("error").to_owned();
            ErrorInfo::new(kind, other.to_string())
        }
    }
}

impl<S> tower::Service<HttpRequestFactory> for AnosysService<S>
where
    S: tower::Service<HttpRequestFactory, Response = reqwest::Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<OpenAIError> + Send + 'static,
{
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = BoxFuture<Result<reqwest::Response, OpenAIError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), OpenAIError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        // The clone is the one polled ready (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let options = layer.options.clone().unwrap_or_else(|| {
                let capture_content = match &layer.destination {
                    Destination::Pipeline(p) => p.capture_content(),
                    Destination::Global => crate::global::global().is_none_or(|p| p.capture_content()),
                };
                Arc::new(CaptureOptions { capture_content, ..Default::default() })
            });
            let (started, factory) = match factory.build().await {
                Ok(request) => {
                    let url = request.url().to_string();
                    let body = request.body().and_then(|b| b.as_bytes());
                    if body.is_some_and(asks_stream) {
                        // A stream is recorded as it comes: its record starts now.
                        let mut json: Value = body.and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null);
                        let factory = if prepare_request(&url, &mut json, &options) {
                            with_body(factory, Bytes::from(serde_json::to_vec(&json).unwrap_or_default()))
                        } else {
                            factory
                        };
                        (Some(Started::Now(OpenAiCall::start(&url, json, &options))), factory)
                    } else {
                        // A plain call: the request is kept as sent, and its
                        // record is made on the extraction thread.
                        let request = RequestJson::Bytes(body.map(<[u8]>::to_vec).unwrap_or_default());
                        (Some(Started::Later(DeferredCall::start(url, request, (*options).clone(), None))), factory)
                    }
                }
                Err(_) => (None, factory),
            };
            let mut capture = Capture { started, destination: layer.destination.clone() };
            let result = inner.call(factory).await.map_err(Into::into);
            if capture.started.is_none() {
                return result;
            }
            let response = match result {
                Ok(r) => r,
                Err(e) => {
                    capture.fail(request_error(&e));
                    return Err(e);
                }
            };
            let status = response.status();
            let is_sse = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            let mut builder = http::Response::builder().status(status).version(response.version());
            if let Some(headers) = builder.headers_mut() {
                *headers = response.headers().clone();
            }
            if is_sse
                && status.is_success()
                && let Some(call) = capture.take_call()
            {
                let mut accumulator = call.into_stream();
                accumulator.set_http_status(status.as_u16());
                let destination = layer.destination.clone();
                let recorder = StreamRecorder::new(accumulator, move |r| destination.emit(r));
                let body = reqwest::Body::wrap_stream(RecordedBody::events(Box::pin(response.bytes_stream().map_err(Into::into)), recorder));
                return builder.body(body).map(reqwest::Response::from).map_err(|e| OpenAIError::InvalidArgument(e.to_string()));
            }
            match response.bytes().await {
                Ok(bytes) => {
                    capture.finish(status.as_u16(), &bytes);
                    builder
                        .body(reqwest::Body::from(bytes))
                        .map(reqwest::Response::from)
                        .map_err(|e| OpenAIError::InvalidArgument(e.to_string()))
                }
                Err(e) => {
                    let kind = if e.is_timeout() { "timeout" } else { "http_error" };
                    capture.fail(ErrorInfo::new(kind, reqwest_message(&e)));
                    Err(OpenAIError::Reqwest(e))
                }
            }
        })
    }
}

/// A call's record from its start: made as the call starts (a stream), or
/// on the extraction thread once the response is in (a plain call).
// One per call, inside the call's boxed future: no gain in boxing again.
#[allow(clippy::large_enum_variant)]
enum Started {
    Now(OpenAiCall),
    Later(DeferredCall),
}

/// A call being recorded, to `destination`. Dropped before it ends (the
/// caller dropped the request's future), it is recorded as cancelled.
struct Capture {
    started: Option<Started>,
    destination: Destination,
}

impl Capture {
    /// The call, for a response that is a stream.
    fn take_call(&mut self) -> Option<OpenAiCall> {
        match self.started.take()? {
            Started::Now(call) => Some(call),
            Started::Later(call) => call.into_call(),
        }
    }

    /// Ends the call with its response: a plain call's record is made on
    /// the extraction thread (to the global pipeline, here when a global
    /// `before_send` must see it on the caller's thread, as for the
    /// bindings).
    fn finish(&mut self, status: u16, body: &Bytes) {
        let response = || ResponseJson::Bytes(body.to_vec());
        match (self.started.take(), &self.destination) {
            (Some(Started::Now(call)), destination) => destination.emit(call.finish(status, &body[..])),
            (Some(Started::Later(mut call)), Destination::Global) => {
                call.finish_deferred(status, response(), true);
            }
            (Some(Started::Later(mut call)), Destination::Pipeline(pipeline)) => {
                let pipeline = pipeline.clone();
                call.finish_deferred_into(status, response(), move |r| {
                    pipeline.submit(r);
                });
            }
            (None, _) => {}
        }
    }

    /// Ends the call with an error that left no usable response.
    fn fail(&mut self, error: ErrorInfo) {
        let record = match self.started.take() {
            Some(Started::Now(call)) => Some(call.fail(error)),
            Some(Started::Later(mut call)) => call.live().fail(error),
            None => None,
        };
        if let Some(record) = record {
            self.destination.emit(record);
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let record = match self.started.take() {
            Some(Started::Now(call)) => Some(call.cancel()),
            Some(Started::Later(mut call)) => call.live().cancel(),
            None => None,
        };
        if let Some(record) = record {
            self.destination.emit(record);
        }
    }
}

/// A factory that rebuilds the request with another JSON body.
fn with_body(factory: HttpRequestFactory, body: Bytes) -> HttpRequestFactory {
    HttpRequestFactory::new(move || {
        let (factory, body) = (factory.clone(), body.clone());
        async move {
            let mut request = factory.build().await?;
            let len = body.len();
            *request.body_mut() = Some(reqwest::Body::from(body));
            request.headers_mut().insert(reqwest::header::CONTENT_LENGTH, reqwest::header::HeaderValue::from(len));
            Ok(request)
        }
    })
}


//! API key → log URL, through the AnoSys resolver.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::BodyExt as _;

use crate::config::ApiKey;
use crate::net::{ClientOptions, HttpClient, SendError};

/// GET `{resolver}?apikey={key}` (following redirects) and take `apiUrl`,
/// else `url`. Retries connection errors and 5xx a few times; the error
/// text never holds the key.
pub(super) async fn resolve(
    client: &HttpClient,
    resolver: &str,
    key: &ApiKey,
    timeout: Duration,
) -> Result<String, String> {
    let encoded = percent_encoding::utf8_percent_encode(key.expose(), percent_encoding::NON_ALPHANUMERIC);
    let sep = if resolver.contains('?') { '&' } else { '?' };
    let url = format!("{resolver}{sep}apikey={encoded}");
    let host = reqwest::Url::parse(resolver)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "the resolver".into());
    // (The parse error is left out: it could quote the key.)
    let uri = super::parse_url(&url).map_err(|_| format!("the resolver's URL ({host}) is not a valid http(s) URL"))?;
    let mut last = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500) * attempt).await;
        }
        let exchange = async {
            let response = client.send_following_redirects(Method::GET, uri.clone(), HeaderMap::new(), Bytes::new()).await?;
            let (head, body) = response.into_parts();
            Ok::<_, SendError>((head.status, body.collect().await.map(|b| b.to_bytes())))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok((status, body))) if status.is_success() => {
                let body: serde_json::Value = match body.ok().and_then(|b| serde_json::from_slice(&b).ok()) {
                    Some(v) => v,
                    None => return Err(format!("{host} answered with something that is not JSON")),
                };
                let found = body
                    .get("apiUrl")
                    .and_then(|v| v.as_str())
                    .filter(|s| !s.is_empty())
                    .or_else(|| body.get("url").and_then(|v| v.as_str()).filter(|s| !s.is_empty()));
                return match found {
                    Some(u) if reqwest::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https")) => {
                        Ok(u.to_owned())
                    }
                    Some(_) => Err(format!("{host} returned a log URL that is not an http(s) URL")),
                    None => Err(format!("{host} returned no apiUrl or url for this key")),
                };
            }
            Ok(Ok((status, _))) if status.is_server_error() => last = format!("{host} answered HTTP {status}"),
            Ok(Ok((status, _))) => return Err(format!("{host} answered HTTP {status} (is the key right?)")),
            Ok(Err(e)) => last = format!("cannot reach {host}: {e}"),
            Err(_) => last = format!("cannot reach {host}: no answer within {} s", timeout.as_secs_f64()),
        }
    }
    Err(last)
}

/// The log URL the AnoSys resolver at `resolver` gives for `key`, asked
/// now, blocking the calling thread (at most about three times `timeout`,
/// with the retries). For the packages' `resolve_api_key`, which the
/// original SDKs offer as a function; the sink resolves on its own thread.
/// The error says what went wrong without the key.
///
/// ```
/// // Nothing listens on port 9 of the loopback: the error names the host,
/// // never the key.
/// let key = anosys::config::ApiKey::new("sk-secret-key");
/// let err = anosys::sinks::anosys::resolve_log_url("http://127.0.0.1:9/resolve", &key, std::time::Duration::from_secs(1))
///     .unwrap_err();
/// assert!(err.contains("127.0.0.1") && !err.contains("sk-secret-key"), "{err}");
/// ```
pub fn resolve_log_url(resolver: &str, key: &ApiKey, timeout: Duration) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the resolver's runtime: {e}"))?;
    let client = HttpClient::new(&ClientOptions::default()).map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    runtime.block_on(resolve(&client, resolver, key, timeout))
}

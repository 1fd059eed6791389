//! API key → log URL, through the AnoSys resolver.

use std::time::Duration;

use crate::config::ApiKey;

/// GET `{resolver}?apikey={key}` and take `apiUrl`, else `url`. Retries
/// connection errors and 5xx a few times; the error text never holds the key.
pub(super) async fn resolve(
    client: &reqwest::Client,
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
    let mut last = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500) * attempt).await;
        }
        match client.get(&url).timeout(timeout).send().await {
            Ok(r) if r.status().is_success() => {
                let body: serde_json::Value = match r.json().await {
                    Ok(v) => v,
                    Err(_) => return Err(format!("{host} answered with something that is not JSON")),
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
            Ok(r) if r.status().is_server_error() => last = format!("{host} answered HTTP {}", r.status()),
            Ok(r) => return Err(format!("{host} answered HTTP {} (is the key right?)", r.status())),
            Err(e) => last = format!("cannot reach {host}: {}", e.without_url()),
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
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", e.without_url()))?;
    runtime.block_on(resolve(&client, resolver, key, timeout))
}

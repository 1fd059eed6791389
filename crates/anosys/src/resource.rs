//! The resource of a pipeline's records: `service.name`, the configured
//! resource attributes (`OTEL_RESOURCE_ATTRIBUTES`) and the SDK's own
//! `telemetry.sdk.*`, with the identity a language package embedding the
//! engine gives ([`crate::embed::set_sdk_identity`]).

use serde_json::Value;

use crate::config::Config;
use crate::record::Resource;

/// Who embeds the engine, as [`set_sdk_identity`] set it.
#[derive(Debug, Clone)]
struct SdkIdentity {
    language: String,
    version: String,
    default_service: Option<String>,
    extra: Vec<(String, Value)>,
}

static SDK_IDENTITY: std::sync::RwLock<Option<SdkIdentity>> = std::sync::RwLock::new(None);

/// For language packages built on the engine (Python, Node.js): the
/// `telemetry.sdk.language` and `telemetry.sdk.version` of pipelines
/// started after this call, the `service.name` they use when neither
/// `OTEL_SERVICE_NAME` nor the configuration names one (the script rather
/// than the interpreter), and extra resource attributes (such as
/// `service.version`).
///
/// ```
/// anosys::embed::set_sdk_identity("python", "0.1.0", Some("billing_worker"), Vec::new());
/// let r = anosys::resource::default_resource(None);
/// assert_eq!(r.attributes["telemetry.sdk.language"], "python");
/// assert_eq!(r.service_name(), Some("billing_worker"));
/// # anosys::embed::set_sdk_identity("rust", env!("CARGO_PKG_VERSION"), None, Vec::new());
/// ```
pub fn set_sdk_identity(language: &str, version: &str, default_service: Option<&str>, extra: Vec<(String, Value)>) {
    let identity = SdkIdentity {
        language: language.to_owned(),
        version: version.to_owned(),
        default_service: default_service.map(str::to_owned),
        extra,
    };
    *SDK_IDENTITY.write().unwrap_or_else(|p| p.into_inner()) = Some(identity);
}

/// The resource of this process: `service.name` (from `OTEL_SERVICE_NAME`,
/// the configuration, the embedding package, or the executable's name) and
/// the SDK's name, language and version.
pub fn default_resource(service_name: Option<&str>) -> Resource {
    let identity = SDK_IDENTITY.read().unwrap_or_else(|p| p.into_inner()).clone();
    let service = service_name
        .map(str::to_owned)
        .or_else(|| identity.as_ref().and_then(|i| i.default_service.clone()))
        .unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "unknown_service".into())
        });
    let mut r = Resource::default();
    r.attributes.insert("service.name".into(), Value::String(service));
    r.attributes.insert("telemetry.sdk.name".into(), Value::from("anosys"));
    let (language, version) = match &identity {
        Some(i) => (i.language.clone(), i.version.clone()),
        None => ("rust".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
    };
    r.attributes.insert("telemetry.sdk.language".into(), Value::from(language));
    r.attributes.insert("telemetry.sdk.version".into(), Value::from(version));
    for (k, v) in identity.into_iter().flat_map(|i| i.extra) {
        r.attributes.insert(k.into(), v);
    }
    r
}

/// The resource of a pipeline built from `config`: [`default_resource`],
/// then the configured attributes (`OTEL_RESOURCE_ATTRIBUTES`,
/// `service_version`), which win over what an embedding package set, but
/// not over `service.name` from `OTEL_SERVICE_NAME` or the SDK's own
/// `telemetry.sdk.*`.
///
/// ```
/// let config = anosys::Config::builder().service_name("billing").service_version("1.4.2").build().unwrap();
/// let r = anosys::resource::resource_for(&config);
/// assert_eq!(r.service_name(), Some("billing"));
/// assert_eq!(r.attributes["service.version"], "1.4.2");
/// ```
pub fn resource_for(config: &Config) -> Resource {
    let mut r = default_resource(config.service_name.as_deref());
    for (k, v) in &config.resource_attributes {
        let ours = k.starts_with("telemetry.sdk.") || (k == "service.name" && config.service_name.is_some());
        if !ours {
            r.attributes.insert(k.clone().into(), Value::String(v.clone()));
        }
    }
    r
}


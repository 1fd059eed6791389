//! Variables other tools define for the same settings, honoured so that an
//! application configured for them behaves the same with anosys. anosys's
//! own variable wins when both are set; code (the builder) wins over both.
//!
//! | variable | read as |
//! |---|---|
//! | `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` | `ANOSYS_CAPTURE_CONTENT` |
//! | `OTEL_TRACES_SAMPLER` (+ `OTEL_TRACES_SAMPLER_ARG`) | `ANOSYS_SAMPLE_RATE`: `always_on` 1, `always_off` 0, `traceidratio` and `parentbased_traceidratio` the argument (1 if unset); other samplers are left to the SDKs they name |
//! | `ANOSYS_ENCRYPTES_COLUMNS` (the original AnoSys SDKs' other spelling) | `ANOSYS_ENCRYPTED_COLUMNS` |
//!
//! And as in the original SDKs, an `ANOSYS_ENCRYPTION_KEY` of `null`,
//! `none` or `undefined` (any case) is no key.

use super::define::parse_setting;
use super::error::ConfigError;
use super::kinds::{Flag, Ratio};
use super::settings::{env, Config};

/// OpenTelemetry's GenAI instrumentations' content switch.
pub const OTEL_CAPTURE_CONTENT: &str = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT";
/// OpenTelemetry's sampler name.
pub const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
/// OpenTelemetry's sampler argument.
pub const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
/// The original AnoSys SDKs' second spelling of `ANOSYS_ENCRYPTED_COLUMNS`.
pub const ANOSYS_ENCRYPTES_COLUMNS: &str = "ANOSYS_ENCRYPTES_COLUMNS";

pub(super) fn read(config: &mut Config, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    if set(env::ANOSYS_CAPTURE_CONTENT).is_none()
        && let Some(text) = set(OTEL_CAPTURE_CONTENT)
    {
        config.capture_content = parse_setting(&Flag, "capture_content", OTEL_CAPTURE_CONTENT, &text)?;
    }
    if set(env::ANOSYS_SAMPLE_RATE).is_none()
        && let Some(sampler) = set(OTEL_TRACES_SAMPLER)
    {
        match sampler.trim().to_ascii_lowercase().as_str() {
            "always_on" | "parentbased_always_on" => config.sample_rate = 1.0,
            "always_off" | "parentbased_always_off" => config.sample_rate = 0.0,
            "traceidratio" | "parentbased_traceidratio" => {
                config.sample_rate = match set(OTEL_TRACES_SAMPLER_ARG) {
                    Some(arg) => parse_setting(&Ratio, "sample_rate", OTEL_TRACES_SAMPLER_ARG, &arg)?,
                    None => 1.0,
                }
            }
            _ => {}
        }
    }
    if set(env::ANOSYS_ENCRYPTED_COLUMNS).is_none()
        && let Some(columns) = set(ANOSYS_ENCRYPTES_COLUMNS)
    {
        config.encrypted_columns = Some(columns);
    }
    if config.encryption_key.as_ref().is_some_and(|k| {
        let k = k.expose().trim();
        ["null", "none", "undefined"].iter().any(|word| k.eq_ignore_ascii_case(word))
    }) {
        config.encryption_key = None;
    }
    Ok(())
}

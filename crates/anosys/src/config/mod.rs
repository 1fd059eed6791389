//! Configuration: a builder in code, or the environment; the same settings
//! and the same rules either way.
//!
//! Every setting is defined once (`settings.rs`): [`Config`]'s getters, the
//! [`ConfigBuilder`]'s setters, the environment variables (as constants in
//! [`env`](mod@env)), the checks of [`Config::validate`] and the table below (and
//! the README's, kept equal by a test) all come from that one list. The
//! table is also [`markdown_table`] and [`SETTINGS`].
//!
//! `auto` sinks: AnoSys when a key or URL is set, OTLP when an OTLP
//! endpoint is set (feature `otlp`), otherwise the embedded store (SQLite;
//! the JSON-lines file when built without the `sqlite` feature). Records a
//! remote sink cannot take are kept in the embedded store.
//!
//! ```
//! use anosys::config::{env, Config, ConfigBuilder};
//!
//! // The environment path, read here from a list instead of the process.
//! let config = ConfigBuilder::from_lookup(|name| (name == env::ANOSYS_BATCH_SIZE).then(|| "64".to_owned()))?
//!     .build()?;
//! assert_eq!(config.batch_size(), 64);
//!
//! // Both paths reject the same values, and say which setting it was.
//! let from_env = ConfigBuilder::from_lookup(|name| (name == env::ANOSYS_BATCH_SIZE).then(|| "0".to_owned()));
//! let from_code = Config::builder().batch_size(0).build();
//! assert_eq!(from_env.unwrap_err().setting(), "batch_size");
//! assert_eq!(from_code.unwrap_err().variable(), "ANOSYS_BATCH_SIZE");
//! # Ok::<(), anosys::ConfigError>(())
//! ```

mod define;
mod error;
mod kinds;
pub mod peers;
mod settings;
mod types;

pub use define::{markdown_table, Setting};
pub use error::ConfigError;
pub use settings::{env, Config, DEFAULT_DB_PATH, DEFAULT_JSONL_PATH, DEFAULT_RESOLVER_URL, SETTINGS};
pub use types::{ApiKey, OtlpProtocol, SinkKind, SinkSelection, StartingIndices, UnknownName};

impl Config {
    /// A builder starting from the defaults (the environment is not read).
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder { config: Config::default() }
    }

    /// The defaults overridden by the environment, validated.
    ///
    /// ```
    /// // With no ANOSYS_* variables set this is the default configuration.
    /// let config = anosys::Config::from_env();
    /// assert!(config.is_ok());
    /// ```
    pub fn from_env() -> Result<Config, ConfigError> {
        ConfigBuilder::from_env()?.build()
    }

    /// Checks every setting against its rule (the same rules the
    /// environment is read with) and the settings against each other.
    /// [`ConfigBuilder::build`] and every pipeline start call it.
    ///
    /// ```
    /// let config = anosys::Config::default();
    /// assert!(config.validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        settings::check_each(self)?;
        if self.resolved_sinks().contains(&SinkKind::Anosys) && self.api_url.is_none() && self.api_key.is_none() {
            return Err(ConfigError::new(
                "sinks",
                env::ANOSYS_SINKS,
                self.sinks.to_string(),
                "ANOSYS_API_KEY or ANOSYS_API_URL to be set when the anosys sink is chosen",
            ));
        }
        Ok(())
    }

    /// The sinks `Auto` stands for under this configuration.
    ///
    /// ```
    /// use anosys::{Config, SinkKind};
    /// let config = Config::builder().api_key("k").build()?;
    /// assert_eq!(config.resolved_sinks(), [SinkKind::Anosys]);
    /// # Ok::<(), anosys::ConfigError>(())
    /// ```
    pub fn resolved_sinks(&self) -> Vec<SinkKind> {
        match &self.sinks {
            SinkSelection::Only(list) => list.clone(),
            SinkSelection::Auto => {
                let mut sinks = Vec::new();
                if self.api_url.is_some() || self.api_key.is_some() {
                    sinks.push(SinkKind::Anosys);
                }
                if SinkKind::Otlp.is_available() && (self.otlp_endpoint.is_some() || self.otlp_traces_endpoint.is_some()) {
                    sinks.push(SinkKind::Otlp);
                }
                if sinks.is_empty() {
                    sinks.push(SinkKind::embedded());
                }
                sinks
            }
        }
    }
}

/// Builds a [`Config`]: one setter per setting (each also has an
/// environment variable; see [`Config`]), checked by
/// [`build`](Self::build).
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// A builder starting from the defaults overridden by the process
    /// environment. Unset and empty variables keep the default.
    pub fn from_env() -> Result<ConfigBuilder, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env) with variables read through `lookup`
    /// (for tests and embedding).
    ///
    /// ```
    /// let err = anosys::ConfigBuilder::from_lookup(|name| {
    ///     (name == "ANOSYS_QUEUE_SIZE").then(|| "lots".to_string())
    /// })
    /// .unwrap_err();
    /// assert_eq!(err.variable(), "ANOSYS_QUEUE_SIZE");
    /// assert!(err.to_string().contains("a whole number"));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<ConfigBuilder, ConfigError> {
        let mut config = Config::default();
        settings::read_env(&mut config, &lookup)?;
        peers::read(&mut config, &lookup)?;
        Ok(ConfigBuilder { config })
    }

    /// `service.version` of the resource (one of the resource attributes).
    ///
    /// ```
    /// let config = anosys::Config::builder().service_version("1.4.2").build()?;
    /// assert_eq!(config.resource_attributes(), [("service.version".to_owned(), "1.4.2".to_owned())]);
    /// # Ok::<(), anosys::ConfigError>(())
    /// ```
    pub fn service_version(self, version: impl Into<String>) -> Self {
        self.resource_attribute("service.version", version)
    }

    /// One more resource attribute (as `OTEL_RESOURCE_ATTRIBUTES` gives
    /// them), replacing one of the same key.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.config.resource_attributes.retain(|(k, _)| *k != key);
        self.config.resource_attributes.push((key, value.into()));
        self
    }

    /// Checks every value ([`Config::validate`]) and returns the
    /// configuration.
    pub fn build(self) -> Result<Config, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests;

//! [`ConfigError`]: an invalid setting, named the same way whichever path
//! (builder or environment) it came from.

use std::fmt;

/// An invalid configuration value. It names the setting both ways (the
/// builder method and the environment variable), the rejected value
/// (secrets are never shown) and what would have been accepted.
///
/// ```
/// let err = anosys::Config::builder().batch_size(0).build().unwrap_err();
/// assert_eq!(err.setting(), "batch_size");
/// assert_eq!(err.variable(), "ANOSYS_BATCH_SIZE");
/// assert_eq!(err.value(), "0");
/// assert_eq!(
///     err.to_string(),
///     "invalid anosys setting ANOSYS_BATCH_SIZE (batch_size) = \"0\": expected a whole number from 1 to 100000"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    setting: &'static str,
    variable: &'static str,
    value: String,
    expected: String,
}

impl ConfigError {
    pub(crate) fn new(setting: &'static str, variable: &'static str, value: impl Into<String>, expected: impl Into<String>) -> Self {
        ConfigError { setting, variable, value: value.into(), expected: expected.into() }
    }

    /// The builder method of the setting (`batch_size`).
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// The environment variable of the setting (`ANOSYS_BATCH_SIZE`).
    pub fn variable(&self) -> &'static str {
        self.variable
    }

    /// The rejected value as text (`<redacted>` for secrets).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// What would have been accepted.
    pub fn expected(&self) -> &str {
        &self.expected
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid anosys setting {} ({}) = {:?}: expected {}",
            self.variable, self.setting, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

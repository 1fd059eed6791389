//! What to redact: the kinds of secret, custom patterns and their limits,
//! from code or from `ANOSYS_REDACT` / `ANOSYS_REDACT_PATTERNS`.

use std::fmt;
use std::time::Duration;

/// The environment variable turning redaction off or kinds on and off.
pub const REDACT_VARIABLE: &str = "ANOSYS_REDACT";

/// The environment variable holding custom named patterns.
pub const PATTERNS_VARIABLE: &str = "ANOSYS_REDACT_PATTERNS";

/// A built-in kind of secret or personal data the redactor recognises.
///
/// Its [`name`](Kind::name) is what the replacement says
/// (`[REDACTED:openai_key]`), what [`Redactions`](super::Redactions) counts
/// and what `ANOSYS_REDACT` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    /// OpenAI API keys: `sk-…`, `sk-proj-…`, `sk-svcacct-…`, `sk-admin-…`.
    OpenaiKey,
    /// Anthropic API keys: `sk-ant-…`.
    AnthropicKey,
    /// Google API keys: `AIza` and 35 more characters.
    GoogleApiKey,
    /// AWS access key ids: `AKIA` or `ASIA` and 16 upper-case letters or digits.
    AwsAccessKey,
    /// GitHub tokens: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`.
    GithubToken,
    /// Slack tokens: `xoxa-`, `xoxb-`, `xoxp-`, `xoxr-`, `xoxs-`.
    SlackToken,
    /// The token after `Bearer ` in text or headers (the word stays).
    BearerToken,
    /// JSON Web Tokens: base64url parts separated by dots, the header
    /// starting `eyJ`.
    Jwt,
    /// PEM private-key blocks, `-----BEGIN … PRIVATE KEY-----` to the
    /// matching `-----END …-----` (to the end of the text when there is none).
    PrivateKey,
    /// The password in `scheme://user:password@host` (only the password).
    UrlPassword,
    /// Payment card numbers: 13 to 19 digits, optionally grouped by spaces or
    /// dashes, passing the Luhn check and starting like a card network's.
    CreditCard,
    /// Values of keys named like secrets (`password`, `api_key`,
    /// `access_token`, `authorization`, `cookie`, …) in JSON objects,
    /// attributes and `key=value` / `key: value` text.
    SecretKey,
    /// E-mail addresses (opt-in).
    Email,
    /// Telephone numbers: international `+…` and North American forms (opt-in).
    Phone,
    /// IPv4 and IPv6 addresses (opt-in).
    Ip,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 15] = [
        Kind::OpenaiKey,
        Kind::AnthropicKey,
        Kind::GoogleApiKey,
        Kind::AwsAccessKey,
        Kind::GithubToken,
        Kind::SlackToken,
        Kind::BearerToken,
        Kind::Jwt,
        Kind::PrivateKey,
        Kind::UrlPassword,
        Kind::CreditCard,
        Kind::SecretKey,
        Kind::Email,
        Kind::Phone,
        Kind::Ip,
    ];

    /// The stable snake_case name.
    ///
    /// ```
    /// use anosys::redact::Kind;
    /// assert_eq!(Kind::OpenaiKey.name(), "openai_key");
    /// assert_eq!(Kind::from_name("credit_card"), Some(Kind::CreditCard));
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Kind::OpenaiKey => "openai_key",
            Kind::AnthropicKey => "anthropic_key",
            Kind::GoogleApiKey => "google_api_key",
            Kind::AwsAccessKey => "aws_access_key",
            Kind::GithubToken => "github_token",
            Kind::SlackToken => "slack_token",
            Kind::BearerToken => "bearer_token",
            Kind::Jwt => "jwt",
            Kind::PrivateKey => "private_key",
            Kind::UrlPassword => "url_password",
            Kind::CreditCard => "credit_card",
            Kind::SecretKey => "secret_key",
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Ip => "ip",
        }
    }

    /// The kind named `name` (exactly as [`name`](Kind::name) spells it).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the kind is on unless turned off: every kind but `email`,
    /// `phone` and `ip`.
    pub fn is_default(self) -> bool {
        !matches!(self, Kind::Email | Kind::Phone | Kind::Ip)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The label counted for a value that could not be scanned for custom
/// patterns within the limits, and replaced whole (`[REDACTED:unscanned]`).
pub const UNSCANNED: &str = "unscanned";

/// A set of kinds (a bit per kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct KindSet(u32);

impl KindSet {
    pub(crate) fn defaults() -> KindSet {
        KindSet(Kind::ALL.into_iter().filter(|k| k.is_default()).fold(0, |bits, k| bits | k.bit()))
    }

    pub(crate) fn all() -> KindSet {
        KindSet(Kind::ALL.into_iter().fold(0, |bits, k| bits | k.bit()))
    }

    pub(crate) fn has(self, kind: Kind) -> bool {
        self.0 & kind.bit() != 0
    }

    fn with(self, kind: Kind) -> KindSet {
        KindSet(self.0 | kind.bit())
    }

    fn without(self, kind: Kind) -> KindSet {
        KindSet(self.0 & !kind.bit())
    }
}

/// Default for [`RedactionConfig::with_custom_limits`]: custom patterns scan
/// strings up to 1 MiB.
pub const DEFAULT_MAX_CUSTOM_SCAN_LEN: usize = 1 << 20;

/// Default for [`RedactionConfig::with_custom_limits`]: custom patterns get
/// 20 ms per record.
pub const DEFAULT_CUSTOM_BUDGET: Duration = Duration::from_millis(20);

/// What a [`Redactor`](super::Redactor) redacts.
///
/// The default turns on every built-in kind but `email`, `phone` and `ip`,
/// with no custom pattern. Built in code:
///
/// ```
/// use anosys::redact::{Kind, RedactionConfig, Redactor};
///
/// let config = RedactionConfig::default()
///     .with_kind(Kind::Email)
///     .without_kind(Kind::CreditCard)
///     .with_pattern("employee_id", "EMP-[0-9]{6}");
/// let redactor = Redactor::new(&config)?;
/// let (text, found) = redactor.redact_str("EMP-123456 wrote to ann@example.com");
/// assert_eq!(text, "[REDACTED:employee_id] wrote to [REDACTED:email]");
/// assert_eq!(found.total(), 2);
/// # Ok::<(), anosys::redact::RedactError>(())
/// ```
///
/// or from the environment with [`from_env_values`](Self::from_env_values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactionConfig {
    enabled: bool,
    kinds: KindSet,
    patterns: Vec<(String, String)>,
    max_custom_scan_len: usize,
    custom_budget: Duration,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        RedactionConfig {
            enabled: true,
            kinds: KindSet::defaults(),
            patterns: Vec::new(),
            max_custom_scan_len: DEFAULT_MAX_CUSTOM_SCAN_LEN,
            custom_budget: DEFAULT_CUSTOM_BUDGET,
        }
    }
}

impl RedactionConfig {
    /// Redaction turned off: records pass unchanged.
    pub fn off() -> Self {
        RedactionConfig { enabled: false, ..RedactionConfig::default() }
    }

    /// Every built-in kind on, the opt-in ones too.
    pub fn all() -> Self {
        RedactionConfig { kinds: KindSet::all(), ..RedactionConfig::default() }
    }

    /// Turns `kind` on.
    pub fn with_kind(mut self, kind: Kind) -> Self {
        self.kinds = self.kinds.with(kind);
        self
    }

    /// Turns `kind` off.
    pub fn without_kind(mut self, kind: Kind) -> Self {
        self.kinds = self.kinds.without(kind);
        self
    }

    /// Adds a custom pattern: every match of the regular expression `regex`
    /// (the [`regex`](https://docs.rs/regex) crate's syntax; `(?i)` for any
    /// case) becomes `[REDACTED:<name>]`. `name` is made of lower-case
    /// letters, digits and `_`, and is not a built-in kind's name. Both are
    /// checked by [`Redactor::new`](super::Redactor::new); a pattern of the
    /// same name replaces the earlier one.
    pub fn with_pattern(mut self, name: impl Into<String>, regex: impl Into<String>) -> Self {
        let name = name.into();
        self.patterns.retain(|(n, _)| *n != name);
        self.patterns.push((name, regex.into()));
        self
    }

    /// The limits of custom patterns, which fail closed: a string longer
    /// than `max_scan_len` bytes, and every string still to scan once a
    /// record has used `budget`, is replaced whole by `[REDACTED:unscanned]`
    /// (counted as `unscanned`). The built-in kinds have no limit: they cost
    /// time linear in the text.
    pub fn with_custom_limits(mut self, max_scan_len: usize, budget: Duration) -> Self {
        self.max_custom_scan_len = max_scan_len;
        self.custom_budget = budget;
        self
    }

    /// Whether anything is redacted at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Whether the built-in `kind` is on.
    pub fn has_kind(&self, kind: Kind) -> bool {
        self.kinds.has(kind)
    }

    /// The built-in kinds turned on.
    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        Kind::ALL.into_iter().filter(|k| self.kinds.has(*k))
    }

    /// The custom patterns, `(name, regex)`, in the order added.
    pub fn patterns(&self) -> &[(String, String)] {
        &self.patterns
    }

    /// The limits set by [`with_custom_limits`](Self::with_custom_limits):
    /// `(max_scan_len, budget)`.
    pub fn custom_limits(&self) -> (usize, Duration) {
        (self.max_custom_scan_len, self.custom_budget)
    }

    pub(crate) fn kind_set(&self) -> KindSet {
        self.kinds
    }

    /// The configuration the values of `ANOSYS_REDACT` and
    /// `ANOSYS_REDACT_PATTERNS` describe (`None` for an unset variable).
    ///
    /// **`ANOSYS_REDACT`**, case-insensitive, unset or empty for the
    /// defaults:
    ///
    /// - `off` (or `false`, `no`, `0`): no redaction at all, custom patterns
    ///   included; `on` (or `true`, `yes`, `1`): the defaults;
    /// - otherwise a comma-separated list applied left to right, starting from
    ///   the defaults: a kind's name turns it on (`+email` too), `-name` turns
    ///   it off, `default` goes back to the defaults, `all` turns every kind
    ///   on and `none` every kind off. `default,email,-credit_card`,
    ///   `all,-ip`, `none,jwt,private_key`.
    ///
    /// The kinds: `openai_key`, `anthropic_key`, `google_api_key`,
    /// `aws_access_key`, `github_token`, `slack_token`, `bearer_token`,
    /// `jwt`, `private_key`, `url_password`, `credit_card`, `secret_key` (on
    /// by default), `email`, `phone`, `ip` (off by default).
    ///
    /// **`ANOSYS_REDACT_PATTERNS`**: a JSON object of pattern names to
    /// regular expressions, e.g. `{"employee_id": "EMP-[0-9]{6}",
    /// "ticket": "(?i)tkt-[a-z0-9]{8}"}` (JSON escapes a backslash:
    /// `"\\d{6}"`). Names are lower-case letters, digits and `_`, and not a
    /// built-in kind's name.
    ///
    /// Every error names the variable (and the pattern).
    ///
    /// ```
    /// use anosys::redact::{Kind, RedactionConfig};
    ///
    /// let config = RedactionConfig::from_env_values(Some("default,email,-credit_card"), Some(r#"{"employee_id":"EMP-[0-9]{6}"}"#))?;
    /// assert!(config.has_kind(Kind::Email) && !config.has_kind(Kind::CreditCard) && config.has_kind(Kind::Jwt));
    /// assert_eq!(config.patterns()[0].0, "employee_id");
    ///
    /// assert!(!RedactionConfig::from_env_values(Some("off"), None)?.is_enabled());
    ///
    /// let error = RedactionConfig::from_env_values(Some("emails"), None).unwrap_err();
    /// assert!(error.to_string().starts_with("ANOSYS_REDACT: unknown redaction kind `emails`"));
    /// let error = RedactionConfig::from_env_values(None, Some(r#"{"bad":"EMP-[0-9"}"#)).unwrap_err();
    /// assert!(error.to_string().starts_with("ANOSYS_REDACT_PATTERNS: pattern `bad`"));
    /// # Ok::<(), anosys::redact::RedactError>(())
    /// ```
    pub fn from_env_values(redact: Option<&str>, patterns: Option<&str>) -> Result<RedactionConfig, RedactError> {
        let mut config = RedactionConfig::default();
        if let Some(redact) = redact.map(str::trim).filter(|v| !v.is_empty()) {
            match redact.to_ascii_lowercase().as_str() {
                "off" | "false" | "no" | "0" => return Ok(RedactionConfig::off()),
                "on" | "true" | "yes" | "1" => {}
                list => {
                    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                        config.kinds = match item {
                            "default" => KindSet::defaults(),
                            "all" => KindSet::all(),
                            "none" => KindSet::default(),
                            _ => {
                                let (on, name) = match item.strip_prefix('-') {
                                    Some(name) => (false, name.trim()),
                                    None => (true, item.strip_prefix('+').unwrap_or(item).trim()),
                                };
                                let kind = Kind::from_name(name).ok_or_else(|| RedactError::UnknownKind {
                                    variable: REDACT_VARIABLE,
                                    item: item.to_owned(),
                                })?;
                                if on {
                                    config.kinds.with(kind)
                                } else {
                                    config.kinds.without(kind)
                                }
                            }
                        };
                    }
                }
            }
        }
        if let Some(patterns) = patterns.map(str::trim).filter(|v| !v.is_empty()) {
            let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(patterns)
                .map_err(|e| RedactError::InvalidPatterns { variable: PATTERNS_VARIABLE, message: e.to_string() })?;
            for (name, regex) in object {
                let Some(regex) = regex.as_str() else {
                    return Err(RedactError::InvalidPatterns {
                        variable: PATTERNS_VARIABLE,
                        message: format!("the value of `{name}` is not a string"),
                    });
                };
                check_pattern(Some(PATTERNS_VARIABLE), &name, regex)?;
                config = config.with_pattern(name, regex);
            }
        }
        Ok(config)
    }

    /// [`from_env_values`](Self::from_env_values) with this process's
    /// `ANOSYS_REDACT` and `ANOSYS_REDACT_PATTERNS` (a value that is not
    /// Unicode is an error naming its variable).
    pub fn from_env() -> Result<RedactionConfig, RedactError> {
        let read = |variable: &'static str| match std::env::var(variable) {
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(RedactError::InvalidPatterns { variable, message: "the value is not valid Unicode".into() })
            }
        };
        let redact = read(REDACT_VARIABLE)?;
        let patterns = read(PATTERNS_VARIABLE)?;
        RedactionConfig::from_env_values(redact.as_deref(), patterns.as_deref())
    }
}

/// Checks a custom pattern's name and compiles its regular expression.
pub(crate) fn check_pattern(
    variable: Option<&'static str>,
    name: &str,
    regex: &str,
) -> Result<regex::Regex, RedactError> {
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && Kind::from_name(name).is_none()
        && name != UNSCANNED;
    if !valid_name {
        return Err(RedactError::InvalidPatternName { variable, name: name.to_owned() });
    }
    regex::RegexBuilder::new(regex)
        .size_limit(1 << 22)
        .dfa_size_limit(1 << 22)
        .build()
        .map_err(|e| RedactError::InvalidRegex { variable, name: name.to_owned(), message: e.to_string() })
}

/// A redaction setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedactError {
    /// `ANOSYS_REDACT` names a kind that does not exist.
    UnknownKind {
        /// The variable read.
        variable: &'static str,
        /// The list item, as written.
        item: String,
    },
    /// `ANOSYS_REDACT_PATTERNS` is not a JSON object of strings.
    InvalidPatterns {
        /// The variable read.
        variable: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A custom pattern's name is empty, not `[a-z0-9_]`, too long (over 64
    /// bytes) or a built-in kind's.
    InvalidPatternName {
        /// The variable read, `None` for a pattern given in code.
        variable: Option<&'static str>,
        /// The name.
        name: String,
    },
    /// A custom pattern is not a valid regular expression (or is too large).
    InvalidRegex {
        /// The variable read, `None` for a pattern given in code.
        variable: Option<&'static str>,
        /// The pattern's name.
        name: String,
        /// The regex crate's explanation.
        message: String,
    },
}

fn valid_kinds() -> String {
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    names.join(", ")
}

impl fmt::Display for RedactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = |variable: &Option<&'static str>| variable.map_or("custom redaction", |v| v);
        match self {
            RedactError::UnknownKind { variable, item } => write!(
                f,
                "{variable}: unknown redaction kind `{item}`; valid kinds are {} (each may be prefixed by `-` to turn it off), and `default`, `all`, `none`, or `off` alone",
                valid_kinds()
            ),
            RedactError::InvalidPatterns { variable, message } => write!(
                f,
                "{variable}: expected a JSON object of pattern names to regular expressions, like {{\"employee_id\": \"EMP-[0-9]{{6}}\"}}: {message}"
            ),
            RedactError::InvalidPatternName { variable, name } => write!(
                f,
                "{}: pattern name `{name}` is invalid: use 1 to 64 lower-case letters, digits or `_`, other than a built-in kind's name ({}) or `{UNSCANNED}`",
                prefix(variable),
                valid_kinds()
            ),
            RedactError::InvalidRegex { variable, name, message } => {
                write!(f, "{}: pattern `{name}` is not a valid regular expression: {message}", prefix(variable))
            }
        }
    }
}

impl std::error::Error for RedactError {}

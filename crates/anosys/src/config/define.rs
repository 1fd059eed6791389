//! The machinery that turns the one list of settings (`settings.rs`) into
//! the `Config` fields and defaults, the getters, the builder's setters, the
//! environment variable constants, the environment reader, the per-setting
//! checks and the documentation table. Nothing here names a setting.

/// What documentation says about one setting; [`SETTINGS`](super::SETTINGS)
/// lists them all, in the order of the README's table.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Setting {
    /// The builder method and getter (`batch_size`).
    pub name: &'static str,
    /// The environment variable (`ANOSYS_BATCH_SIZE`).
    pub variable: &'static str,
    /// Other variables read for it, later ones winning
    /// (`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`).
    pub aliases: &'static [&'static str],
    /// One line saying what it does.
    pub doc: &'static str,
    /// Its default, as documentation shows it.
    pub default: &'static str,
}

impl Setting {
    /// This setting as a row of the README's Markdown table.
    pub fn markdown_row(&self) -> String {
        let mut variables = format!("`{}`", self.variable);
        for alias in self.aliases {
            variables.push_str(&format!(" (or `{alias}`)"));
        }
        format!("| {variables} | `{}` | {} | {} |", self.name, self.doc.trim(), self.default)
    }
}

/// The README's table of settings, generated from [`SETTINGS`](super::SETTINGS).
///
/// ```
/// let table = anosys::config::markdown_table();
/// assert!(table.lines().any(|l| l.starts_with("| `ANOSYS_BATCH_SIZE` | `batch_size` |")));
/// ```
pub fn markdown_table() -> String {
    let mut out = String::from("| variable | builder | meaning | default |\n|---|---|---|---|\n");
    for s in super::SETTINGS {
        out.push_str(&s.markdown_row());
        out.push('\n');
    }
    out
}

/// Declares every setting once:
///
/// ```text
/// /// One line of documentation.
/// name: Type = default_expr;
///     env VARIABLE (| ALIAS)*; kind KindExpr; shown "default as documented";
///     set(arg: ArgType) = expr_of_arg;
///     get(c) -> ReturnType = expr_of_c;
/// ```
macro_rules! settings {
    (
        $(#[$struct_meta:meta])*
        pub struct $config:ident;
        $(
            #[doc = $doc:literal]
            $field:ident : $ty:ty = $default:expr ;
                env $var:ident $(| $alias:ident)* ; kind $kind:expr ; shown $shown:literal ;
                set ( $arg:ident : $argty:ty ) = $conv:expr ;
                get ( $c:ident ) -> $ret:ty = $get:expr ;
        )*
    ) => {
        $(#[$struct_meta])*
        ///
        /// | variable | builder | meaning | default |
        /// |---|---|---|---|
        $(
            #[doc = concat!(
                "| `", stringify!($var), "`", $(" (or `", stringify!($alias), "`)",)*
                " | [`", stringify!($field), "`](ConfigBuilder::", stringify!($field), ") | ",
                $doc, " | ", $shown, " |"
            )]
        )*
        #[derive(Debug, Clone)]
        pub struct $config {
            $( pub(crate) $field: $ty, )*
        }

        impl Default for $config {
            fn default() -> Self {
                $config { $( $field: $default, )* }
            }
        }

        impl $config {
            $(
                #[doc = $doc]
                #[doc = ""]
                #[doc = concat!("Set with [`ConfigBuilder::", stringify!($field), "`] or `", stringify!($var), "`.")]
                pub fn $field(&self) -> $ret {
                    let $c = self;
                    $get
                }
            )*
        }

        impl ConfigBuilder {
            $(
                #[doc = $doc]
                #[doc = ""]
                #[doc = concat!("The environment variable is `", stringify!($var), "`; the default ", $shown, ".")]
                pub fn $field(mut self, $arg: $argty) -> Self {
                    self.config.$field = $conv;
                    self
                }
            )*
        }

        /// The environment variables anosys reads, as constants.
        pub mod env {
            $(
                #[doc = concat!("`", stringify!($var), "`:", $doc)]
                pub const $var: &str = stringify!($var);
                $(
                    #[doc = concat!("`", stringify!($alias), "`: like [`", stringify!($var), "`].")]
                    pub const $alias: &str = stringify!($alias);
                )*
            )*
        }

        /// Every setting, in the order of the documentation's table.
        pub static SETTINGS: &[Setting] = &[
            $(
                Setting {
                    name: stringify!($field),
                    variable: stringify!($var),
                    aliases: &[$(stringify!($alias)),*],
                    doc: $doc,
                    default: $shown,
                },
            )*
        ];

        /// Reads every variable `lookup` gives (empty means unset) into
        /// `config`, with each setting's kind.
        pub(super) fn read_env(config: &mut $config, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
            $(
                {
                    let kind = typed::<$ty, _>($kind);
                    for variable in [stringify!($var) $(, stringify!($alias))*] {
                        if let Some(text) = lookup(variable).filter(|v| !v.trim().is_empty()) {
                            config.$field = parse_setting(&kind, stringify!($field), variable, &text)?;
                        }
                    }
                }
            )*
            Ok(())
        }

        /// Checks each setting on its own, with the same kind the
        /// environment is read with.
        pub(super) fn check_each(config: &$config) -> Result<(), ConfigError> {
            $(
                check_setting(&typed::<$ty, _>($kind), stringify!($field), stringify!($var), &config.$field)?;
            )*
            Ok(())
        }

        /// Settings whose documented default, read with their kind, is not
        /// their default (for the test that keeps the two in step).
        #[cfg(test)]
        pub(super) fn documented_defaults_that_differ() -> Vec<&'static str> {
            let defaults = $config::default();
            let mut differ = Vec::new();
            $(
                {
                    let kind = typed::<$ty, _>($kind);
                    let actual = kind.show(&defaults.$field);
                    // A default in backticks is a value and must read back
                    // as the default; "none" means unset or empty; words
                    // ("the executable's name") are not checked.
                    let shown: &str = $shown;
                    let same = if let Some(value) = shown.strip_prefix('`').and_then(|s| s.strip_suffix('`')) {
                        kind.parse(value).is_some_and(|parsed| kind.show(&parsed) == actual)
                    } else if shown == "none" {
                        actual == "none" || actual.is_empty()
                    } else {
                        true
                    };
                    if !same {
                        differ.push(stringify!($field));
                    }
                }
            )*
            differ
        }
    };
}

pub(crate) use settings;

use super::error::ConfigError;
use super::kinds::Kind;

/// Ties a kind to the field's type, so a setting cannot name a kind of
/// another type.
pub(crate) fn typed<T, K: Kind<Value = T>>(kind: K) -> K {
    kind
}

/// Reads `text` (from `variable`) with `kind` and checks it.
pub(crate) fn parse_setting<K: Kind>(kind: &K, setting: &'static str, variable: &'static str, text: &str) -> Result<K::Value, ConfigError> {
    let shown = if kind.is_secret() { "<redacted>".to_owned() } else { text.to_owned() };
    kind.parse(text)
        .filter(|v| kind.check(v))
        .ok_or_else(|| ConfigError::new(setting, variable, shown, kind.expected()))
}

/// Checks a value `kind` holds, however it was set.
pub(crate) fn check_setting<K: Kind>(kind: &K, setting: &'static str, variable: &'static str, value: &K::Value) -> Result<(), ConfigError> {
    if kind.check(value) {
        Ok(())
    } else {
        Err(ConfigError::new(setting, variable, kind.show(value), kind.expected()))
    }
}

use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::diag::LogLevel;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

fn from_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    ConfigBuilder::from_lookup(env(pairs))?.build()
}

#[test]
fn reads_every_variable() {
    let c = from_env(&[
        ("ANOSYS_API_KEY", "secret-key"),
        ("ANOSYS_API_URL", "http://127.0.0.1:1/log"),
        ("ANOSYS_LOG_LEVEL", "debug"),
        ("ANOSYS_CAPTURE_CONTENT", "off"),
        ("ANOSYS_QUEUE_SIZE", "10"),
        ("ANOSYS_BATCH_SIZE", "5"),
        ("ANOSYS_MAX_BATCH_BYTES", "4096"),
        ("ANOSYS_FLUSH_INTERVAL_MS", "20"),
        ("ANOSYS_SINKS", "anosys, stdout"),
        ("ANOSYS_JSONL_PATH", "/tmp/x.jsonl"),
        ("ANOSYS_STARTING_INDICES", "string=200,bool=7"),
        ("OTEL_SERVICE_NAME", "svc"),
        ("OTEL_RESOURCE_ATTRIBUTES", "service.version=1.4.2, deployment.environment.name=prod%20eu,service.name=other"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=abc%3D,tenant=t1"),
    ])
    .unwrap();
    assert_eq!(
        c.resource_attributes(),
        [("service.version", "1.4.2"), ("deployment.environment.name", "prod eu"), ("service.name", "other")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    let resource = crate::resource::resource_for(&c);
    assert_eq!(resource.service_name(), Some("svc"), "OTEL_SERVICE_NAME wins");
    assert_eq!(resource.attributes["deployment.environment.name"], "prod eu");
    assert_eq!(c.api_url(), Some("http://127.0.0.1:1/log"));
    assert_eq!(c.log_level(), LogLevel::Debug);
    assert!(!c.capture_content());
    assert_eq!((c.queue_size(), c.batch_size(), c.max_batch_bytes()), (10, 5, 4096));
    assert_eq!(c.flush_interval(), Duration::from_millis(20));
    assert_eq!(*c.sinks(), SinkSelection::Only(vec![SinkKind::Anosys, SinkKind::Stdout]));
    assert_eq!(c.service_name(), Some("svc"));
    assert_eq!(c.starting_indices(), StartingIndices { string: 200, number: 3, boolean: 7 });
    assert_eq!(c.otlp_headers(), [("x-api-key", "abc="), ("tenant", "t1")].map(|(k, v)| (k.to_owned(), v.to_owned())));
    let debug = format!("{c:?}");
    assert!(!debug.contains("secret-key"), "{debug}");
}

#[test]
fn aliases_are_read_and_later_ones_win() {
    let c = from_env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"), ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")])
        .unwrap();
    assert_eq!(c.otlp_protocol(), OtlpProtocol::Grpc);
    let e = from_env(&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "udp")]).unwrap_err();
    assert_eq!((e.setting(), e.variable()), ("otlp_protocol", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"));
}

/// As in the original AnoSys SDKs: `null`, `none`, `undefined` are no
/// key; the columns' other spelling is read; anosys's own wins.
#[test]
fn encryption_variables_read_as_the_original_sdks_do() {
    for word in ["null", "None", " UNDEFINED "] {
        assert!(from_env(&[("ANOSYS_ENCRYPTION_KEY", word)]).unwrap().encryption_key().is_none(), "{word}");
    }
    let c = from_env(&[("ANOSYS_ENCRYPTION_KEY", "s3cret"), ("ANOSYS_ENCRYPTES_COLUMNS", "llm_input, cvs199")]).unwrap();
    assert_eq!(c.encryption_key().map(|k| k.expose()), Some("s3cret"));
    assert_eq!(c.encrypted_columns(), Some("llm_input, cvs199"));
    assert!(!format!("{c:?}").contains("s3cret"));
    let c = from_env(&[("ANOSYS_ENCRYPTED_COLUMNS", "a"), ("ANOSYS_ENCRYPTES_COLUMNS", "b")]).unwrap();
    assert_eq!(c.encrypted_columns(), Some("a"));
    let e = crate::sinks::anosys::encrypt::Encryption::from_config(
        &from_env(&[("ANOSYS_ENCRYPTION_KEY", "k"), ("ANOSYS_ENCRYPTED_COLUMNS", " , ")]).unwrap(),
    );
    assert!(e.is_none() || e.unwrap().columns().len() > 5);
}

#[test]
fn empty_variables_keep_the_default() {
    let c = from_env(&[("ANOSYS_QUEUE_SIZE", "  "), ("ANOSYS_API_KEY", "")]).unwrap();
    assert_eq!(c.queue_size(), 4096);
    assert!(c.api_key().is_none());
}

/// One bad value per rule, given both ways: the environment and the
/// builder reject it alike, naming the same setting and variable.
#[test]
fn every_rule_holds_on_both_paths() {
    type Set = fn(ConfigBuilder) -> ConfigBuilder;
    let cases: &[(&str, &str, &str, Set)] = &[
        ("api_url", "ANOSYS_API_URL", "not a url", |b| b.api_url("not a url")),
        ("api_url", "ANOSYS_API_URL", "ftp://host/log", |b| b.api_url("ftp://host/log")),
        ("api_key", "ANOSYS_API_KEY", "   ", |b| b.api_key(" ")),
        ("resolver_url", "ANOSYS_RESOLVER_URL", "/relative", |b| b.resolver_url("/relative")),
        ("queue_size", "ANOSYS_QUEUE_SIZE", "0", |b| b.queue_size(0)),
        ("queue_size", "ANOSYS_QUEUE_SIZE", "10000001", |b| b.queue_size(10_000_001)),
        ("batch_size", "ANOSYS_BATCH_SIZE", "0", |b| b.batch_size(0)),
        ("batch_size", "ANOSYS_BATCH_SIZE", "100001", |b| b.batch_size(100_001)),
        ("queue_max_bytes", "ANOSYS_QUEUE_MAX_BYTES", "1000", |b| b.queue_max_bytes(1000)),
        ("outbox_max_bytes", "ANOSYS_OUTBOX_MAX_BYTES", "99999999999999999", |b| b.outbox_max_bytes(99_999_999_999_999_999)),
        ("max_batch_bytes", "ANOSYS_MAX_BATCH_BYTES", "0", |b| b.max_batch_bytes(0)),
        ("max_batch_bytes", "ANOSYS_MAX_BATCH_BYTES", "1023", |b| b.max_batch_bytes(1023)),
        ("flush_interval", "ANOSYS_FLUSH_INTERVAL_MS", "0", |b| b.flush_interval(Duration::ZERO)),
        ("flush_interval", "ANOSYS_FLUSH_INTERVAL_MS", "3600001", |b| b.flush_interval(Duration::from_millis(3_600_001))),
        ("max_attribute_bytes", "ANOSYS_MAX_ATTRIBUTE_BYTES", "255", |b| b.max_attribute_bytes(255)),
        ("sinks", "ANOSYS_SINKS", ",", |b| b.sinks([])),
        ("db_path", "ANOSYS_DB", "", |b| b.db_path("")),
        ("jsonl_path", "ANOSYS_JSONL_PATH", "", |b| b.jsonl_path("")),
        ("max_in_flight", "ANOSYS_MAX_IN_FLIGHT", "0", |b| b.max_in_flight(0)),
        ("max_in_flight", "ANOSYS_MAX_IN_FLIGHT", "1025", |b| b.max_in_flight(1025)),
        ("request_timeout", "ANOSYS_TIMEOUT_MS", "0", |b| b.request_timeout(Duration::ZERO)),
        ("request_timeout", "ANOSYS_TIMEOUT_MS", "600001", |b| b.request_timeout(Duration::from_secs(601))),
        ("retry_max_elapsed", "ANOSYS_RETRY_MAX_ELAPSED_MS", "86400001", |b| {
            b.retry_max_elapsed(Duration::from_secs(86_401))
        }),
        ("shutdown_timeout", "ANOSYS_SHUTDOWN_TIMEOUT_MS", "600001", |b| b.shutdown_timeout(Duration::from_secs(601))),
        ("starting_indices", "ANOSYS_STARTING_INDICES", "number=0", |b| {
            b.starting_indices(StartingIndices { string: 100, number: 0, boolean: 1 })
        }),
        ("service_name", "OTEL_SERVICE_NAME", "  ", |b| b.service_name(" ")),
        ("resource_attributes", "OTEL_RESOURCE_ATTRIBUTES", "=x", |b| b.resource_attribute("", "x")),
        ("otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", |b| b.otlp_endpoint("collector:4318")),
        ("otlp_traces_endpoint", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "x", |b| b.otlp_traces_endpoint("x")),
        ("otlp_metrics_endpoint", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "x", |b| b.otlp_metrics_endpoint("x")),
        ("otlp_headers", "OTEL_EXPORTER_OTLP_HEADERS", "bad header=1", |b| {
            b.otlp_headers([("bad header".to_owned(), "1".to_owned())])
        }),
        ("otlp_metric_export_interval", "OTEL_METRIC_EXPORT_INTERVAL", "0", |b| {
            b.otlp_metric_export_interval(Duration::ZERO)
        }),
        ("prices", "ANOSYS_PRICES", "", |b| b.prices("")),
        ("redact", "ANOSYS_REDACT", " ", |b| b.redact(" ")),
        ("redact_patterns", "ANOSYS_REDACT_PATTERNS", " ", |b| b.redact_patterns(" ")),
        ("sample_rate", "ANOSYS_SAMPLE_RATE", "1.5", |b| b.sample_rate(1.5)),
        ("sample_rate", "ANOSYS_SAMPLE_RATE", "-0.1", |b| b.sample_rate(-0.1)),
        ("keep_slower_than", "ANOSYS_KEEP_SLOWER_THAN_MS", "86400001", |b| {
            b.keep_slower_than(Duration::from_secs(86_401))
        }),
        ("keep_costlier_than", "ANOSYS_KEEP_COSTLIER_THAN_USD", "-1", |b| b.keep_costlier_than(-1.0)),
        ("encryption_key", "ANOSYS_ENCRYPTION_KEY", "   ", |b| b.encryption_key(" ")),
        ("encrypted_columns", "ANOSYS_ENCRYPTED_COLUMNS", " ", |b| b.encrypted_columns(" ")),
    ];
    let mut covered = std::collections::HashSet::new();
    for &(setting, variable, text, set) in cases {
        // Whitespace-only text is "unset" on the environment path; give the
        // builder's equivalent only.
        if !text.trim().is_empty() {
            let e = from_env(&[(variable, text)]).expect_err(&format!("{variable}={text:?} is accepted"));
            assert_eq!((e.setting(), e.variable()), (setting, variable), "{e}");
        }
        let e = set(Config::builder()).build().expect_err(&format!("the builder accepts {setting} = {text:?}"));
        assert_eq!((e.setting(), e.variable()), (setting, variable), "{e}");
        assert!(e.to_string().contains(variable) && e.to_string().contains(setting), "{e}");
        covered.insert(setting);
    }
    // Settings whose every value of their type is valid have no rule to break.
    let unbreakable = [
        "log_level",
        "capture_content",
        "otlp_protocol",
        "otlp_metrics",
        "outbox_write_ahead",
        "hide_inputs",
        "hide_outputs",
        "hide_input_messages",
        "hide_output_messages",
        "keep_errors",
    ];
    for s in SETTINGS {
        assert!(covered.contains(s.name) || unbreakable.contains(&s.name), "no rule test for {}", s.name);
    }
}

#[test]
fn edges_of_every_range_are_accepted_both_ways() {
    let c = from_env(&[
        ("ANOSYS_QUEUE_SIZE", "1"),
        ("ANOSYS_BATCH_SIZE", "100000"),
        ("ANOSYS_MAX_IN_FLIGHT", "1024"),
        ("ANOSYS_MAX_ATTRIBUTE_BYTES", "256"),
        ("ANOSYS_RETRY_MAX_ELAPSED_MS", "0"),
        ("ANOSYS_SHUTDOWN_TIMEOUT_MS", "0"),
    ])
    .unwrap();
    let b = Config::builder()
        .queue_size(1)
        .batch_size(100_000)
        .max_in_flight(1024)
        .max_attribute_bytes(256)
        .retry_max_elapsed(Duration::ZERO)
        .shutdown_timeout(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(format!("{c:?}"), format!("{b:?}"));
}

#[test]
fn errors_say_what_is_accepted_and_hide_secrets() {
    for (var, val, expect) in [
        ("ANOSYS_QUEUE_SIZE", "0", "from 1"),
        ("ANOSYS_CAPTURE_CONTENT", "maybe", "true or false"),
        ("ANOSYS_API_URL", "not a url", "http://"),
        ("ANOSYS_SINKS", "kafka", "jsonl"),
        ("ANOSYS_LOG_LEVEL", "loud", "debug"),
        ("ANOSYS_FLUSH_INTERVAL_MS", "-1", "milliseconds"),
        ("OTEL_RESOURCE_ATTRIBUTES", "service.version", "key=value"),
        ("OTEL_METRICS_EXPORTER", "statsd", "otlp or none"),
    ] {
        let e = from_env(&[(var, val)]).unwrap_err();
        assert_eq!(e.variable(), var);
        assert!(e.to_string().contains(expect), "{e}");
    }
    let e = from_env(&[("ANOSYS_SINKS", "kafka")]).unwrap_err();
    assert!(e.expected().contains("otlp"), "the sink list names otlp: {e}");
    let e = from_env(&[("ANOSYS_SINKS", "anosys")]).unwrap_err();
    assert!(e.to_string().contains("ANOSYS_API_KEY"), "{e}");
    let e = from_env(&[("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20s3cret,=x")]).unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");
    let e = Config::builder().otlp_headers([("bad key".into(), "s3cret".into())]).build().unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");
}

#[test]
fn reads_the_otlp_metrics_variables() {
    let c = Config::default();
    assert!(c.otlp_metrics());
    assert_eq!(c.otlp_metric_export_interval(), Duration::from_secs(60));
    let c = from_env(&[
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://127.0.0.1:4318/custom/metrics"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "250"),
        ("OTEL_METRICS_EXPORTER", "none"),
    ])
    .unwrap();
    assert_eq!(c.otlp_metrics_endpoint(), Some("http://127.0.0.1:4318/custom/metrics"));
    assert_eq!(c.otlp_metric_export_interval(), Duration::from_millis(250));
    assert!(!c.otlp_metrics());
    for (value, on) in [("otlp", true), ("OTLP", true), ("prometheus", false), ("console, otlp", true)] {
        assert_eq!(from_env(&[("OTEL_METRICS_EXPORTER", value)]).unwrap().otlp_metrics(), on, "{value}");
    }
}

#[test]
fn auto_sinks_follow_credentials() {
    assert_eq!(Config::default().resolved_sinks(), vec![SinkKind::embedded()]);
    let c = Config::builder().api_key("k").build().unwrap();
    assert_eq!(c.resolved_sinks(), vec![SinkKind::Anosys]);
}

#[test]
fn documented_defaults_are_the_defaults() {
    assert_eq!(settings::documented_defaults_that_differ(), Vec::<&str>::new());
    assert!(Config::default().validate().is_ok());
}

#[test]
fn every_variable_has_a_constant_and_one_setting() {
    let mut seen = std::collections::HashSet::new();
    for s in SETTINGS {
        for v in std::iter::once(&s.variable).chain(s.aliases) {
            assert!(seen.insert(*v), "{v} is read by two settings");
        }
    }
    assert_eq!(env::ANOSYS_API_KEY, "ANOSYS_API_KEY");
    assert_eq!(env::OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
}

/// The README's table of settings is the generated one.
#[test]
fn readme_table_is_generated_from_the_settings() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (start, end) = ("<!-- settings-table: start -->\n", "<!-- settings-table: end -->");
    let from = readme.find(start).expect("README has the settings-table markers") + start.len();
    let to = readme[from..].find(end).expect("README has the end marker") + from;
    let expected = markdown_table();
    if readme[from..to] != expected {
        panic!(
            "README.md's settings table differs from the settings; replace the lines between the markers with:\n{expected}"
        );
    }
}

//! `anosys prices`: listing the known prices, looking a model up the way
//! pricing resolves it, price files from `--prices` and `ANOSYS_PRICES`,
//! and a clear failure for an unknown model or a bad file.

mod command;

use std::path::Path;

use command::{anosys, stdout};
use predicates::prelude::*;

/// `anosys prices …` with a clean environment (no ANOSYS_PRICES either).
fn prices(dir: &Path) -> assert_cmd::Command {
    let mut cmd = anosys(&dir.join("anosys.db"));
    cmd.env_remove("ANOSYS_PRICES").arg("--color").arg("never").arg("prices");
    cmd
}

#[test]
fn the_listing_names_the_source_and_filters_by_substring() {
    let dir = tempfile::tempdir().unwrap();
    let all = stdout(&mut prices(dir.path()));
    assert!(all.contains("litellm 1.110.2 model_prices_and_context_window.json"), "{}", &all[..200]);
    assert!(all.contains("models)"));
    let some = stdout(prices(dir.path()).args(["--filter", "GPT-4o-MINI"]));
    assert!(some.contains("gpt-4o-mini-2024-07-18"));
    assert!(!some.contains("claude"), "filtered");
    assert!(some
        .lines()
        .any(|l| l.starts_with("gpt-4o-mini ") && l.contains("$0.15") && l.contains("$0.075") && l.contains("$0.6")));
    let none = stdout(prices(dir.path()).args(["--filter", "no-such-thing"]));
    assert!(none.contains("no model name contains"));
}

#[test]
fn a_lookup_says_which_entry_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = stdout(prices(dir.path()).arg("openai/gpt-5.4-2031-01-01"));
    assert!(out.contains("Model gpt-5.4"), "{out}");
    assert!(
        out.contains("provider prefix \"openai/\" removed") && out.contains("date suffix \"-2031-01-01\" removed"),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("standard, above 272k tokens") && l.contains("$22.5")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("flex ") && l.contains("$1.25")), "{out}");

    let ft = stdout(prices(dir.path()).arg("ft:gpt-4o-mini:acme::x1"));
    assert!(ft.contains("Model ft:gpt-4o-mini-2024-07-18") && ft.contains("fine-tune"), "{ft}");

    let json: serde_json::Value = serde_json::from_str(&stdout(prices(dir.path()).args(["GPT-4o", "--json"]))).unwrap();
    assert_eq!(json["model"], "gpt-4o");
    assert_eq!(json["why"], "case ignored");
    assert_eq!(json["rates"][0]["input_per_million"], 2.5);
}

#[test]
fn an_unknown_model_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    prices(dir.path()).arg("my-own-model").assert().failure().code(1).stderr(
        predicate::str::contains("no price known for model \"my-own-model\"").and(predicate::str::contains("--prices")),
    );
}

#[test]
fn a_price_file_adds_and_replaces_models_from_the_flag_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("negotiated.json");
    std::fs::write(
        &file,
        r#"{"acme-ft-1": {"input_cost_per_token": 3e-6, "output_cost_per_token": 6e-6, "mode": "chat"},
            "gpt-4o": {"input_cost_per_token": 1e-6, "output_cost_per_token": 4e-6}}"#,
    )
    .unwrap();
    let out = stdout(prices(dir.path()).arg("acme-ft-1").arg("--prices").arg(&file));
    assert!(out.contains("Model acme-ft-1") && out.contains("override") && out.contains("negotiated.json"), "{out}");
    let env = stdout(prices(dir.path()).env("ANOSYS_PRICES", &file).arg("gpt-4o"));
    assert!(env.lines().any(|l| l.starts_with("standard") && l.contains("$1") && l.contains("$4")), "{env}");
    assert!(!env.contains("priority"), "the entry is replaced whole: {env}");
    let listing = stdout(prices(dir.path()).env("ANOSYS_PRICES", &file).args(["--filter", "acme"]));
    assert!(listing.contains("Overrides") && listing.contains("acme-ft-1"), "{listing}");
}

#[test]
fn a_bad_price_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.json");
    std::fs::write(&file, r#"{"acme": {"input_cost_per_token": "#).unwrap();
    prices(dir.path())
        .env("ANOSYS_PRICES", &file)
        .arg("gpt-4o")
        .assert()
        .failure()
        .stderr(predicate::str::contains("broken.json").and(predicate::str::contains("ANOSYS_PRICES")));
    std::fs::write(&file, r#"{"acme": {"input_cost_per_token": -1}}"#).unwrap();
    prices(dir.path())
        .arg("--prices")
        .arg(&file)
        .assert()
        .failure()
        .stderr(predicate::str::contains("broken.json").and(predicate::str::contains("\"acme\"")));
}

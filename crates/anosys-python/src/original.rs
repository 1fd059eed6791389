//! The original AnoSys SDK's helper functions (`anosys-sdk-core` 1.0.14:
//! column encryption, the key resolver, the key mapping), answered by the
//! engine's own code so that Python gives what the engine sends.

use std::time::Duration;

use anosys::config::{ApiKey, ConfigBuilder};
use anosys::sinks::anosys::{encrypt, mapping, resolve_log_url};
use anosys::Config;
use pyo3::exceptions::{PyConnectionError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

/// The 32 bytes of a key, or a `ValueError` saying what a key is.
fn key_of(key: &[u8]) -> PyResult<[u8; 32]> {
    key.try_into().map_err(|_| {
        PyValueError::new_err(format!(
            "an encryption key is 32 bytes (derive_256_bit_key gives one), not {}",
            key.len()
        ))
    })
}

/// The configuration the engine reads from the variables `names` of the
/// environment, and from no other (an unrelated invalid variable does not
/// stop these).
fn config_of(names: &[&str]) -> PyResult<Config> {
    ConfigBuilder::from_lookup(|name| if names.contains(&name) { std::env::var(name).ok() } else { None })
        .and_then(ConfigBuilder::build)
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// SHA-256 of the passphrase: the AES-256 key.
#[pyfunction]
fn derive_256_bit_key<'py>(py: Python<'py>, passphrase: &str) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &encrypt::derive_key(passphrase))
}

/// AES-256-CBC (zero IV, PKCS#7) of the text, Base64, without `enc:`.
#[pyfunction(name = "encrypt")]
fn encrypt_text(text: &str, key: &[u8]) -> PyResult<String> {
    Ok(encrypt::encrypt(text, &key_of(key)?))
}

/// The text of an encrypted value, with or without `enc:`.
#[pyfunction(name = "decrypt")]
fn decrypt_text(value: &str, key: &[u8]) -> PyResult<String> {
    encrypt::decrypt(value, &key_of(key)?).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// `(passphrase or None, columns)` as the AnoSys sink reads them from
/// `ANOSYS_ENCRYPTION_KEY` and `ANOSYS_ENCRYPTED_COLUMNS` (or
/// `ANOSYS_ENCRYPTES_COLUMNS`).
#[pyfunction]
fn encryption_settings() -> PyResult<(Option<String>, Vec<String>)> {
    let config = config_of(&["ANOSYS_ENCRYPTION_KEY", "ANOSYS_ENCRYPTED_COLUMNS", "ANOSYS_ENCRYPTES_COLUMNS"])?;
    let key = config.encryption_key().map(|k| k.expose().to_owned());
    Ok((key, encrypt::columns_of(&config)))
}

/// The resolver the engine asks (`ANOSYS_RESOLVER_URL`, else the default).
#[pyfunction]
fn resolver_url() -> PyResult<String> {
    Ok(config_of(&["ANOSYS_RESOLVER_URL"])?.resolver_url().to_owned())
}

/// The log URL for `key`, asked of `resolver` now (the GIL released); a
/// `ConnectionError` that never holds the key otherwise.
#[pyfunction]
fn resolve_api_key(py: Python<'_>, key: &str, resolver: &str, timeout: f64) -> PyResult<String> {
    let key = ApiKey::new(key);
    let timeout = Duration::try_from_secs_f64(timeout).unwrap_or(Duration::from_secs(30)).max(Duration::from_millis(1));
    py.detach(|| resolve_log_url(resolver, &key, timeout)).map_err(PyConnectionError::new_err)
}

/// Adds these to the module, with the constants.
pub(crate) fn add(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(derive_256_bit_key, m)?)?;
    m.add_function(wrap_pyfunction!(encrypt_text, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt_text, m)?)?;
    m.add_function(wrap_pyfunction!(encryption_settings, m)?)?;
    m.add_function(wrap_pyfunction!(resolver_url, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_api_key, m)?)?;
    m.add("ENCRYPTION_PREFIX", encrypt::ENCRYPTION_PREFIX)?;
    m.add("DEFAULT_RESOLVER_URL", anosys::config::DEFAULT_RESOLVER_URL)?;
    m.add("DEFAULT_ENCRYPTED_COLUMNS", encrypt::DEFAULT_ENCRYPTED_COLUMNS.to_vec())?;
    let mapping_dict = PyDict::new(m.py());
    for (key, column) in mapping::FIXED_SLOTS {
        mapping_dict.set_item(key, column)?;
    }
    m.add("KEY_MAPPING", mapping_dict)?;
    Ok(())
}

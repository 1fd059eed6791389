//! Column encryption for the AnoSys backend (`ANOSYS_ENCRYPTION_KEY`), as
//! the original AnoSys SDKs do it, so that a backend set up to decrypt
//! their columns reads ours.
//!
//! When a passphrase is set, the text of each chosen column (by default the
//! content: `llm_input`, `llm_output`, the GenAI messages, `raw`, the
//! caller and user context, …) is replaced, before the body leaves the
//! process or is kept in the outbox, by `enc:` and the Base64 of its UTF-8
//! bytes encrypted with AES-256-CBC (PKCS#7 padding, a zero IV) under the
//! SHA-256 of the passphrase.
//!
//! That is the backend's scheme, not a choice made here: it keeps content
//! from whoever carries or stores the bodies without the passphrase, but
//! with a fixed IV equal texts give equal ciphertexts, and nothing
//! authenticates them.
//!
//! ```
//! use anosys::sinks::anosys::encrypt::{decrypt, derive_key, encrypt};
//! let key = derive_key("correct horse battery staple");
//! let sealed = encrypt("Say this is a test", &key);
//! assert_eq!(sealed, "JIaFETQkUbxCDy657LYhNMS8UoEp9vMBDJNkdmEmMXk=");
//! assert_eq!(decrypt(&format!("enc:{sealed}"), &key).as_deref(), Ok("Say this is a test"));
//! ```

use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aes::Aes256;
use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::diag::{self, LogLevel};
use crate::Config;

/// What marks an encrypted value.
pub const ENCRYPTION_PREFIX: &str = "enc:";

/// The columns encrypted when `ANOSYS_ENCRYPTED_COLUMNS` does not say: the
/// original SDKs' list (content columns, and the slots they use for the
/// caller, user context, prompts and tool results).
pub const DEFAULT_ENCRYPTED_COLUMNS: &[&str] = &[
    "llm_input",
    "llm_output",
    "gen_ai_input_messages",
    "gen_ai_output_messages",
    "cvs199",
    "gen_ai_system_instructions",
    "llm_system",
    "user_prompt",
    "userPrompt",
    "assistant_text",
    "assistantText",
    "cvs4",
    "cvs5",
    "last_prompt",
    "cvs24",
    "tool_use_result",
    "cvs26",
    "cvs65",
    "task_description",
    "summary_content",
];

/// A 256-bit key from a passphrase: its SHA-256.
pub fn derive_key(passphrase: &str) -> [u8; 32] {
    let digest = Sha256::digest(passphrase.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(&digest);
    key
}

/// `text` encrypted (AES-256-CBC, zero IV, PKCS#7), in standard Base64,
/// without the `enc:` prefix.
pub fn encrypt(text: &str, key: &[u8; 32]) -> String {
    let cipher = Aes256::new(&Array::from(*key));
    let bytes = text.as_bytes();
    // PKCS#7: 1 to 16 bytes of the padding's length (a whole block when
    // the text fills its last one).
    let pad = 16 - bytes.len() % 16;
    let mut out = Vec::with_capacity(bytes.len() + pad);
    out.extend_from_slice(bytes);
    out.resize(bytes.len() + pad, pad as u8);
    let mut chain = [0u8; 16];
    for chunk in out.chunks_exact_mut(16) {
        let mut block = [0u8; 16];
        for ((b, p), c) in block.iter_mut().zip(chunk.iter()).zip(chain) {
            *b = p ^ c;
        }
        let mut block = Array::from(block);
        cipher.encrypt_block(&mut block);
        chunk.copy_from_slice(&block);
        chain.copy_from_slice(&block);
    }
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// Why a value could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// Not Base64.
    #[error("the value is not Base64")]
    NotBase64,
    /// Not a whole number of 16-byte blocks.
    #[error("the value is not a whole number of AES blocks")]
    NotBlocks,
    /// The padding is wrong: another key, or not an encrypted value.
    #[error("the padding is wrong (another key?)")]
    BadPadding,
    /// The text is not UTF-8: another key, or not an encrypted value.
    #[error("the decrypted bytes are not UTF-8 (another key?)")]
    NotUtf8,
}

/// The text of an [`encrypt`]ed value, with or without its `enc:` prefix.
pub fn decrypt(value: &str, key: &[u8; 32]) -> Result<String, DecryptError> {
    let raw = value.strip_prefix(ENCRYPTION_PREFIX).unwrap_or(value);
    let mut bytes = base64::engine::general_purpose::STANDARD.decode(raw).map_err(|_| DecryptError::NotBase64)?;
    if bytes.is_empty() || bytes.len() % 16 != 0 {
        return Err(DecryptError::NotBlocks);
    }
    let cipher = Aes256::new(&Array::from(*key));
    let mut chain = [0u8; 16];
    for chunk in bytes.chunks_mut(16) {
        let mut next = [0u8; 16];
        next.copy_from_slice(chunk);
        let mut block = Array::from(next);
        cipher.decrypt_block(&mut block);
        for ((out, b), c) in chunk.iter_mut().zip(block.iter()).zip(chain) {
            *out = b ^ c;
        }
        chain = next;
    }
    let pad = usize::from(*bytes.last().unwrap_or(&0));
    if pad == 0 || pad > 16 || bytes[bytes.len() - pad..].iter().any(|&b| usize::from(b) != pad) {
        return Err(DecryptError::BadPadding);
    }
    bytes.truncate(bytes.len() - pad);
    String::from_utf8(bytes).map_err(|_| DecryptError::NotUtf8)
}

/// The columns `config` asks to encrypt (`encrypted_columns`, a
/// comma-separated list), else [`DEFAULT_ENCRYPTED_COLUMNS`]; whether or
/// not a key is set.
///
/// ```
/// use anosys::sinks::anosys::encrypt::{columns_of, DEFAULT_ENCRYPTED_COLUMNS};
///
/// let config = anosys::Config::builder().encrypted_columns(" llm_input, cvs199 ,").build()?;
/// assert_eq!(columns_of(&config), ["llm_input", "cvs199"]);
/// let default = anosys::Config::builder().build()?;
/// assert_eq!(columns_of(&default), DEFAULT_ENCRYPTED_COLUMNS);
/// # Ok::<(), anosys::ConfigError>(())
/// ```
pub fn columns_of(config: &Config) -> Vec<String> {
    let columns: Vec<String> = match config.encrypted_columns() {
        Some(list) => list.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect(),
        None => Vec::new(),
    };
    if columns.is_empty() {
        return DEFAULT_ENCRYPTED_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    }
    columns
}

/// The AnoSys sink's column encryption: the key and the columns.
pub struct Encryption {
    key: [u8; 32],
    columns: Vec<String>,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryption").field("key", &"<redacted>").field("columns", &self.columns).finish()
    }
}

impl Encryption {
    /// Encryption of `columns` under `passphrase`.
    pub fn new(passphrase: &str, columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Encryption { key: derive_key(passphrase), columns: columns.into_iter().map(Into::into).collect() }
    }

    /// What `config` asks for (`encryption_key`, `encrypted_columns`), if
    /// a passphrase is set.
    pub fn from_config(config: &Config) -> Option<Self> {
        let passphrase = config.encryption_key()?;
        Some(Encryption::new(passphrase.expose(), columns_of(config)))
    }

    /// The columns encrypted.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Encrypts the chosen columns of a body: a string value becomes
    /// `enc:…` (one already so is left alone), other values are left as
    /// they are (said once), as the original SDKs do.
    pub fn apply(&self, body: &mut Map<String, Value>) {
        for column in &self.columns {
            match body.get_mut(column.as_str()) {
                None | Some(Value::Null) => {}
                Some(Value::String(text)) => {
                    if !text.starts_with(ENCRYPTION_PREFIX) {
                        *text = format!("{ENCRYPTION_PREFIX}{}", encrypt(text, &self.key));
                    }
                }
                Some(_) => diag::once("encrypt-non-string", LogLevel::Warn, || {
                    format!("the column {column} holds a value that is not text; it is sent unencrypted (ANOSYS_ENCRYPTED_COLUMNS)")
                }),
            }
        }
    }

    /// [`apply`](Self::apply) to a body's head as the encoder writes it
    /// (the object up to `"otel_schema_url":`, the mapping to follow).
    /// A head that does not parse (the encoder never writes one) is left
    /// as it is, and said once: its columns go unencrypted.
    pub(crate) fn apply_to_head(&self, head: &mut Vec<u8>) {
        const KEY: &[u8] = b"\"otel_schema_url\":";
        let Some(open) = head.len().checked_sub(KEY.len()).filter(|&i| &head[i..] == KEY) else { return };
        // `{…,"otel_schema_url":` to `{…}`.
        let mut object = head[..open].to_vec();
        if object.last() == Some(&b',') {
            object.pop();
        }
        object.push(b'}');
        let Ok(mut body) = serde_json::from_slice::<Map<String, Value>>(&object) else {
            diag::once("encrypt-unreadable-body", LogLevel::Error, || {
                "a body could not be read back to encrypt its columns; it is sent as it is (please report this)".into()
            });
            return;
        };
        if !self.columns.iter().any(|c| body.contains_key(c.as_str())) {
            return;
        }
        self.apply(&mut body);
        let Ok(mut rewritten) = serde_json::to_vec(&body) else { return };
        rewritten.pop(); // the closing brace
        rewritten.extend_from_slice(if body.is_empty() { &b""[..] } else { &b","[..] });
        rewritten.extend_from_slice(KEY);
        *head = rewritten;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers from the original SDK (`anosys_sdk_core.encryption`
    /// 1.0.14, with the `cryptography` package).
    #[test]
    fn matches_the_original_sdk() {
        let key = derive_key("correct horse battery staple");
        assert_eq!(
            key.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "c4bbcb1fbec99d65bf59d85c8cb62ee2db963f0fe106f483d9afa73bd4e39a8a"
        );
        for (text, sealed) in [
            ("Say this is a test", "JIaFETQkUbxCDy657LYhNMS8UoEp9vMBDJNkdmEmMXk="),
            ("", "wUOd3BMET5J6Nz2/TkG6IA=="),
            ("exactly sixteen!", "JgRUFF0Fk+QPtnquj73vGpC6WNvbvFUCgxV0eJW+4CQ="),
            ("héllo 😀 wörld", "HQRrrfJaZmEXWl+ZHcasymKHSZlPoPxoSJwC8BX0ezg="),
        ] {
            assert_eq!(encrypt(text, &key), sealed, "{text:?}");
            assert_eq!(decrypt(sealed, &key).as_deref(), Ok(text));
            assert_eq!(decrypt(&format!("enc:{sealed}"), &key).as_deref(), Ok(text));
        }
    }

    #[test]
    fn round_trips_every_length_and_refuses_garbage() {
        let key = derive_key("k");
        for n in 0..70 {
            let text: String = "aé😀".chars().cycle().take(n).collect();
            assert_eq!(decrypt(&encrypt(&text, &key), &key), Ok(text));
        }
        assert_eq!(decrypt("not base64!", &key), Err(DecryptError::NotBase64));
        assert_eq!(decrypt("AAAA", &key), Err(DecryptError::NotBlocks));
        assert_eq!(decrypt("", &key), Err(DecryptError::NotBlocks));
        let other = derive_key("another");
        assert!(decrypt(&encrypt("a secret prompt", &key), &other).is_err());
    }

    #[test]
    fn the_chosen_text_columns_of_a_head_are_encrypted() {
        let e = Encryption::new("pass", ["llm_input", "cvs199", "cvn3", "absent"]);
        let mut head = br#"{"name":"chat","llm_input":"[{\"role\":\"user\"}]","cvs199":"enc:already","cvn3":4,"llm_output":"kept","otel_schema_url":"#.to_vec();
        e.apply_to_head(&mut head);
        assert!(head.ends_with(br#","otel_schema_url":"#), "{}", String::from_utf8_lossy(&head));
        head.extend_from_slice(b"\"{}\"}");
        let body: Map<String, Value> = serde_json::from_slice(&head).unwrap();
        let sealed = body["llm_input"].as_str().unwrap();
        assert_eq!(decrypt(sealed, &e.key).unwrap(), r#"[{"role":"user"}]"#);
        assert_eq!(body["cvs199"], "enc:already");
        assert_eq!(body["cvn3"], 4);
        assert_eq!(body["llm_output"], "kept");
        assert_eq!(body["name"], "chat");
    }
}

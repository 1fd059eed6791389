//! Which key names hold secrets (`password`, `api_key`, `accessToken`,
//! `Set-Cookie`, …) and which only look like it (`max_tokens`,
//! `gen_ai.usage.input_tokens`, `cache_key`, …).

/// How a secret-named key's value is read in plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyClass {
    /// Passwords, secrets, API keys: any value of 3 characters or more.
    Password,
    /// Tokens: values of 8 characters or more (`token: 512` is a count).
    Token,
    /// `Authorization`, `Cookie`, `Set-Cookie`: the rest of the line.
    Header,
}

/// Whether the name holds (in any case) one of the words every secret name
/// contains: `pass`, `pwd`, `secret`, `token`, `key`, `auth`, `cookie`,
/// `cred`. One pass, most names fail at once.
fn has_hint(bytes: &[u8]) -> bool {
    let starts = |rest: &[u8], word: &[u8]| rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word);
    (0..bytes.len()).any(|i| {
        let rest = &bytes[i..];
        match bytes[i] | 0x20 {
            b'p' => starts(rest, b"pass") || starts(rest, b"pwd"),
            b's' => starts(rest, b"secret"),
            b't' => starts(rest, b"token"),
            b'k' => starts(rest, b"key"),
            b'a' => starts(rest, b"auth"),
            b'c' => starts(rest, b"cookie") || starts(rest, b"cred"),
            _ => false,
        }
    })
}

/// What [`classify`] keeps of a name's words (as ranges of its buffer).
#[derive(Default)]
struct Words {
    count: usize,
    usage: bool,
    last: Option<(usize, usize)>,
    before: Option<(usize, usize)>,
}

impl Words {
    fn close(&mut self, low: &[u8], from: usize, to: usize) {
        self.count += 1;
        self.usage |= &low[from..to] == b"usage";
        self.before = self.last.replace((from, to));
    }
}

/// [`classify`] of a name that is text of the program (an attribute key
/// given as a `&'static str`), remembered by its address: the same few
/// dozen names come with every record, and some (`gen_ai.usage.*_tokens`,
/// `gen_ai.request.max_tokens`) pass the quick test and are read word by
/// word each time. At most 4,096 addresses are kept a thread; past that
/// names are classified again each time.
pub(crate) fn classify_static(name: &'static str) -> Option<KeyClass> {
    type Known = std::collections::HashMap<(usize, usize), Option<KeyClass>, foldhash::fast::RandomState>;
    thread_local! {
        static KNOWN: std::cell::RefCell<Known> = std::cell::RefCell::new(Known::default());
    }
    const KEPT_MAX: usize = 4096;
    let address = (name.as_ptr() as usize, name.len());
    KNOWN.with_borrow_mut(|known| {
        if let Some(class) = known.get(&address) {
            return *class;
        }
        let class = classify(name);
        if known.len() < KEPT_MAX {
            known.insert(address, class);
        }
        class
    })
}

/// The class of a secret-named key, `None` for every other key.
///
/// The name is split into lower-case words on anything but letters and
/// digits and at camelCase humps (`xApiKey` → `x`, `api`, `key`); the last
/// word decides:
/// - `password`, `passwd`, `passphrase`, `pwd`, `secret`, `secrets`,
///   `credential`, `credentials` → secret;
/// - `token` → secret unless the word before says it is a count or a page
///   cursor (`max_token`, `next_token`, `page_token`); `tokens` never;
/// - `key` → secret after `api`, `private`, `secret`, `access`, `signing`,
///   `encryption`, `client`, `master`, `auth`, `session`, `license`,
///   `account`, `subscription`, `service`, `app`, `webhook`, `ssh`, `admin`
///   (not `cache_key`, `primary_key`, `sort_key`);
/// - `apikey`, `accesskey`, `secretkey`, `privatekey`, `apitoken`,
///   `authtoken`, `accesstoken`, `refreshtoken`, `clientsecret` (names
///   written without separators) → secret;
/// - a word ending in `password`, `passwd`, `secret` or `apikey`
///   (`PGPASSWORD`) → secret;
/// - `authorization`, `cookie`, `cookies` → header; and the whole name `auth`;
/// - any name with a `usage` word (`gen_ai.usage.*`) → never.
pub(crate) fn classify(name: &str) -> Option<KeyClass> {
    let bytes = name.as_bytes();
    if bytes.len() < 3 || bytes.len() > 128 || !has_hint(bytes) {
        return None;
    }
    // The name's words, lower-cased into a buffer on the stack (no
    // allocation: this runs for every attribute of every record). Only
    // what the rules below read is kept: the last two words, how many
    // there are, and whether one is `usage`.
    let mut low = [0u8; 128];
    let mut words = Words::default();
    let (mut len, mut start, mut previous) = (0, 0, 0u8);
    for &b in bytes {
        if b.is_ascii_alphanumeric() {
            let hump = b.is_ascii_uppercase() && (previous.is_ascii_lowercase() || previous.is_ascii_digit());
            if hump && len > start {
                words.close(&low, start, len);
                start = len;
            }
            low[len] = b.to_ascii_lowercase();
            len += 1;
        } else if len > start {
            words.close(&low, start, len);
            start = len;
        }
        previous = b;
    }
    if len > start {
        words.close(&low, start, len);
    }
    if words.usage {
        return None;
    }
    let word = |(from, to): (usize, usize)| std::str::from_utf8(&low[from..to]).unwrap_or_default();
    let last = word(words.last?);
    let before = words.before.map(word);
    match last {
        "password" | "passwd" | "passphrase" | "pwd" | "secret" | "secrets" | "credential" | "credentials" => {
            Some(KeyClass::Password)
        }
        "apikey" | "accesskey" | "secretkey" | "privatekey" | "clientsecret" => Some(KeyClass::Password),
        _ if ["password", "passwd", "secret", "apikey"].iter().any(|end| last.ends_with(end)) => {
            Some(KeyClass::Password)
        }
        "apitoken" | "authtoken" | "accesstoken" | "refreshtoken" => Some(KeyClass::Token),
        "token" => match before {
            Some(
                "max" | "min" | "num" | "total" | "input" | "output" | "prompt" | "completion" | "cached" | "reasoning"
                | "count" | "next" | "page" | "continuation" | "cursor" | "sync" | "start" | "end" | "stop" | "special"
                | "eos" | "bos" | "pad" | "unk" | "first" | "last",
            ) => None,
            _ => Some(KeyClass::Token),
        },
        "key" => match before {
            Some(
                "api" | "private" | "secret" | "access" | "signing" | "encryption" | "client" | "master" | "auth"
                | "session" | "license" | "account" | "subscription" | "service" | "app" | "webhook" | "ssh" | "admin",
            ) => Some(KeyClass::Password),
            _ => None,
        },
        "authorization" | "cookie" | "cookies" => Some(KeyClass::Header),
        "auth" if words.count == 1 => Some(KeyClass::Password),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_recognised_in_any_spelling() {
        for name in [
            "password",
            "Password",
            "PASSWORD",
            "db_password",
            "db.password",
            "userPassword",
            "passwd",
            "pwd",
            "passphrase",
            "secret",
            "client_secret",
            "clientSecret",
            "CLIENT_SECRET",
            "api_key",
            "apikey",
            "api-key",
            "apiKey",
            "APIKey",
            "X-Api-Key",
            "x_api_key",
            "OPENAI_API_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "PGPASSWORD",
            "OPENAIAPIKEY",
            "private_key",
            "privateKey",
            "secret_key",
            "token",
            "access_token",
            "accessToken",
            "refresh_token",
            "id_token",
            "auth_token",
            "x-auth-token",
            "csrf_token",
            "authorization",
            "Authorization",
            "proxy-authorization",
            "http.request.header.authorization",
            "cookie",
            "set-cookie",
            "Set-Cookie",
            "credentials",
            "auth",
        ] {
            assert!(classify(name).is_some(), "{name} should be a secret name");
        }
    }

    #[test]
    fn innocuous_names_are_not_secrets() {
        for name in [
            "max_tokens",
            "total_tokens",
            "input_tokens",
            "output_tokens",
            "prompt_tokens",
            "completion_tokens",
            "token_count",
            "tokens",
            "max_token",
            "next_token",
            "page_token",
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.output_tokens",
            "gen_ai.request.max_tokens",
            "max_completion_tokens",
            "token_type",
            "tokenizer",
            "key",
            "cache_key",
            "primary_key",
            "sort_key",
            "idempotency_key",
            "keyboard",
            "monkey",
            "password_hint",
            "password_length",
            "secret_name",
            "author",
            "authority",
            "authentication_method",
            "passenger",
            "compass",
            "role",
            "content",
            "",
        ] {
            assert_eq!(classify(name), None, "{name} should not be a secret name");
        }
    }

    #[test]
    fn classes_decide_how_text_values_are_read() {
        assert_eq!(classify("password"), Some(KeyClass::Password));
        assert_eq!(classify("access_token"), Some(KeyClass::Token));
        assert_eq!(classify("Set-Cookie"), Some(KeyClass::Header));
    }

    #[test]
    fn names_of_the_program_are_classified_as_any_other_and_remembered() {
        let names: [&'static str; 8] =
            ["password", "access_token", "Set-Cookie", "gen_ai.usage.input_tokens", "api_key", "max_tokens", "role", "x"];
        for _ in 0..3 {
            for name in names {
                assert_eq!(classify_static(name), classify(name), "{name}");
            }
        }
        // The same text at another address is looked at afresh.
        let leaked: &'static str = Box::leak(String::from("password").into_boxed_str());
        assert_eq!(classify_static(leaked), Some(KeyClass::Password));
        let other: &'static str = Box::leak(String::from("passenger").into_boxed_str());
        assert_eq!(classify_static(other), None);
    }
}

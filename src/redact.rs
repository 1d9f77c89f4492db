//! Hides the secrets in URLs before they reach a log line, an error or a command's output
//! (docs/design.md "Trust boundaries"): passwords and tokens in `user:password@`, and the values of
//! query parameters that carry credentials. Plans' download URLs and `info`, and the node's RPC
//! address, are shown only through [`redact`].

/// Query parameters whose value is a secret (compared case-insensitively): bearer tokens, API
/// keys, passwords and the signatures of pre-signed S3, GCS and Azure URLs. `checksum` and
/// `archive` stay visible: they are what an operator checks.
const SECRET_KEYS: &[&str] = &[
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth",
    "authorization",
    "api_key",
    "apikey",
    "api-key",
    "key",
    "secret",
    "client_secret",
    "password",
    "passwd",
    "pwd",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
];

/// What replaces a secret.
const HIDDEN: &str = "***";

/// Where a URL (or a part of one) ends inside free text such as a plan's `info` JSON.
fn ends_url(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | '\\')
}

/// `text` with the credentials of every URL in it hidden: the password of `user:password@`
/// (or the whole user part when it has no password: it is then usually a token) and the values
/// of the [`SECRET_KEYS`] query parameters. Works on one URL and on text holding several (a
/// plan's `info`). This is the one way a URL reaches a log line, an error or a command's output.
#[must_use]
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(&redact_query(before));
        let end = after
            .find(|c: char| ends_url(c) || matches!(c, '/' | '?' | '#'))
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) => {
                let user = &authority[..at];
                if let Some((name, _)) = user.split_once(':') {
                    out.push_str(name);
                    out.push(':');
                }
                out.push_str(HIDDEN);
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(&redact_query(rest));
    out
}

/// Hides the values of [`SECRET_KEYS`] parameters that follow a `?` or `&` in `text`.
fn redact_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['?', '&']) {
        let (before, after) = rest.split_at(at + 1);
        out.push_str(before);
        let key_end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .unwrap_or(after.len());
        let key = &after[..key_end];
        let secret = after[key_end..].starts_with('=')
            && SECRET_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key));
        if secret {
            let value = &after[key_end + 1..];
            let value_end = value
                .find(|c: char| ends_url(c) || matches!(c, '&' | '#'))
                .unwrap_or(value.len());
            out.push_str(key);
            out.push('=');
            out.push_str(HIDDEN);
            rest = &value[value_end..];
        } else {
            out.push_str(key);
            rest = &after[key_end..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_and_keeps_the_rest() {
        let cases = [
            (
                "http://alice:s3cr3t@host:8080/simd?checksum=sha256:ab",
                "http://alice:***@host:8080/simd?checksum=sha256:ab",
            ),
            ("https://ghp_tok@github.com/x", "https://***@github.com/x"),
            (
                "https://b.s3.amazonaws.com/x?X-Amz-Credential=AK%2F1&X-Amz-Signature=f00&archive=zip",
                "https://b.s3.amazonaws.com/x?X-Amz-Credential=***&X-Amz-Signature=***&archive=zip",
            ),
            (
                "https://h/x?token=t1&sig=s#frag",
                "https://h/x?token=***&sig=***#frag",
            ),
            (
                "https://h/x?tokens=1&mykey=2",
                "https://h/x?tokens=1&mykey=2",
            ),
            (
                "/opt/simd?checksum=sha256:ab",
                "/opt/simd?checksum=sha256:ab",
            ),
            (
                r#"{"binaries":{"any":"http://u:p@h/a?key=k","linux/amd64":"https://h/b?api_key=z"}}"#,
                r#"{"binaries":{"any":"http://u:***@h/a?key=***","linux/amd64":"https://h/b?api_key=***"}}"#,
            ),
            ("no url here: a@b & c=d", "no url here: a@b & c=d"),
            ("http://h/path@x?q", "http://h/path@x?q"),
        ];
        for (text, want) in cases {
            assert_eq!(redact(text), want, "{text}");
        }
    }
}

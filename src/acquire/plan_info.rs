//! What to download for an upgrade plan: the plan's `info` (an inline `{"binaries":…}` map or a
//! reference URL to one), the platform key we look up in it, and each download URL parsed into a
//! [`Source`] (where to read from, which checksum to verify).
//!
//! Pure functions only: fetching URLs, hashing the bytes and unpacking archives belong to the
//! download code and `archive/`; [`Hasher`] only wraps `sha2` so that code can verify while it
//! streams.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use sha2::Digest;

use crate::redact::redact;

/// What a plan's `info` asks us to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Info {
    /// Inline `{"binaries":{…}}`.
    Binaries(BinaryMap),
    /// A URL to a JSON document of that shape (see [`Resolved::List`]).
    Reference(String),
}

/// Where this platform's binary comes from, as far as a plan's `info` says without fetching
/// anything ([`resolve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// This platform's (or the `any`) URL in an inline `binaries` map.
    Binary(Source),
    /// A reference URL to a list of binaries: fetch it, give the body to [`parse_binaries`],
    /// then look this platform up with [`source_for_platform`].
    List(Source),
}

/// The `"binaries"` map: platform key (`linux/amd64`, `any`, …) → download URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryMap(BTreeMap<String, String>);

/// A checksum to verify a download against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    Sha256([u8; 32]),
    Sha512([u8; 64]),
}

/// Where a download comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An `http`/`https` URL with go-getter's own `checksum` and `archive` parameters removed
    /// (all other parameters kept as written).
    Http(String),
    /// A local file (`file:///abs/path` or `/abs/path`).
    File(PathBuf),
}

/// One parsed download URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub location: Location,
    pub checksum: Option<Checksum>,
    /// The URL as written in the plan (trimmed), for `archive::detect`, which reads the suffix
    /// and a forced `?archive=` from it. It may hold credentials: never show it.
    pub original: String,
    /// The URL as messages show it: [`redact`]ed.
    pub shown: String,
}

/// Why a plan's info or one of its URLs cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    #[error(
        "plan info must not be blank: it must hold {{\"binaries\":{{\"<os>/<arch>\":\"<url>\"}}}} or a URL to such a document"
    )]
    Blank,
    #[error(
        "could not parse plan info: {0} (expected {{\"binaries\":{{\"<os>/<arch>\":\"<url>\"}}}})"
    )]
    NotJson(String),
    #[error(
        "no \"binaries\" entries found in plan info (expected {{\"binaries\":{{\"<os>/<arch>\":\"<url>\"}}}})"
    )]
    NoBinaries,
    #[error(
        "invalid os/arch format in key \"{0}\" of plan info binaries (use \"any\" or GOOS/GOARCH such as \"linux/amd64\")"
    )]
    BadKey(String),
    #[error("cannot find binary for os/arch: neither {platform}, nor any")]
    NoPlatform { platform: String },
    #[error("download URL is empty (use http, https, file or an absolute path)")]
    EmptyUrl,
    #[error(
        "unsupported URL scheme \"{scheme}\" in \"{url}\" (use http, https, file or an absolute path)"
    )]
    UnsupportedScheme { scheme: String, url: String },
    #[error(
        "\"{url}\" is neither a URL nor an absolute path (use http, https, file or an absolute path)"
    )]
    RelativePath { url: String },
    #[error("invalid URL \"{url}\": {err} (use http, https, file or an absolute path)")]
    BadUrl { url: String, err: String },
    #[error("file URL \"{url}\" does not name a local absolute path (write file:///abs/path)")]
    BadFileUrl { url: String },
    #[error(
        "invalid checksum in \"{url}\": {reason} (write checksum=sha256:<64 hex digits> or checksum=sha512:<128 hex digits>)"
    )]
    BadChecksum { url: String, reason: String },
    #[error(
        "checksum type \"{kind}\" in \"{url}\" is not supported: use checksum=sha256:<hex> or checksum=sha512:<hex>"
    )]
    UnsupportedChecksum { kind: String, url: String },
    #[error(
        "missing checksum query parameter in \"{url}\" (DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM is set)"
    )]
    MissingChecksum { url: String },
}

/// Tells the two forms of `info` apart, by the effective form of Go's rule (Go treats whatever
/// `url.Parse` accepts as a URL, and inline JSON never parses as one because of the colon in
/// `"binaries":`): after trimming, blank is an error, `{…` is inline JSON, anything else is a
/// reference URL (free text such as `some info` is therefore a URL, as in Go, and fails later in
/// [`parse_source`]).
pub fn classify(info: &str) -> Result<Info, InfoError> {
    let info = info.trim();
    if info.is_empty() {
        return Err(InfoError::Blank);
    }
    if info.starts_with('{') {
        return parse_binaries(info.as_bytes()).map(Info::Binaries);
    }
    Ok(Info::Reference(info.to_owned()))
}

/// The checks every download makes before its first request, in their order: [`classify`]
/// `info`, then parse this platform's URL of an inline map or the reference URL
/// ([`parse_source`]).
pub fn resolve(info: &str, must_have_checksum: bool) -> Result<Resolved, InfoError> {
    match classify(info)? {
        Info::Binaries(binaries) => {
            source_for_platform(&binaries, must_have_checksum).map(Resolved::Binary)
        }
        Info::Reference(url) => parse_source(&url, must_have_checksum).map(Resolved::List),
    }
}

/// This platform's (else the `any`) URL in `binaries`, parsed ([`BinaryMap::url_for`],
/// [`parse_source`]).
pub fn source_for_platform(
    binaries: &BinaryMap,
    must_have_checksum: bool,
) -> Result<Source, InfoError> {
    parse_source(binaries.url_for(&platform())?, must_have_checksum)
}

#[derive(Deserialize)]
struct RawInfo {
    #[serde(default)]
    binaries: Option<BTreeMap<String, String>>,
}

/// Parses `{"binaries":{"linux/amd64":"<url>","any":"<url>"}}` (inline info, or the body of a
/// reference URL) and checks its keys as Go's `ValidateFull` does. URLs are not checked here:
/// only the one for this platform is used, and [`parse_source`] checks it (Go checks, and even
/// downloads, every platform's URL).
pub fn parse_binaries(json: &[u8]) -> Result<BinaryMap, InfoError> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Err(InfoError::Blank);
    }
    let raw: RawInfo =
        serde_json::from_slice(json).map_err(|err| InfoError::NotJson(err.to_string()))?;
    let binaries = raw.binaries.unwrap_or_default();
    if binaries.is_empty() {
        return Err(InfoError::NoBinaries);
    }
    if let Some(key) = binaries.keys().find(|key| !valid_key(key)) {
        return Err(InfoError::BadKey(key.clone()));
    }
    Ok(BinaryMap(binaries))
}

/// `any`, or Go's unanchored `[a-zA-Z0-9]+/[a-zA-Z0-9]+`: some `/` with an ASCII letter or digit
/// on each side. Unanchored on purpose: plans on chain are immutable, and a key Go accepts (say
/// `linux/arm/v7`) must not make us refuse the whole plan.
fn valid_key(key: &str) -> bool {
    if key == "any" {
        return true;
    }
    let bytes = key.as_bytes();
    bytes
        .windows(3)
        .any(|w| w[1] == b'/' && w[0].is_ascii_alphanumeric() && w[2].is_ascii_alphanumeric())
}

impl BinaryMap {
    /// The URL for `platform` (exact key), else the `any` entry (Go's lookup order; keys are
    /// case-sensitive and `*` is not special).
    pub fn url_for(&self, platform: &str) -> Result<&str, InfoError> {
        self.0
            .get(platform)
            .or_else(|| self.0.get("any"))
            .map(String::as_str)
            .ok_or_else(|| InfoError::NoPlatform {
                platform: platform.to_owned(),
            })
    }
}

/// This machine's platform key in Go's `GOOS/GOARCH` naming (`linux/amd64`, `darwin/arm64`, …).
#[must_use]
pub fn platform() -> String {
    format!(
        "{}/{}",
        go_os(std::env::consts::OS),
        go_arch(std::env::consts::ARCH)
    )
}

fn go_os(os: &str) -> &str {
    match os {
        "macos" => "darwin",
        // linux, windows, freebsd, netbsd, openbsd, dragonfly, solaris, illumos, android, ios,
        // aix: Rust and Go spell these the same.
        other => other,
    }
}

fn go_arch(arch: &str) -> &str {
    let little = cfg!(target_endian = "little");
    match arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if little => "ppc64le",
        "powerpc64" => "ppc64",
        "powerpc" => "ppc",
        "mips" if little => "mipsle",
        "mips64" if little => "mips64le",
        "loongarch64" => "loong64",
        "wasm32" => "wasm",
        // arm, riscv64, s390x, mips, mips64, sparc64: same spelling.
        other => other,
    }
}

impl Checksum {
    /// `sha256` or `sha512`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Checksum::Sha256(_) => "sha256",
            Checksum::Sha512(_) => "sha512",
        }
    }

    #[must_use]
    pub fn digest(&self) -> &[u8] {
        match self {
            Checksum::Sha256(bytes) => bytes,
            Checksum::Sha512(bytes) => bytes,
        }
    }

    /// A hasher of the same kind, to feed the downloaded bytes to while they stream.
    #[must_use]
    pub fn hasher(&self) -> Hasher {
        match self {
            Checksum::Sha256(_) => Hasher::Sha256(sha2::Sha256::new()),
            Checksum::Sha512(_) => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

/// `sha256:<lower-case hex>`.
impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.kind())?;
        for byte in self.digest() {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Computes a [`Checksum`] of bytes fed in pieces; compare the result with the expected one.
#[derive(Debug, Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(hasher) => hasher.update(bytes),
            Hasher::Sha512(hasher) => hasher.update(bytes),
        }
    }

    #[must_use]
    pub fn finish(self) -> Checksum {
        match self {
            Hasher::Sha256(hasher) => Checksum::Sha256(hasher.finalize().into()),
            Hasher::Sha512(hasher) => Checksum::Sha512(hasher.finalize().into()),
        }
    }
}

/// Parses one download URL: `http(s)://…`, `file:///abs/path` or `/abs/path`, with go-getter's
/// `checksum` parameter (`checksum=<type>:<hex>` or bare `checksum=<hex>`, type guessed from
/// its length) taken out and parsed. Only sha256 and sha512 are accepted (go-getter also takes
/// md5, sha1 and `file:<url>`; we refuse them with a clear error). go-getter's `archive`
/// parameter is also taken out of an http(s) URL, as go-getter does before the request; it is
/// still in [`Source::original`] for `archive::detect`. Other parameters are kept byte for byte
/// (go-getter re-encodes and sorts them, which can break signed URLs).
pub fn parse_source(url: &str, must_have_checksum: bool) -> Result<Source, InfoError> {
    let original = url.trim();
    if original.is_empty() {
        return Err(InfoError::EmptyUrl);
    }
    let (location, checksum_param) = if original.starts_with('/') {
        // A local path is taken literally (no percent-decoding); only a `?` starts a query.
        let (path, query) = original.split_once('?').unwrap_or((original, ""));
        let (checksum, _rest) = split_query(query);
        (Location::File(PathBuf::from(path)), checksum)
    } else {
        parse_url(original)?
    };
    let checksum = match checksum_param.filter(|value| !value.is_empty()) {
        Some(value) => Some(parse_checksum(&value, &redact(original))?),
        None => None,
    };
    if must_have_checksum && checksum.is_none() {
        return Err(InfoError::MissingChecksum {
            url: redact(original),
        });
    }
    Ok(Source {
        location,
        checksum,
        original: original.to_owned(),
        shown: redact(original),
    })
}

fn parse_url(original: &str) -> Result<(Location, Option<String>), InfoError> {
    let mut parsed = match url::Url::parse(original) {
        Ok(parsed) => parsed,
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            return Err(InfoError::RelativePath {
                url: redact(original),
            });
        }
        Err(err) => {
            return Err(InfoError::BadUrl {
                url: redact(original),
                err: err.to_string(),
            });
        }
    };
    let (checksum, rest) = split_query(parsed.query().unwrap_or(""));
    match parsed.scheme() {
        "http" | "https" => {
            parsed.set_query((!rest.is_empty()).then_some(rest.as_str()));
            Ok((Location::Http(parsed.into()), checksum))
        }
        "file" => {
            let path = parsed.to_file_path().map_err(|()| InfoError::BadFileUrl {
                url: redact(original),
            })?;
            Ok((Location::File(path), checksum))
        }
        scheme => Err(InfoError::UnsupportedScheme {
            scheme: scheme.to_owned(),
            url: redact(original),
        }),
    }
}

/// Splits a raw query into the first `checksum` value (decoded) and the remaining parameters
/// (raw, in order), leaving out every `checksum` and `archive` parameter.
fn split_query(query: &str) -> (Option<String>, String) {
    let mut checksum = None;
    let mut kept: Vec<&str> = Vec::new();
    for piece in query.split('&').filter(|piece| !piece.is_empty()) {
        let (key, value) = url::form_urlencoded::parse(piece.as_bytes())
            .next()
            .unwrap_or_default();
        match key.as_ref() {
            "checksum" => {
                if checksum.is_none() {
                    checksum = Some(value.into_owned());
                }
            }
            "archive" => {}
            _ => kept.push(piece),
        }
    }
    (checksum, kept.join("&"))
}

fn parse_checksum(value: &str, url: &str) -> Result<Checksum, InfoError> {
    let bad = |reason: String| InfoError::BadChecksum {
        url: url.to_owned(),
        reason,
    };
    let unsupported = |kind: &str| InfoError::UnsupportedChecksum {
        kind: kind.to_owned(),
        url: url.to_owned(),
    };
    let (kind, hex) = if let Some((kind, hex)) = value.split_once(':') {
        (kind.to_ascii_lowercase(), hex)
    } else {
        let guessed = match value.len() {
            32 => "md5",
            40 => "sha1",
            64 => "sha256",
            128 => "sha512",
            len => {
                return Err(bad(format!(
                    "{len} characters is not the length of a sha256 (64) or sha512 (128) hex digest"
                )));
            }
        };
        (guessed.to_owned(), value)
    };
    match kind.as_str() {
        "sha256" => decode_hex::<32>(hex)
            .map(Checksum::Sha256)
            .map_err(|reason| bad(format!("sha256 {reason}"))),
        "sha512" => decode_hex::<64>(hex)
            .map(Checksum::Sha512)
            .map_err(|reason| bad(format!("sha512 {reason}"))),
        other => Err(unsupported(other)),
    }
}

fn decode_hex<const N: usize>(hex: &str) -> Result<[u8; N], String> {
    if hex.len() != N * 2 {
        return Err(format!(
            "digest must be {} hex digits, got {}",
            N * 2,
            hex.len()
        ));
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let high = hex_value(pair[0]);
        let low = hex_value(pair[1]);
        match (high, low) {
            (Some(high), Some(low)) => *slot = high << 4 | low,
            _ => {
                return Err(format!(
                    "digest {hex:?} contains a character that is not a hex digit"
                ));
            }
        }
    }
    Ok(out)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX64: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn hex128() -> String {
        "ab".repeat(64)
    }

    fn map(pairs: &[(&str, &str)]) -> BinaryMap {
        BinaryMap(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn classify_tells_json_from_reference() {
        let inline = r#" {"binaries":{"linux/amd64":"https://h/a","any":"https://h/b"}} "#;
        assert_eq!(
            classify(inline).unwrap(),
            Info::Binaries(map(&[
                ("linux/amd64", "https://h/a"),
                ("any", "https://h/b")
            ]))
        );
        let cases: &[(&str, Result<Info, InfoError>)] = &[
            (
                " https://h/info.json?checksum=sha256:x \n",
                Ok(Info::Reference(
                    "https://h/info.json?checksum=sha256:x".into(),
                )),
            ),
            ("some info", Ok(Info::Reference("some info".into()))),
            ("", Err(InfoError::Blank)),
            (" \t\n", Err(InfoError::Blank)),
            ("{\"binaries\":{}}", Err(InfoError::NoBinaries)),
            ("{}", Err(InfoError::NoBinaries)),
        ];
        for (input, want) in cases {
            assert_eq!(&classify(input), want, "{input:?}");
        }
        let err = classify("{\"binaries\":").unwrap_err();
        assert!(matches!(err, InfoError::NotJson(_)), "{err:?}");
        assert!(err.to_string().starts_with("could not parse plan info: "));
    }

    #[test]
    fn parse_binaries_checks_keys() {
        let ok: &[&str] = &[
            r#"{"binaries":{"linux/amd64":"u"}}"#,
            r#"{"binaries":{"any":"u"}}"#,
            r#"{"binaries":{"darwin/arm64":"u","windows/386":"v"},"other":1}"#,
            r#"{"binaries":{"linux/arm/v7":"u"}}"#,
        ];
        for json in ok {
            assert!(parse_binaries(json.as_bytes()).is_ok(), "{json}");
        }
        let bad: &[(&str, InfoError)] = &[
            (r#"{"binaries":{"*":"u"}}"#, InfoError::BadKey("*".into())),
            (
                r#"{"binaries":{"ANY":"u"}}"#,
                InfoError::BadKey("ANY".into()),
            ),
            (
                r#"{"binaries":{"linux":"u","any":"v"}}"#,
                InfoError::BadKey("linux".into()),
            ),
            (
                r#"{"binaries":{"/amd64":"u"}}"#,
                InfoError::BadKey("/amd64".into()),
            ),
            (r#"{"binaries":{}}"#, InfoError::NoBinaries),
            (r#"{"binaries":null}"#, InfoError::NoBinaries),
            ("  ", InfoError::Blank),
        ];
        for (json, want) in bad {
            assert_eq!(
                &parse_binaries(json.as_bytes()).unwrap_err(),
                want,
                "{json}"
            );
        }
        for json in ["[1]", "not json", r#"{"binaries":{"any":5}}"#, "\"x\""] {
            let err = parse_binaries(json.as_bytes()).unwrap_err();
            assert!(matches!(err, InfoError::NotJson(_)), "{json}: {err:?}");
        }
        assert_eq!(
            InfoError::BadKey("*".into()).to_string(),
            "invalid os/arch format in key \"*\" of plan info binaries (use \"any\" or GOOS/GOARCH such as \"linux/amd64\")"
        );
    }

    #[test]
    fn url_for_prefers_exact_then_any() {
        let both = map(&[("linux/amd64", "exact"), ("any", "fallback")]);
        let only_any = map(&[("any", "fallback")]);
        let other = map(&[("darwin/arm64", "mac")]);
        let cases: &[(&BinaryMap, &str, Result<&str, InfoError>)] = &[
            (&both, "linux/amd64", Ok("exact")),
            (&both, "linux/arm64", Ok("fallback")),
            (&only_any, "linux/amd64", Ok("fallback")),
            (&other, "darwin/arm64", Ok("mac")),
            (
                &other,
                "linux/amd64",
                Err(InfoError::NoPlatform {
                    platform: "linux/amd64".into(),
                }),
            ),
        ];
        for (binaries, platform, want) in cases {
            assert_eq!(&binaries.url_for(platform), want, "{platform}");
        }
        assert_eq!(
            other.url_for("linux/amd64").unwrap_err().to_string(),
            "cannot find binary for os/arch: neither linux/amd64, nor any"
        );
    }

    #[test]
    fn resolve_parses_this_platform_s_url_or_the_list_s() {
        let inline = format!(r#"{{"binaries":{{"any":"https://h/x?checksum={HEX64}"}}}}"#);
        let Ok(Resolved::Binary(source)) = resolve(&inline, true) else {
            panic!("an inline map resolves to its binary");
        };
        assert_eq!(source.shown, format!("https://h/x?checksum={HEX64}"));
        let Ok(Resolved::List(list)) = resolve("https://h/list.json", false) else {
            panic!("a reference resolves to its list");
        };
        assert_eq!(list.location, Location::Http("https://h/list.json".into()));
        assert_eq!(
            resolve("https://h/list.json", true),
            Err(InfoError::MissingChecksum {
                url: "https://h/list.json".into()
            })
        );
        assert_eq!(
            resolve(r#"{"binaries":{"plan9/mips":"https://h/x"}}"#, false),
            Err(InfoError::NoPlatform {
                platform: platform()
            })
        );
        assert_eq!(resolve(" ", false), Err(InfoError::Blank));
    }

    #[test]
    fn platform_uses_go_names() {
        let platform = platform();
        let (os, arch) = platform.split_once('/').unwrap();
        assert!(!os.is_empty() && !arch.is_empty(), "{platform}");
        assert_eq!(go_os("macos"), "darwin");
        assert_eq!(go_os("linux"), "linux");
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("x86"), "386");
        assert_eq!(go_arch("arm"), "arm");
        assert_eq!(go_arch("riscv64"), "riscv64");
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert_eq!(platform, "linux/amd64");
        }
        if cfg!(all(target_os = "linux", target_arch = "aarch64")) {
            assert_eq!(platform, "linux/arm64");
        }
    }

    #[test]
    fn parse_source_accepts_supported_forms() {
        let sha256 = Checksum::Sha256(decode_hex::<32>(HEX64).unwrap());
        let sha512 = Checksum::Sha512([0xab; 64]);
        let url_a = format!("https://h/x.tar.gz?checksum=sha256:{HEX64}&archive=tar.gz&x=a%2Fb");
        let url_b = format!("HTTP://H/x?checksum=SHA256:{}", HEX64.to_uppercase());
        let url_c = format!("https://h/x?a=1&checksum={HEX64}&b=2");
        let url_d = format!("http://h:8080/x.zip?checksum={}", hex128());
        let url_e = format!("file:///opt/rel/autod.zip?checksum=sha512:{}", hex128());
        let url_f = format!("/opt/rel dir/autod?checksum=sha256:{HEX64}");
        let cases: Vec<(&str, Location, Option<Checksum>)> = vec![
            (
                &url_a,
                Location::Http("https://h/x.tar.gz?x=a%2Fb".into()),
                Some(sha256),
            ),
            (&url_b, Location::Http("http://h/x".into()), Some(sha256)),
            (
                &url_c,
                Location::Http("https://h/x?a=1&b=2".into()),
                Some(sha256),
            ),
            (
                &url_d,
                Location::Http("http://h:8080/x.zip".into()),
                Some(sha512),
            ),
            (
                "https://h/x?checksum=",
                Location::Http("https://h/x".into()),
                None,
            ),
            (
                "https://h/x?archive=false",
                Location::Http("https://h/x".into()),
                None,
            ),
            (
                &url_e,
                Location::File("/opt/rel/autod.zip".into()),
                Some(sha512),
            ),
            (
                "file:///opt/a%20b/autod",
                Location::File("/opt/a b/autod".into()),
                None,
            ),
            (
                &url_f,
                Location::File("/opt/rel dir/autod".into()),
                Some(sha256),
            ),
            (
                "/opt/rel/autod",
                Location::File("/opt/rel/autod".into()),
                None,
            ),
        ];
        for (url, location, checksum) in cases {
            let source = parse_source(url, false).unwrap_or_else(|err| panic!("{url}: {err}"));
            assert_eq!(source.location, location, "{url}");
            assert_eq!(source.checksum, checksum, "{url}");
            assert_eq!(source.original, url.trim(), "{url}");
        }
        assert_eq!(
            parse_source(&format!("/x?checksum={HEX64}"), true)
                .unwrap()
                .checksum,
            Some(sha256)
        );
    }

    #[test]
    fn parse_source_refuses_bad_urls() {
        let cases: Vec<(String, bool, &str)> = vec![
            (
                "ftp://h/x".into(),
                false,
                "unsupported URL scheme \"ftp\" in \"ftp://h/x\" (use http, https, file or an absolute path)",
            ),
            (
                "s3::https://b/x".into(),
                false,
                "unsupported URL scheme \"s3\"",
            ),
            (
                "bin/autod".into(),
                false,
                "\"bin/autod\" is neither a URL nor an absolute path",
            ),
            (
                "some info".into(),
                false,
                "\"some info\" is neither a URL nor an absolute path",
            ),
            ("  ".into(), false, "download URL is empty"),
            ("https://".into(), false, "invalid URL \"https://\""),
            (
                "file://otherhost/x".into(),
                false,
                "does not name a local absolute path",
            ),
            (
                "https://h/x".into(),
                true,
                "missing checksum query parameter in \"https://h/x\" (DAEMON_DOWNLOAD_MUST_HAVE_CHECKSUM is set)",
            ),
            (
                "/opt/x?checksum=".into(),
                true,
                "missing checksum query parameter in \"/opt/x?checksum=\"",
            ),
            (
                "https://h/x?checksum=md5:d41d8cd98f00b204e9800998ecf8427e".into(),
                false,
                "checksum type \"md5\" in \"https://h/x?checksum=md5:d41d8cd98f00b204e9800998ecf8427e\" is not supported: use checksum=sha256:<hex> or checksum=sha512:<hex>",
            ),
            (
                "https://h/x?checksum=SHA1:da39a3ee5e6b4b0d3255bfef95601890afd80709".into(),
                false,
                "checksum type \"sha1\"",
            ),
            (
                "https://h/x?checksum=file:https://h/SHA256SUMS".into(),
                false,
                "checksum type \"file\"",
            ),
            (
                "https://h/x?checksum=d41d8cd98f00b204e9800998ecf8427e".into(),
                false,
                "checksum type \"md5\"",
            ),
            (
                "https://h/x?checksum=abc".into(),
                false,
                "invalid checksum in \"https://h/x?checksum=abc\": 3 characters is not the length",
            ),
            (
                "https://h/x?checksum=sha256:abcd".into(),
                false,
                "sha256 digest must be 64 hex digits, got 4",
            ),
            (
                format!("https://h/x?checksum=sha512:{HEX64}"),
                false,
                "sha512 digest must be 128 hex digits, got 64",
            ),
            (
                format!("https://h/x?checksum=sha256:{}zz", &HEX64[..62]),
                false,
                "is not a hex digit",
            ),
        ];
        for (url, must, want) in cases {
            let err = parse_source(&url, must).unwrap_err().to_string();
            assert!(err.contains(want), "{url}: {err}");
        }
    }

    #[test]
    fn parsed_sources_show_redacted_urls() {
        let source = parse_source("https://u:pw@h/x?checksum=", false).unwrap();
        assert_eq!(source.shown, "https://u:***@h/x?checksum=");
        let err = parse_source("ftp://u:pw@h/x", false)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pw@"), "{err}");
        let err = parse_source("https://u:pw@h/x", true)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pw@"), "{err}");
    }

    #[test]
    fn checksum_display_and_hasher() {
        let sum = parse_source(
            &format!("/x?checksum=sha256:{}", HEX64.to_uppercase()),
            false,
        )
        .unwrap()
        .checksum
        .unwrap();
        assert_eq!(sum.to_string(), format!("sha256:{HEX64}"));
        // HEX64 is sha256("test").
        let mut hasher = sum.hasher();
        hasher.update(b"te");
        hasher.update(b"st");
        assert_eq!(hasher.finish(), sum);
        let sha512 = Checksum::Sha512([0xab; 64]);
        assert_eq!(sha512.to_string(), format!("sha512:{}", hex128()));
        let mut other = sha512.hasher();
        other.update(b"test");
        assert_ne!(other.finish(), sha512);
    }
}

//! Downloaded files on disk: telling an archive from a raw binary ([`detect`]), the types the
//! unpacking and arranging share ([`Kind`], [`Limits`], [`ArchiveError`]), and the public API of
//! the two steps that follow: unpacking an archive safely into an empty staging folder
//! ([`unpack`], in `unpack.rs`) and arranging what it held into a version folder as `bin/<name>`
//! plus an optional `lib/` ([`arrange`], [`arrange_raw`], in `arrange.rs`).
//!
//! Fetching, checksums and the final rename of a version folder into `upgrades/` are the
//! caller's (`acquire/download/`); nothing here touches paths other than the ones it is given.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

mod arrange;
#[cfg(test)]
mod fixtures;
mod unpack;

pub use arrange::{arrange, arrange_raw};
pub use unpack::{check_links_inside, unpack, unpack_stream};

/// What a downloaded file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Not an archive: the file is the binary.
    Raw,
    TarGz,
    Tar,
    Zip,
    /// A format we recognise but do not unpack (`tar.xz`, `bz2`, `7z`, …), or an unknown
    /// `?archive=` value; [`unpack`] refuses it with a clear error.
    Unsupported(String),
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Raw => f.write_str("raw"),
            Kind::TarGz => f.write_str("tar.gz"),
            Kind::Tar => f.write_str("tar"),
            Kind::Zip => f.write_str("zip"),
            Kind::Unsupported(format) => f.write_str(format),
        }
    }
}

/// Caps on what one archive may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sum of all entry sizes, as declared by the headers and as actually written.
    pub max_total_bytes: u64,
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_total_bytes: 8 << 30,
            max_entries: 100_000,
        }
    }
}

/// Why a downloaded file could not be unpacked or arranged.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(
        "{} is not a valid {kind} archive (corrupt or truncated): {err}; download it again or fix the release",
        archive.display()
    )]
    Corrupt {
        archive: PathBuf,
        kind: Kind,
        err: String,
    },
    #[error(
        "refusing archive {}: entry {entry:?} {reason}; nothing was unpacked",
        archive.display()
    )]
    BadEntry {
        archive: PathBuf,
        entry: String,
        reason: String,
    },
    #[error(
        "refusing archive {}: it unpacks to more than {limit} bytes; nothing was unpacked",
        archive.display()
    )]
    TooLarge { archive: PathBuf, limit: u64 },
    #[error(
        "refusing archive {}: it holds more than {limit} entries; nothing was unpacked",
        archive.display()
    )]
    TooManyEntries { archive: PathBuf, limit: u64 },
    #[error(
        "{} is a {format} file, which cannot be unpacked: publish the binary raw or as .tar.gz, .tgz, .tar or .zip",
        archive.display()
    )]
    Unsupported { archive: PathBuf, format: String },
    #[error("{} is a raw file, not an archive: arrange it with arrange_raw", archive.display())]
    NotArchive { archive: PathBuf },
    #[error("cannot unpack into {}: it must be an existing, empty folder", dest.display())]
    DestNotEmpty { dest: PathBuf },
    #[error(
        "archive unpacked into {} does not contain bin/{name} or {name}{}: the release must ship the binary as bin/{name} or {name}, at the archive root or inside its one top-level folder",
        unpacked.display(),
        nested.as_ref().map(|dir| format!(" (also looked inside {dir}/)")).unwrap_or_default()
    )]
    BinaryMissing {
        unpacked: PathBuf,
        name: String,
        nested: Option<String>,
    },
    #[error("{} already exists: remove it before unpacking the binary again", out.display())]
    OutExists { out: PathBuf },
    #[error("{} is not a regular file, so it cannot be the binary", path.display())]
    NotRegular { path: PathBuf },
    #[error("daemon name {0:?} cannot name a file in bin/")]
    BadName(String),
    #[error(
        "refusing the version folder {}: {} is a symbolic link to {target:?}, which resolves outside it; nothing was installed",
        root.display(),
        link.display()
    )]
    LinkOutside {
        root: PathBuf,
        link: PathBuf,
        target: String,
    },
    #[error("unpacking {} was stopped by a signal", archive.display())]
    Cancelled { archive: PathBuf },
    #[error("cannot write {}: {err}", path.display())]
    Io { path: PathBuf, err: io::Error },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |err| ArchiveError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// Decides what a downloaded file is. `url` is the URL as written in the plan (its query and
/// fragment are ignored, except go-getter's `?archive=<type>`, which forces the type and
/// `archive=false` turns unpacking off); `head` is the start of the file (262 bytes are enough).
/// Order: `?archive=`, then the path suffix (case-insensitive), then magic bytes, else raw.
#[must_use]
pub fn detect(url: &str, head: &[u8]) -> Kind {
    let url = url.split('#').next().unwrap_or(url);
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    if let Some(kind) = forced_kind(query) {
        return kind;
    }
    if let Some(kind) = kind_by_suffix(path) {
        return kind;
    }
    kind_by_magic(head)
}

fn forced_kind(query: &str) -> Option<Kind> {
    let value = url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "archive")
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())?;
    // strconv.ParseBool's spellings, as go-getter reads them.
    match value.as_str() {
        "0" | "f" | "F" | "false" | "FALSE" | "False" => return Some(Kind::Raw),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => return None,
        _ => {}
    }
    let lower = value.to_ascii_lowercase();
    Some(match lower.as_str() {
        "tar.gz" | "tgz" => Kind::TarGz,
        "tar" => Kind::Tar,
        "zip" => Kind::Zip,
        _ => Kind::Unsupported(format!("archive={value}")),
    })
}

const UNSUPPORTED_SUFFIXES: &[&str] = &[
    ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".tbz", ".tar.zst", ".tzst", ".xz", ".bz2", ".zst",
    ".gz", ".7z", ".rar",
];

fn kind_by_suffix(path: &str) -> Option<Kind> {
    let ends_with = |suffix: &str| {
        path.len() >= suffix.len()
            && path.as_bytes()[path.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    };
    if ends_with(".tar.gz") || ends_with(".tgz") {
        return Some(Kind::TarGz);
    }
    if ends_with(".tar") {
        return Some(Kind::Tar);
    }
    if ends_with(".zip") {
        return Some(Kind::Zip);
    }
    UNSUPPORTED_SUFFIXES
        .iter()
        .find(|suffix| ends_with(suffix))
        .map(|suffix| Kind::Unsupported(suffix[1..].to_owned()))
}

fn kind_by_magic(head: &[u8]) -> Kind {
    let unsupported = |format: &str| Kind::Unsupported(format.to_owned());
    if head.starts_with(&[0x1f, 0x8b]) {
        Kind::TarGz
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Kind::Zip
    } else if head.get(257..262) == Some(b"ustar") {
        Kind::Tar
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        unsupported("xz")
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        unsupported("zstd")
    } else if head.starts_with(b"BZh") {
        unsupported("bzip2")
    } else if head.starts_with(&[b'7', b'z', 0xbc, 0xaf, 0x27, 0x1c]) {
        unsupported("7z")
    } else if head.starts_with(b"Rar!\x1a\x07") {
        unsupported("rar")
    } else {
        Kind::Raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_suffix_then_magic() {
        let mut tar_head = vec![0u8; 300];
        tar_head[257..262].copy_from_slice(b"ustar");
        let cases: &[(&str, &[u8], Kind)] = &[
            ("https://h/a.tar.gz", b"", Kind::TarGz),
            ("https://h/a.TGZ?checksum=sha256:00", b"", Kind::TarGz),
            ("/opt/a.tar", b"\x7fELF", Kind::Tar),
            ("https://h/a.Zip#frag", b"", Kind::Zip),
            ("https://h/bin?x=a.zip", b"\x7fELF", Kind::Raw),
            ("https://h/autod", b"\x1f\x8b\x08", Kind::TarGz),
            ("https://h/autod", b"PK\x03\x04rest", Kind::Zip),
            ("https://h/autod", &tar_head, Kind::Tar),
            ("https://h/autod", b"\x7fELF\x02\x01", Kind::Raw),
            ("https://h/autod", b"", Kind::Raw),
            ("https://h/autod?archive=zip", b"", Kind::Zip),
            (
                "https://h/autod.zip?archive=false",
                b"PK\x03\x04",
                Kind::Raw,
            ),
            ("https://h/autod.zip?archive=true", b"", Kind::Zip),
            (
                "https://h/a.tar.xz",
                b"",
                Kind::Unsupported("tar.xz".into()),
            ),
            ("https://h/a.gz", b"", Kind::Unsupported("gz".into())),
            (
                "https://h/a",
                b"\xfd7zXZ\x00",
                Kind::Unsupported("xz".into()),
            ),
            (
                "https://h/a?archive=tar.bz2",
                b"",
                Kind::Unsupported("archive=tar.bz2".into()),
            ),
        ];
        for (url, head, want) in cases {
            assert_eq!(&detect(url, head), want, "{url}");
        }
    }
}

//! Upgrade names: a plan's name validated and normalised ([`UpgradeName`], Go's recasing) and the
//! folder name under `upgrades/` it maps to (Go's `url.PathEscape`, [`path_escape`]).

use std::fmt;

/// A validated, normalised upgrade name and the folder name it maps to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpgradeName(String);

/// Why a plan name cannot name an upgrade folder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("upgrade name is empty")]
    Empty,
    #[error("upgrade name {0:?} is not allowed: it would name a folder outside upgrades/")]
    Escapes(String),
    #[error("upgrade name {0:?} contains a NUL byte")]
    Nul(String),
    #[error(
        "upgrade name {:?} cannot name a folder: its folder name is {len} bytes, longer than {MAX_DIR_NAME} bytes",
        shortened(.name)
    )]
    TooLong { name: String, len: usize },
}

/// The longest file name Linux file systems take (`NAME_MAX`).
const MAX_DIR_NAME: usize = 255;

/// The first 40 characters of a name, for messages about a name too long to print whole.
fn shortened(name: &str) -> String {
    match name.char_indices().nth(40) {
        Some((end, _)) => format!("{}…", &name[..end]),
        None => name.to_owned(),
    }
}

impl UpgradeName {
    /// Normalises a plan name: lower-cased (Go `strings.ToLower`, Unicode-aware) unless `recase`
    /// is off (`COSMOVISOR_DISABLE_RECASE=true`). Names that would leave `upgrades/` are refused.
    pub fn new(raw: &str, recase: bool) -> Result<UpgradeName, NameError> {
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        if raw.contains('\0') {
            return Err(NameError::Nul(raw.to_owned()));
        }
        let name = if recase {
            raw.to_lowercase()
        } else {
            raw.to_owned()
        };
        // After escaping, '/' is "%2F", so only "." and ".." can still name a parent or self.
        if name == "." || name == ".." {
            return Err(NameError::Escapes(raw.to_owned()));
        }
        // Refused here, before anything is journaled: a folder that cannot be created would
        // otherwise fail every later start with `File name too long`.
        let len = path_escape(&name).len();
        if len > MAX_DIR_NAME {
            return Err(NameError::TooLong {
                name: raw.to_owned(),
                len,
            });
        }
        Ok(UpgradeName(name))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The folder name: Go's `url.PathEscape` of the name.
    #[must_use]
    pub fn dir_name(&self) -> String {
        path_escape(&self.0)
    }

    /// Same upgrade, whatever the case (Go compares with `strings.EqualFold`).
    #[must_use]
    pub fn same_as(&self, other: &str) -> bool {
        self.0.to_lowercase() == other.to_lowercase()
    }
}

impl fmt::Display for UpgradeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Go's `url.PathEscape`: unreserved characters and `$&+:=@` stay, everything else is `%XX`
/// (upper-case hex, per UTF-8 byte).
#[must_use]
pub fn path_escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'-' | b'_' | b'.' | b'~' | b'$' | b'&' | b'+' | b':' | b'=' | b'@'
            );
        if keep {
            out.push(char::from(byte));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::home::layout::Layout;
    use std::path::{Path, PathBuf};

    #[test]
    fn escapes_like_go_path_escape() {
        let cases = [
            ("myUpgrade", "myUpgrade"),
            ("some spaces", "some%20spaces"),
            ("a/b", "a%2Fb"),
            ("v1.2.3-rc.1_x~", "v1.2.3-rc.1_x~"),
            ("a;b,c?d", "a%3Bb%2Cc%3Fd"),
            ("$&+:=@", "$&+:=@"),
            ("ä", "%C3%A4"),
            ("100%", "100%25"),
        ];
        for (name, want) in cases {
            assert_eq!(path_escape(name), want, "escaping {name:?}");
        }
    }

    #[test]
    fn names_are_recased_unless_disabled() {
        assert_eq!(UpgradeName::new("V8-Rho", true).unwrap().as_str(), "v8-rho");
        assert_eq!(
            UpgradeName::new("V8-Rho", false).unwrap().as_str(),
            "V8-Rho"
        );
        assert!(UpgradeName::new("v8-rho", false).unwrap().same_as("V8-RHO"));
    }

    #[test]
    fn hostile_names_are_refused() {
        assert_eq!(UpgradeName::new("", true), Err(NameError::Empty));
        assert_eq!(
            UpgradeName::new("..", true),
            Err(NameError::Escapes("..".into()))
        );
        assert_eq!(
            UpgradeName::new(".", true),
            Err(NameError::Escapes(".".into()))
        );
        assert_eq!(
            UpgradeName::new("a\0b", true),
            Err(NameError::Nul("a\0b".into()))
        );
        // "../x" is harmless once escaped: it names one folder inside upgrades/.
        let name = UpgradeName::new("../x", true).unwrap();
        assert_eq!(name.dir_name(), "..%2Fx");
        let layout = Layout::new(Path::new("/h"), "simd");
        assert_eq!(
            layout.upgrade_dir(&name),
            PathBuf::from("/h/cosmovisor/upgrades/..%2Fx")
        );
        // The folder name counts after escaping: 85 '/' are 255 bytes, 86 are too many.
        assert!(UpgradeName::new(&"/".repeat(85), true).is_ok());
        let err = UpgradeName::new(&"/".repeat(86), true).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "upgrade name \"{}…\" cannot name a folder: its folder name is 258 bytes, longer than 255 bytes",
                "/".repeat(40)
            )
        );
    }
}

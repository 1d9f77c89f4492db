//! What kind of executable a file is, from its first bytes: an ELF binary for some machine, a
//! `#!` script, or something else, and whether this machine can run it ([`refusal`]). The C
//! library's `execvp` hands a file that is neither to `/bin/sh`, so an HTML error page or an
//! empty download would "run"; everything we install or start is checked with [`refusal`]
//! first. Pure: the caller reads the bytes.

/// The ELF `e_machine` numbers we name (from the System V ABI registry).
const MACHINES: &[(u16, &str)] = &[
    (3, "x86"),
    (8, "mips"),
    (20, "powerpc"),
    (21, "powerpc64"),
    (22, "s390x"),
    (40, "arm"),
    (62, "x86_64"),
    (183, "aarch64"),
    (243, "riscv64"),
    (258, "loongarch64"),
];

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An ELF file with this `e_machine`.
    Elf { machine: u16 },
    /// Starts with `#!`.
    Script,
    /// Neither (or too short to tell).
    Unknown,
}

/// Reads `e_ident` and `e_machine` (at offset 18, in the byte order `EI_DATA` gives).
#[must_use]
pub fn kind(head: &[u8]) -> Kind {
    if head.starts_with(b"#!") {
        return Kind::Script;
    }
    if head.len() < 20 || !head.starts_with(b"\x7fELF") {
        return Kind::Unknown;
    }
    let bytes = [head[18], head[19]];
    let machine = match head[5] {
        1 => u16::from_le_bytes(bytes),
        2 => u16::from_be_bytes(bytes),
        _ => return Kind::Unknown,
    };
    Kind::Elf { machine }
}

/// The name of an `e_machine` value, or `machine <n>` when we do not know it.
#[must_use]
pub fn machine_name(machine: u16) -> String {
    MACHINES
        .iter()
        .find(|(number, _)| *number == machine)
        .map_or_else(
            || format!("machine {machine}"),
            |(_, name)| (*name).to_owned(),
        )
}

/// The `e_machine` of binaries that run on this host, when we know it.
#[must_use]
pub fn host_machine() -> Option<u16> {
    let arch = std::env::consts::ARCH;
    let arch = match arch {
        "powerpc64" | "powerpc64le" => "powerpc64",
        other => other,
    };
    MACHINES
        .iter()
        .find(|(_, name)| *name == arch)
        .map(|(number, _)| *number)
}

/// How many first bytes [`refusal`] and [`interpreter`] need (the kernel's `BINPRM_BUF_SIZE`: it
/// reads no more of a `#!` line either).
pub const HEAD_LEN: usize = 256;
/// How many first bytes a refusal quotes.
const SHOWN: usize = 32;

/// Why a file whose first bytes are `head` (of `size` bytes in all) cannot run on this machine,
/// or `None` when it can: an ELF binary for this machine (any ELF when the host's `e_machine` is
/// unknown) or a `#!` script.
#[must_use]
pub fn refusal(head: &[u8], size: u64) -> Option<String> {
    match kind(head) {
        Kind::Script => None,
        Kind::Elf { machine } => match host_machine() {
            Some(host) if host != machine => Some(format!(
                "it is built for {}, this host is {}",
                machine_name(machine),
                machine_name(host)
            )),
            _ => None,
        },
        Kind::Unknown if size == 0 => Some("an empty file".to_owned()),
        Kind::Unknown => Some(format!(
            "{size} bytes starting with \"{}\" is neither an ELF binary nor a script starting with #!",
            escape(&head[..head.len().min(SHOWN)])
        )),
    }
}

/// The interpreter a `#!` line names, read as the kernel reads it: after `#!` and blanks, up to
/// the next blank or the end of the line. `None` when `head` is not a script; an empty name when
/// the line names none (the kernel then refuses to run the file).
#[must_use]
pub fn interpreter(head: &[u8]) -> Option<&[u8]> {
    let line = head.strip_prefix(b"#!")?;
    let line = line.split(|b| *b == b'\n').next().unwrap_or_default();
    let start = line
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(line.len());
    let rest = &line[start..];
    let end = rest
        .iter()
        .position(|b| matches!(b, b' ' | b'\t' | b'\r' | 0))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Bytes as printable ASCII: `\n`, `\"`, `\x7f` and so on for the rest, so a hostile file
/// cannot put control characters on a terminal.
#[must_use]
pub fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|byte| std::ascii::escape_default(*byte))
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(data: u8, machine: [u8; 2]) -> Vec<u8> {
        let mut head = vec![0u8; 64];
        head[..4].copy_from_slice(b"\x7fELF");
        head[4] = 2;
        head[5] = data;
        head[18] = machine[0];
        head[19] = machine[1];
        head
    }

    #[test]
    fn reads_machine_in_both_byte_orders() {
        assert_eq!(kind(&header(1, [62, 0])), Kind::Elf { machine: 62 });
        assert_eq!(kind(&header(1, [183, 0])), Kind::Elf { machine: 183 });
        assert_eq!(kind(&header(2, [0, 22])), Kind::Elf { machine: 22 });
        assert_eq!(kind(&header(9, [62, 0])), Kind::Unknown);
        assert_eq!(kind(b"#!/bin/sh\n"), Kind::Script);
        assert_eq!(kind(b"\x7fEL"), Kind::Unknown);
        assert_eq!(kind(b"MZ\x90\x00"), Kind::Unknown);
        assert_eq!(machine_name(183), "aarch64");
        assert_eq!(machine_name(9999), "machine 9999");
    }

    #[test]
    fn refuses_what_would_fall_back_to_the_shell() {
        assert_eq!(refusal(b"#!/bin/sh\n", 10), None);
        assert_eq!(refusal(b"", 0).as_deref(), Some("an empty file"));
        assert_eq!(
            refusal(b"<html>\n\x1b[31m", 900).as_deref(),
            Some(
                "900 bytes starting with \"<html>\\n\\x1b[31m\" is neither an ELF binary nor a script starting with #!"
            )
        );
        if let Some(host) = host_machine() {
            let [low, high] = host.to_le_bytes();
            assert_eq!(refusal(&header(1, [low, high]), 1000), None);
            let other = if host == 62 { [183, 0] } else { [62, 0] };
            let why = refusal(&header(1, other), 1000).unwrap_or_default();
            assert!(why.starts_with("it is built for "), "{why}");
        }
    }

    #[test]
    fn reads_the_interpreter_of_a_hash_bang_line() {
        assert_eq!(interpreter(b"\x7fELF"), None);
        assert_eq!(interpreter(b"#!/bin/sh\necho"), Some(&b"/bin/sh"[..]));
        assert_eq!(
            interpreter(b"#! \t/usr/bin/env python3 -u\n"),
            Some(&b"/usr/bin/env"[..])
        );
        assert_eq!(interpreter(b"#!/bin/bash\r\n"), Some(&b"/bin/bash"[..]));
        assert_eq!(interpreter(b"#!"), Some(&b""[..]));
        assert_eq!(interpreter(b"#!   \nexit 0\n"), Some(&b""[..]));
    }

    #[test]
    fn knows_this_host() {
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host_machine(), Some(62));
        }
        if cfg!(target_arch = "aarch64") {
            assert_eq!(host_machine(), Some(183));
        }
    }

    #[test]
    fn our_own_binary_matches_the_host() {
        let exe = std::env::current_exe().unwrap();
        let head = std::fs::read(exe).unwrap();
        if let Some(host) = host_machine() {
            assert_eq!(kind(&head[..64]), Kind::Elf { machine: host });
        }
    }
}

//! The bytes tests serve or stage: tar and zip archives, `sha256:` checksums, this machine's
//! platform key, and an ELF header for another architecture.

use std::fmt::Write as _;
use std::io::Write;

/// Go's GOOS/GOARCH name of this machine (the key a plan's binaries map uses).
pub fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let mut hex = String::from("sha256:");
    for b in digest {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// A tar archive (optionally gzipped) of `(path, bytes, mode)` entries, paths written as given.
pub fn tar(entries: &[(&str, &[u8], u32)], gzip: bool) -> Vec<u8> {
    let mut builder = ::tar::Builder::new(Vec::new());
    for (path, bytes, mode) in entries {
        let mut header = ::tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(*mode);
        header.set_entry_type(::tar::EntryType::Regular);
        // Raw name bytes, so tests can build hostile archives the builder would refuse.
        let name = &mut header.as_gnu_mut().expect("gnu header").name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_cksum();
        builder.append(&header, *bytes).expect("tar append");
    }
    let data = builder.into_inner().expect("tar finish");
    if !gzip {
        return data;
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&data).expect("gzip");
    encoder.finish().expect("gzip finish")
}

/// A zip archive of `(path, bytes)` entries, paths written as given.
pub fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = ::zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = ::zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    for (path, bytes) in entries {
        writer.start_file(*path, options).expect("zip entry");
        writer.write_all(bytes).expect("zip write");
    }
    writer.finish().expect("zip finish").into_inner()
}

/// The ELF header of a 64-bit little-endian executable for the other common architecture
/// (aarch64 on `x86_64` hosts, `x86_64` on aarch64 hosts).
pub fn foreign_elf_header() -> Vec<u8> {
    let machine = if cfg!(target_arch = "aarch64") {
        62u8
    } else {
        183u8
    };
    let mut header = vec![0u8; 64];
    header[..4].copy_from_slice(b"\x7fELF");
    header[4] = 2; // 64-bit
    header[5] = 1; // little-endian
    header[18] = machine;
    header
}

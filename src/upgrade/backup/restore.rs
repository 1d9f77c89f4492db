//! What `rollback --restore-data` does to `data/` (README "Rollback"): copies the newest complete
//! backup into `.data.restore-partial` next to `data/`, carries the *current*
//! `priv_validator_state.json` into it (an older signing state makes a validator double-sign),
//! then renames `data/` to `data.rolled-back-<time>` and the copy to `data/`. A failed copy
//! changes nothing. Choosing the backup, asking and printing are `commands/rollback.rs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};

use anyhow::Context as _;

use crate::durable;
use crate::home::layout::Layout;
use crate::upgrade::backup::{copy, remove_partial};

/// The file the signing state lives in, inside `data/` (`CometBFT`'s default).
pub const SIGNING_STATE: &str = "priv_validator_state.json";
/// Where the backup is copied before it replaces `data/`.
const RESTORE_STAGING: &str = ".data.restore-partial";

/// `data.rolled-back-<local time>` in the home, not yet taken.
fn rolled_back_name(home: &Path) -> PathBuf {
    let base = format!(
        "data.rolled-back-{}",
        chrono::Local::now().format("%Y%m%d-%H%M%S")
    );
    let mut candidate = home.join(&base);
    let mut n = 1;
    while candidate.exists() {
        n += 1;
        candidate = home.join(format!("{base}.{n}"));
    }
    candidate
}

/// Replaces `data/` by a copy of `backup` holding the current signing state; returns where the
/// previous `data/` went.
pub fn restore_data(layout: &Layout, backup: &Path) -> anyhow::Result<PathBuf> {
    let home = layout.home();
    let data = layout.data_dir();
    let staging = home.join(RESTORE_STAGING);
    remove_partial(&staging).with_context(|| format!("cannot remove {}", staging.display()))?;
    let copied = copy::copy_tree(
        backup,
        &staging,
        copy::Mode::Copy,
        2,
        &AtomicBool::new(false),
        &AtomicU64::new(0),
    )
    .map_err(anyhow::Error::from)
    .and_then(|_| carry_signing_state(&data, &staging));
    if let Err(err) = copied {
        let _ = remove_partial(&staging);
        return Err(err.context(format!(
            "cannot copy {} to {}; nothing was changed",
            backup.display(),
            staging.display()
        )));
    }
    let kept = rolled_back_name(home);
    fs::rename(&data, &kept)
        .with_context(|| format!("cannot rename {} to {}", data.display(), kept.display()))?;
    fs::rename(&staging, &data).with_context(|| {
        format!(
            "cannot rename {} to {} (the previous data/ is {}; rename it back to undo)",
            staging.display(),
            data.display(),
            kept.display()
        )
    })?;
    durable::sync_dir(home).with_context(|| format!("cannot sync {}", home.display()))?;
    Ok(kept)
}

/// Copies `data/priv_validator_state.json` over the restored one (temp file + rename + fsync).
fn carry_signing_state(data: &Path, staging: &Path) -> anyhow::Result<()> {
    let current = data.join(SIGNING_STATE);
    let bytes = match crate::bounded_read::read_capped(&current, crate::bounded_read::DOCUMENT_CAP)
    {
        Ok(bytes) => bytes,
        Err(err) if err.is_missing() => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    let mode = fs::metadata(&current).map_or(0o600, |m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o7777
    });
    let target = staging.join(SIGNING_STATE);
    durable::write_atomic(&target, &bytes, mode)
        .with_context(|| format!("cannot write {}", target.display()))
}

//! Root running a command that writes into a user's home (docs/design.md "Trust boundaries"):
//! `rollback`, `add-upgrade`, `add-batch-upgrade`, `prepare-upgrade` and `init` on an existing home
//! do their work as the home's owner. Run by root (what `sudo cosmovisor …` does) on a home another
//! user owns, they first switch to that user's uid, gid and groups, so no file or folder they
//! make is owned by root (the node, running as that user, can still write `data/` after a
//! `rollback --restore-data`, and read the queue `add-upgrade` writes). Files the command is given
//! (the binary of `add-upgrade`) must then be readable by that user.

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Context as _;
use nix::unistd::{Gid, Uid, User};
use tracing::info;

/// When run by root on a home owned by another user, becomes that user for good (real, effective
/// and saved ids). Does nothing otherwise, nor when the home does not exist yet (the command
/// reports that itself).
pub fn become_home_owner(home: &Path) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let Ok(meta) = std::fs::metadata(home) else {
        return Ok(());
    };
    let (uid, gid) = (Uid::from_raw(meta.uid()), Gid::from_raw(meta.gid()));
    if uid.is_root() {
        return Ok(());
    }
    let user = User::from_uid(uid).ok().flatten();
    let shown = user
        .as_ref()
        .map_or_else(|| format!("uid {uid}"), |user| user.name.clone());
    let hint = || {
        format!(
            "cannot switch to {shown}, the owner of {}: run the command as that user (sudo -u {shown} cosmovisor …)",
            home.display()
        )
    };
    match &user {
        Some(user) => {
            let name = CString::new(user.name.as_str()).with_context(hint)?;
            nix::unistd::initgroups(&name, gid).with_context(hint)?;
        }
        None => nix::unistd::setgroups(&[gid]).with_context(hint)?,
    }
    nix::unistd::setresgid(gid, gid, gid).with_context(hint)?;
    nix::unistd::setresuid(uid, uid, uid).with_context(hint)?;
    info!(
        user = %shown,
        uid = uid.as_raw(),
        "running as {shown}, the owner of {}, so that nothing in the home is owned by root",
        home.display()
    );
    Ok(())
}

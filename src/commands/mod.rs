//! Our commands other than `run` (which is `supervisor/supervise.rs`): each file is one command.

pub mod add_upgrade;
pub mod completion;
pub mod doctor;
pub mod info;
pub mod init;
pub mod prepare;
pub mod rollback;
pub mod status;
pub mod version;

//! Our commands other than `run` (which is `supervise.rs`): each file is one command.

pub mod completion;
pub mod doctor;
pub mod info;
pub mod init;
pub mod rollback;
pub mod status;
pub mod version;

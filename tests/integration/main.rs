//! Integration tests: the real `cosmovisor` binary against fake daemons in temporary homes.

// Tests fail by panicking; helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

mod ahead;
mod backup;
mod config_errors;
mod doctor;
mod download;
mod fast_backup;
mod friction;
mod home_privileges;
mod hostile_download;
mod hostile_files;
mod hostile_metrics;
mod hostile_output;
mod hostile_process;
mod init;
mod manual;
mod manual_live;
mod notify;
mod ops;
mod parity11;
mod rollback;
mod run;
mod skip;
mod startup;
mod status;
mod streaming_download;
mod support;
mod trusted_height;
mod upgrade;
mod webhook;

//! Integration tests: the real `cosmovisor` binary against fake daemons in temporary homes.

// Tests fail by panicking; helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used)]

mod ahead;
mod backup_modes;
mod backup_under_stress;
mod config_errors;
mod doctor;
mod download;
mod home_privileges;
mod hostile_download;
mod hostile_files;
mod hostile_metrics;
mod hostile_output;
mod hostile_process;
mod init;
mod manual_upgrades;
mod manual_upgrades_while_running;
mod notify;
mod operator_tooling;
mod rollback;
mod run;
mod skip;
mod startup;
mod status;
mod support;
mod trusted_height;
mod upgrade;
mod upstream_parity;
mod usability;
mod webhook;

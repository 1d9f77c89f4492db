//! Integration tests: the real `cosmovisor` binary against fake daemons in temporary homes.

mod config_errors;
mod init;
mod run;
mod support;
mod upgrade;

//! Integration tests: the real `cosmovisor` binary against fake daemons in temporary homes.

mod doctor;
mod ops;
mod rollback;
mod run;
mod status;
mod support;
mod upgrade;

//! Integration tests: the real `cosmovisor` binary against fake daemons in temporary homes.

mod run;
mod support;
mod upgrade;

//! Entry point: pid 1's duties, then the command line's dispatch (`cli.rs`) and the command; prints
//! any error once and exits with its documented code (`commands::exit_code`, `exit.rs`).

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser as _};
use cosmovisor::cli::{self, Cli, Dispatch};
use cosmovisor::commands::{self, Run as _, run::RunArgs};
use cosmovisor::config::ConfigErrors;
use cosmovisor::exit;
use cosmovisor::supervisor::pid1;

fn main() -> ExitCode {
    if pid1::is_pid1() {
        return ExitCode::from(pid1::run_as_init());
    }
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let result = match cli::dispatch(&args) {
        Dispatch::Run {
            args,
            config,
            implicit,
        } => RunArgs { args, implicit }.run(&cli::context(config)),
        Dispatch::Version => commands::version::print_own(),
        Dispatch::HelpImplicitRun { word } => commands::completion::explain_implicit_run(&word),
        Dispatch::Clap => {
            match Cli::try_parse_from(std::iter::once(OsString::from("cosmovisor")).chain(args)) {
                Ok(Cli {
                    config,
                    command: Some(command),
                }) => command.run(&cli::context(config)),
                Ok(Cli { command: None, .. }) => {
                    let _ = Cli::command().print_long_help();
                    Ok(exit::OK)
                }
                Err(err) => {
                    let _ = err.print();
                    Ok(if err.use_stderr() {
                        exit::USAGE
                    } else {
                        exit::OK
                    })
                }
            }
        }
    };
    ExitCode::from(finish(result))
}

/// Prints an error once (one line per configuration error) and returns the exit code.
fn finish(result: anyhow::Result<u8>) -> u8 {
    match result {
        Ok(code) => code,
        Err(err) => {
            if let Some(errors) = err.downcast_ref::<ConfigErrors>() {
                for error in &errors.0 {
                    eprintln!("Error: {error}");
                }
            } else {
                eprintln!("Error: {err:#}");
            }
            commands::exit_code(&err)
        }
    }
}

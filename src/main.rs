//! Entry point: picks the command, sets up logging and the runtime, prints any error once and maps
//! it to the documented exit code (`exit.rs`).

use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use cosmovisor::home::layout;
use cosmovisor::supervisor::{pid1, process, supervise, watcher};
use cosmovisor::upgrade::{batch, journal, steps as upgrade};
use cosmovisor::{cli, commands, config, exit, log};
use tracing::info;

use cosmovisor::cli::{Cli, Command, Dispatch};
use cosmovisor::config::{Config, ConfigError, ConfigErrors};

fn main() -> ExitCode {
    if pid1::is_pid1() {
        return ExitCode::from(pid1::run_as_init());
    }
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let code = match cli::dispatch(&args) {
        Dispatch::Run {
            args,
            config,
            implicit,
        } => run(config.as_deref(), &args, implicit),
        Dispatch::Version => finish(commands::version::print_own()),
        Dispatch::HelpImplicitRun { word } => {
            finish(commands::completion::explain_implicit_run(&word))
        }
        Dispatch::Clap => {
            let cli = match Cli::try_parse_from(
                std::iter::once(OsString::from("cosmovisor")).chain(args),
            ) {
                Ok(cli) => cli,
                Err(err) => {
                    let _ = err.print();
                    return ExitCode::from(if err.use_stderr() {
                        exit::USAGE
                    } else {
                        exit::OK
                    });
                }
            };
            command(cli)
        }
    };
    ExitCode::from(code)
}

fn command(cli: Cli) -> u8 {
    let config = cli.config.as_deref();
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        let _ = Cli::command().print_long_help();
        return exit::OK;
    };
    match command {
        Command::Run { args } => run(config, &args, false),
        Command::Version {
            output,
            cosmovisor_only,
            args,
        } => {
            init_logging(config);
            finish(block_on(commands::version::run(
                config,
                output,
                cosmovisor_only,
                &args,
            )))
        }
        Command::Init { path } => {
            init_logging(config);
            finish(commands::init::run(&path, config))
        }
        Command::Config => finish(commands::info::config(config)),
        Command::AddUpgrade {
            name,
            path,
            force,
            upgrade_height,
        } => {
            init_logging(config);
            finish(block_on(commands::add_upgrade::add_upgrade(
                config,
                &name,
                &path,
                force,
                upgrade_height,
            )))
        }
        Command::AddBatchUpgrade {
            upgrade_list,
            upgrade_file,
        } => {
            init_logging(config);
            finish(block_on(commands::add_upgrade::add_batch_upgrade(
                config,
                &upgrade_list,
                upgrade_file.as_deref(),
            )))
        }
        Command::PrepareUpgrade => {
            init_logging(config);
            finish(block_on(commands::prepare::run(config)))
        }
        Command::ShowUpgradeInfo { output } => {
            finish(commands::info::show_upgrade_info(config, output))
        }
        Command::Status { output } => finish(commands::status::run(config, output)),
        Command::Doctor { unit, args } => commands::doctor::run(config, unit.as_deref(), &args),
        Command::Rollback {
            to,
            restore_data,
            yes,
        } => {
            init_logging(config);
            finish(commands::rollback::run(
                config,
                &commands::rollback::Request {
                    to: to.as_deref(),
                    restore_data,
                    yes,
                },
            ))
        }
        Command::Completion { shell } => finish(commands::completion::completion(shell)),
        Command::Man => finish(commands::completion::man()),
    }
}

fn run(config_file: Option<&Path>, args: &[OsString], implicit: bool) -> u8 {
    let cfg = match commands::info::load_checked(config_file) {
        Ok(cfg) => cfg,
        Err(err) => return finish(Err(err)),
    };
    init_logging_with(&cfg);
    if implicit {
        info!(
            "no cosmovisor command given; running the daemon as `cosmovisor run` would (`run` is the explicit form)"
        );
    }
    finish(block_on(supervise::run(&cfg, args)))
}

/// Sets up logging from the configuration when it loads; silently with defaults when it does
/// not (the command reports the configuration error itself).
fn init_logging(config_file: Option<&Path>) {
    match Config::load(config_file) {
        Ok(cfg) => init_logging_with(&cfg),
        Err(_) => {
            let _ = log::init(log::Settings {
                disabled: false,
                color: false,
                time_pattern: config::TimeFormat::Kitchen.strftime(),
                format: log::Format::Console,
            });
        }
    }
}

fn init_logging_with(cfg: &Config) {
    let _ = log::init(log::Settings {
        disabled: cfg.disable_logs,
        color: log::use_color(
            cfg.color_logs,
            std::env::var_os(config::COSMOVISOR_COLOR_LOGS).as_deref(),
            std::io::stderr().is_terminal(),
        ),
        time_pattern: cfg.time_format.strftime(),
        format: match cfg.log_format {
            config::LogFormat::Console => log::Format::Console,
            config::LogFormat::Json => log::Format::Json,
        },
    });
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    // One thread: the daemon is spawned from it, so its parent-death signal is tied to a thread
    // that lives as long as we do (see process.rs).
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(err) => {
            eprintln!("Error: cannot start the async runtime: {err}");
            std::process::exit(i32::from(exit::INTERNAL));
        }
    }
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
            exit_code_for(&err)
        }
    }
}

/// The documented exit code for an error, by the first cause we recognise.
fn exit_code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<ConfigErrors>() || cause.is::<ConfigError>() {
            return exit::CONFIG;
        }
        if cause.is::<layout::LayoutError>() || cause.is::<layout::BinaryError>() {
            return exit::LAYOUT;
        }
        if cause.is::<upgrade::UpgradeError>()
            || cause.is::<journal::JournalError>()
            || cause.is::<batch::BatchError>()
            || cause.is::<watcher::UnusablePlan>()
        {
            return exit::UPGRADE_FAILED;
        }
        if cause.is::<commands::init::ArgumentError>()
            || cause.is::<commands::add_upgrade::ArgumentError>()
        {
            return exit::USAGE;
        }
        if cause.is::<commands::add_upgrade::UnderWayError>() {
            return exit::HOME_BUSY;
        }
        if let Some(rollback) = cause.downcast_ref::<commands::rollback::RollbackError>() {
            return rollback.exit_code();
        }
        if let Some(spawn) = cause.downcast_ref::<process::SpawnError>() {
            return spawn.exit_code();
        }
    }
    exit::INTERNAL
}

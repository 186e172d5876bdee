//! The `cutover` command: every step of a migration project for the vendor's operators.

mod args;
mod commands;
mod demo;
mod exit;
mod out;
mod report;

use std::process::ExitCode;

use clap::Parser;

// The engine allocates rows on one thread and frees them on another; glibc's allocator then
// serialises the threads on its arena lock (a tenth of a final migration's time went there).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    init_tracing(cli.verbose);
    let json = cli.json;
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match rt.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let (code, text) = exit::classify(&err);
            if json {
                println!("{}", exit::error_json(&err));
            }
            eprintln!("error: {text}");
            ExitCode::from(code)
        }
    }
}

fn init_tracing(verbose: u8) {
    // sqlx reports long bulk statements as "slow"; for a migration tool they are the work itself.
    let default = match verbose {
        0 => "warn,sqlx=error",
        1 => "info,sqlx=error",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUTOVER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

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
    few_malloc_arenas();
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

/// The C library's arenas: the environment variable glibc reads at start, and how many.
const ARENA_VAR: &str = "MALLOC_ARENA_MAX";
const ARENAS: &str = "2";

/// Runs this program again with glibc's allocator held to [`ARENAS`] arenas, unless the
/// environment already says how many. SQLite allocates through the C library, not through
/// mimalloc, and glibc gives each thread that allocates an arena of its own and keeps what is
/// freed there: with a reader thread per table and a scan opened ahead on another, a first
/// migration SQLite→SQLite at TPC-H scale 2 peaked at 275-287 MiB; with two arenas 251 MiB, in
/// the same time. One arena gave 198 MiB, but the final migration's SQLite readers then waited
/// on its lock (0.2-0.4 s slower in replays). The variable is only read when a process starts,
/// hence running again; where that fails the program goes on as it is.
fn few_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os(ARENA_VAR).is_none()
        && let Ok(exe) = std::env::current_exe()
    {
        use std::os::unix::process::CommandExt;
        // Only returns when it could not run the program.
        let _ = std::process::Command::new(exe).args(std::env::args_os().skip(1)).env(ARENA_VAR, ARENAS).exec();
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

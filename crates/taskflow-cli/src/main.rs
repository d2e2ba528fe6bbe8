//! The `taskflow` binary: see the `taskflow_cli` library for how it works.

/// mimalloc rather than the system allocator, as in the server example: under load, glibc's
/// malloc and free were a fifth of a task page's time (README "Performance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(taskflow_cli::main_from(std::env::args_os()))
}

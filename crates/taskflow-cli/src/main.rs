//! The `taskflow` binary: see the `taskflow_cli` library for how it works.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(taskflow_cli::main_from(std::env::args_os()))
}

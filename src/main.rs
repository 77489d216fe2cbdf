//! The `leadloop` binary: everything lives in the library; see `leadloop::cli`.

fn main() -> std::process::ExitCode {
    leadloop::cli::main()
}

//! The `hookguard` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    hookguard::cli::main()
}

//! The `hookguard` binary; everything lives in the library.

/// See Cargo.toml: measured faster than the system allocator on the request
/// path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hookguard::cli::main()
}

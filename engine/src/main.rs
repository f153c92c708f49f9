//! The `pulse` binary.

/// mimalloc: the engine allocates and frees a few strings per event on the
/// decode path, where the system allocator costs more than the parsing.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    pulse::cli::main()
}

//! The `pulse` binary.

/// mimalloc: the engine allocates and frees a few strings per event on the
/// decode path, where the system allocator costs more than the parsing.
/// With its `override` feature it is also the C libraries' `malloc`:
/// librdkafka allocates every fetched message on its broker threads and the
/// workers free it; with mimalloc there a bounded Kafka read takes 5–10 %
/// fewer cycles than with glibc's arenas (benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    pulse::cli::main()
}

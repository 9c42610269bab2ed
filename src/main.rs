//! The `livechat` binary: parse the command line and hand over to [`livechat::cli`].

/// jemalloc instead of the system allocator: freed memory goes back to the
/// system within about a second (its options are compiled in through
/// `.cargo/config.toml`), where glibc's arenas kept ~110 KiB per closed
/// WebSocket; BENCHMARKS.md has the figures.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    livechat::cli::main()
}

//! The `regbridge` binary: see [`regbridge_proxy::cli`].

/// glibc's allocator keeps freed memory in per-thread arenas; with tokio's blocking threads writing
/// uploads and reading blobs, that grew the server's resident memory run after run. mimalloc returns it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    regbridge_proxy::cli::main(std::env::args_os().collect())
}

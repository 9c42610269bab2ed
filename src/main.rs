//! The `livechat` binary: parse the command line and hand over to [`livechat::cli`].

fn main() -> std::process::ExitCode {
    livechat::cli::main()
}

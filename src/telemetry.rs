//! Logging set-up: `tracing` to stderr, human or JSON.

use crate::config::{LogArgs, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a bad filter is a start-up error.
pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&args.log)
        .map_err(|e| anyhow::anyhow!("--log / LIVECHAT_LOG is not a valid filter ({e}); try `info`"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match args.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

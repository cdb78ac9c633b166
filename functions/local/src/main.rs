//! The `wa-server` command: `wa-server` (or `wa-server serve`) runs the embedded server;
//! `wa-server token --tenant <id>` prints a tenant JWT for the /apps routes;
//! `wa-server aws-init` creates the DynamoDB table, SQS queues and S3 media bucket the
//! environment names (in a build with the feature `aws`; without it, it fails saying so).

use clap::{Parser, Subcommand};
use wa_server::{Config, LogFormat};

#[derive(Parser)]
#[command(
    name = "wa-server",
    version,
    about = "Multi-tenant WhatsApp API server"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Print a tenant JWT signed with WA_JWT_SECRET (or the data directory's secret).
    Token {
        /// The tenant the token is for.
        #[arg(long)]
        tenant: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl_secs: u64,
    },
    /// Create the DynamoDB table (WA_TABLE_NAME), the SQS queues (WA_*_QUEUE_URL) with
    /// their dead-letter queues and the media bucket (WA_MEDIA_BUCKET) when they are
    /// missing: for emulators and first runs (in AWS the SAM template creates them). Needs a
    /// build with `--features aws`.
    AwsInit,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wa-server: invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_tracing(config.log_format);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => run_server(config),
        Command::Token { tenant, ttl_secs } => print_token(&config, &tenant, ttl_secs),
        Command::AwsInit => aws_init(&config),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "wa-server failed");
            eprintln!("wa-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_server(config: Config) -> anyhow::Result<()> {
    wa_worker::capacity::raise_open_files_limit();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(wa_server::serve(config, wa_server::shutdown_signal()))
}

fn aws_init(config: &Config) -> anyhow::Result<()> {
    let done = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(wa_aws::init(&config.aws))?;
    if done.is_empty() {
        anyhow::bail!(
            "nothing to create: set WA_TABLE_NAME, the WA_*_QUEUE_URL variables and/or WA_MEDIA_BUCKET"
        );
    }
    for line in done {
        println!("{line}");
    }
    Ok(())
}

fn print_token(config: &Config, tenant: &str, ttl_secs: u64) -> anyhow::Result<()> {
    let jwt = wa_server::jwt_config(config)?;
    let token = jwt.mint(tenant, ttl_secs).map_err(anyhow::Error::msg)?;
    println!("{token}");
    Ok(())
}

/// Logs go to stderr (stdout is for command output such as `token`).
fn init_tracing(format: LogFormat) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .init(),
        LogFormat::Pretty => builder.init(),
    }
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "panic");
    }));
}

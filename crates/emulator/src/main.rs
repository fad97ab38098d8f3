//! `plugboard-emulator --port N [--demo] [--redirect-uri URI]...`
//!
//! Prints the emulator's URL on the first line of stdout and, with `--demo`, the demo setup
//! as one line of JSON, then serves until Ctrl-C or SIGTERM.

use anyhow::{Context, bail};
use plugboard_emulator::{DemoOptions, Emulator, EmulatorOptions};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "usage: plugboard-emulator [--port N] [--demo] [--redirect-uri URI]...";

#[derive(Debug, Default)]
struct Args {
    port: u16,
    demo: bool,
    redirect_uris: Vec<String>,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
        let mut parsed = Args::default();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg, None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .with_context(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--port" => {
                    parsed.port = value()?.parse().context("--port must be a port number")?
                }
                "--redirect-uri" => parsed.redirect_uris.push(value()?),
                "--demo" => parsed.demo = true,
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument '{other}'\n{USAGE}"),
            }
        }
        Ok(parsed)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse(std::env::args().skip(1))?;
    let emulator = Emulator::start(EmulatorOptions {
        port: args.port,
        ..EmulatorOptions::default()
    })
    .await?;
    println!("{}", emulator.url());
    if args.demo {
        let options = DemoOptions {
            redirect_uris: args.redirect_uris,
            ..DemoOptions::default()
        };
        let setup = emulator.control().setup_demo(options).await?;
        println!("{}", serde_json::to_string(&setup)?);
    }
    shutdown_signal().await?;
    emulator.shutdown().await;
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Args> {
        Args::parse(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn flags_parse_in_both_spellings() {
        let args = parse(&[
            "--port",
            "8400",
            "--demo",
            "--redirect-uri=http://a/cb",
            "--redirect-uri",
            "http://b/cb",
        ])
        .unwrap();
        assert_eq!(args.port, 8400);
        assert!(args.demo);
        assert_eq!(args.redirect_uris, ["http://a/cb", "http://b/cb"]);
        assert!(parse(&["--port"]).is_err());
        assert!(parse(&["--verbose"]).is_err());
    }
}

//! `fake-anthropic`: runs the fake model APIs (Messages, Gemini, Responses) in the foreground, for
//! manual runs of the CLIs and for tests that start it as a separate process.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use fake_anthropic::{FakeAnthropic, Options};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Fake model APIs: Anthropic Messages, Gemini, OpenAI Responses (loopback only), scripted by [[scenario:NAME]] markers"
)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Loopback address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Scenario for requests without a marker.
    #[arg(long, default_value = "hello")]
    default_scenario: String,
}

/// Starts the server, announces its URL on stdout and serves until the process is killed.
fn main() -> ExitCode {
    let args = Args::parse();
    let options = Options {
        host: args.host,
        port: args.port,
        default_scenario: args.default_scenario,
    };
    let server = match FakeAnthropic::start_with(options) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("fake-anthropic: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    // If stdout is gone nobody can learn the port, but the server still works: keep serving.
    let _ = writeln!(stdout, "fake-anthropic listening on {}", server.url());
    let _ = stdout.flush();
    drop(stdout);
    server.wait();
    ExitCode::SUCCESS
}

//! `agentstream-bench`: starts the real server (release build) on 127.0.0.1 with a fresh SQLite file and
//! drives it over real sockets with synthetic agents, checking as it goes that every message arrives
//! exactly once and in order — a run that loses one fails instead of printing a number.
//!
//! Scenarios: throughput, latency at a fixed offered load, fan-out, idle connections, history reads,
//! two references on the same disk (the seed's persistence, and raw bulk insert), and on PostgreSQL
//! several instances on one database. `--smoke` runs each in
//! seconds (CI keeps it compiling and correct); `--append FILE` adds the figures to BENCHMARKS.md.

mod instances;
mod references;
mod references_postgres;
mod scenarios;
mod server;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "agentstream-bench",
    about = "Benchmarks agentstream over real sockets"
)]
pub struct Args {
    /// Small sizes: seconds in all (for CI).
    #[arg(long)]
    pub smoke: bool,
    /// The server binary (default: the `agentstream` next to this one).
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// Only these scenarios (comma-separated): throughput, latency, fanout, connections, history,
    /// references, instances (PostgreSQL only).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Append the results, the command and the machine to this markdown file.
    #[arg(long)]
    pub append: Option<PathBuf>,
}

/// One measured figure.
pub struct Row {
    pub scenario: &'static str,
    pub metric: String,
    pub value: String,
    pub target: &'static str,
}

/// CLOCK_MONOTONIC in nanoseconds (the server stamps tokens with the same clock).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Lets this process (and the server it starts) open many sockets.
/// CPU time this process (the load generator) has used (user + system), in seconds.
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on structs we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores ({cpu}), Linux {}", kernel.trim())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    raise_fd_limit();
    let binary = args.server.clone().unwrap_or_else(server::default_binary);
    if !binary.exists() {
        eprintln!(
            "no server binary at {}: build it with `cargo build --release -p agentstream`",
            binary.display()
        );
        return std::process::ExitCode::from(2);
    }
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let mut rows: Vec<Row> = Vec::new();
    let started = std::time::Instant::now();
    let mut failed = false;
    type Scenario = fn(
        PathBuf,
        bool,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Vec<Row>, String>>>,
    >;
    let all: [(&str, Scenario); 7] = [
        ("throughput", |b, s| Box::pin(scenarios::throughput(b, s))),
        ("latency", |b, s| Box::pin(scenarios::latency(b, s))),
        ("fanout", |b, s| Box::pin(scenarios::fanout(b, s))),
        ("connections", |b, s| Box::pin(scenarios::connections(b, s))),
        ("history", |b, s| Box::pin(scenarios::history(b, s))),
        ("references", |b, s| Box::pin(references::references(b, s))),
        ("instances", |b, s| Box::pin(instances::instances(b, s))),
    ];
    for (name, run) in all {
        if !wanted(name) {
            continue;
        }
        eprintln!("== {name}");
        match run(binary.clone(), args.smoke).await {
            Ok(r) => rows.extend(r),
            Err(e) => {
                eprintln!("FAILED {name}: {e}");
                failed = true;
            }
        }
    }
    let ratios = scenarios::ratios(&rows);
    rows.extend(ratios);
    let table = render(&rows);
    println!("{table}");
    println!(
        "total {:.1} s{}",
        started.elapsed().as_secs_f64(),
        if args.smoke { " (smoke mode)" } else { "" }
    );
    if let Some(path) = &args.append {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        let section = format!(
            "\n## {} — {}\n\n`{}`\n\nMachine: {}; server {}.\n\n{}\n",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
            if args.smoke { "smoke" } else { "full run" },
            command,
            machine(),
            binary.display(),
            table
        );
        let mut text = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
        text.push_str(&section);
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

fn render(rows: &[Row]) -> String {
    let mut out = String::from("| scenario | metric | value | target |\n|---|---|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.scenario, r.metric, r.value, r.target
        ));
    }
    out
}

/// Formats a rate.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

//! What `/proc` says about processes: the server's memory and CPU time (the benchmark's figures, a
//! test's memory bound), and which processes a test left behind (the Claude CLI's, Chromium's).

/// Every live process's id.
pub fn pids() -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

/// Its command line, the arguments joined by spaces (empty once it is gone).
pub fn cmdline(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

/// Whether its environment has exactly this `NAME=value` entry.
pub fn has_env(pid: i32, entry: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .any(|kv| kv == entry.as_bytes())
}

/// Whether it is a zombie (dead, not yet reaped), or gone.
pub fn is_zombie_or_gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`…), in bytes.
pub fn status_bytes(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// CPU time it has used (user + system), in seconds; 0 once it is gone.
pub fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at its closing parenthesis.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .map_or(0, |t| t.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    ticks as f64 / hz as f64
}

/// The processes a test's server started (an agent's CLI and everything the CLI started), told apart
/// from every other process on the machine by an `AGENTSTREAM_TEST_MARKER` entry in their environment:
/// the test gives it to its servers ([`Marked::env`]), and what they spawn inherits it.
#[derive(Debug, Clone)]
pub struct Marked {
    marker: String,
}

impl Default for Marked {
    fn default() -> Self {
        Self::new()
    }
}

impl Marked {
    pub fn new() -> Self {
        Marked {
            marker: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// The environment entry to give the servers.
    pub fn env(&self) -> (&'static str, &str) {
        ("AGENTSTREAM_TEST_MARKER", &self.marker)
    }

    /// Live processes carrying the marker, but the `servers` themselves.
    pub fn processes(&self, servers: &[Option<i32>]) -> Vec<i32> {
        let needle = format!("AGENTSTREAM_TEST_MARKER={}", self.marker);
        pids()
            .into_iter()
            .filter(|&pid| {
                has_env(pid, &needle) && !is_zombie_or_gone(pid) && !servers.contains(&Some(pid))
            })
            .collect()
    }

    /// Waits until a marked process whose command line contains `needle` runs; returns its pid.
    pub async fn wait_process(&self, needle: &str, servers: &[Option<i32>]) -> i32 {
        tokio::time::timeout(crate::TIMEOUT, async {
            loop {
                if let Some(pid) = self
                    .processes(servers)
                    .into_iter()
                    .find(|&pid| cmdline(pid).contains(needle))
                {
                    return pid;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no process running {needle:?}"))
    }

    /// Waits (10 s at most) until no marked process is left but the servers.
    pub async fn assert_none_left(&self, servers: &[Option<i32>]) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left = self.processes(servers);
            if left.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "processes left behind: {:?}",
                left.iter().map(|&p| (p, cmdline(p))).collect::<Vec<_>>()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

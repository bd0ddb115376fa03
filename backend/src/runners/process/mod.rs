//! A runner that is a child process: started in a process group of its own, its stdout read line by line
//! (each line bounded), the tail of its stderr kept for error messages, stdin open for input until told
//! to close, and stopped as a whole — SIGINT first (an agent CLI then writes a clean end), SIGTERM, then
//! SIGKILL — so that nothing it started is left behind, even in process groups of its own ([`tree`]).
//! It is killed with the server, however the server ends (`PR_SET_PDEATHSIG`), and when it prints
//! nothing for its idle timeout (a hung CLI).
//! Its lines are read with [`read_bounded_line`] ([`lines`]).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentstream_wire::{ErrorCode, ErrorInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, watch};

mod lines;
mod tree;

pub use lines::read_bounded_line;
use tree::{kill_tree, signal_group, watch_tree, Proc, ProcessControl};

use super::{InputLines, RunnerEvent, RunnerExit, Started};

/// How many bytes of stderr are kept for error messages.
const STDERR_TAIL_BYTES: usize = 4096;

/// How many events may wait between the process and its agent: beyond it, reading pauses, the pipe
/// fills, and the process waits on its own writes.
const CHANNEL_DEPTH: usize = 64;

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessSpec {
    /// Shown in messages (`claude`).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    /// What its stdin is.
    pub stdin: Stdin,
    /// Lines longer than this are cut (and reported).
    pub max_line_bytes: usize,
    /// How long each signal of a stop is given before the next one.
    pub stop_grace: Duration,
    /// The setting that names the program, for "not found" messages.
    pub program_setting: String,
    /// It is stopped, and fails with `cli_timeout`, when it prints nothing for this long.
    pub idle_timeout: Option<IdleTimeout>,
}

/// A command line: fixed arguments, then a flag for each value a configuration gives.
#[derive(Clone, Debug, Default)]
pub struct Args(Vec<OsString>);

impl Args {
    pub fn new(fixed: &[&str]) -> Self {
        Args(fixed.iter().map(OsString::from).collect())
    }

    /// `name value` when there is a value.
    pub fn flag(&mut self, name: &str, value: Option<&String>) {
        if let Some(value) = value {
            self.0.extend([name.into(), value.into()]);
        }
    }

    /// `name value` for each value.
    pub fn flags(&mut self, name: &str, values: Option<&Vec<String>>) {
        for value in values.into_iter().flatten() {
            self.flag(name, Some(value));
        }
    }

    /// Arguments as they are.
    pub fn extend<S: AsRef<std::ffi::OsStr>>(&mut self, args: impl IntoIterator<Item = S>) {
        self.0
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
    }

    pub fn into_vec(self) -> Vec<OsString> {
        self.0
    }
}

/// What a process's stdin is.
#[derive(Clone, Debug, PartialEq)]
pub enum Stdin {
    /// An input channel: these lines at start, each followed by a newline, and later ones
    /// ([`super::RunnerControl::send_line`]) until it is closed.
    Lines(Vec<String>),
    /// This text, as is, then the end of input (a CLI that reads its prompt from stdin and has no
    /// input channel).
    Text(String),
}

/// How long a process may print nothing, and the setting that says so (for the error message).
#[derive(Clone, Debug)]
pub struct IdleTimeout {
    pub after: Duration,
    pub setting: String,
    /// While set, silence is expected (the agent waits for a permission answer): no timeout.
    pub hold: Arc<AtomicBool>,
}

impl PartialEq for IdleTimeout {
    fn eq(&self, other: &Self) -> bool {
        self.after == other.after && self.setting == other.setting
    }
}

impl IdleTimeout {
    pub fn new(after: Duration, setting: &str) -> Self {
        IdleTimeout {
            after,
            setting: setting.to_owned(),
            hold: Arc::default(),
        }
    }
}

/// Starts the process. Fails at once when it cannot be started (not found, not executable).
pub fn spawn(spec: ProcessSpec) -> Result<Started, ErrorInfo> {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    // The agent dies with this server, even a server killed with SIGKILL: nothing else reads its
    // output, and the session it was in is resumed by a new process once the server is back (two
    // processes in one session would write over each other).
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: between fork and exec only async-signal-safe calls (prctl, getppid) are made, on
    // values copied into the closure.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The server died before the signal was armed.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("the server is gone"));
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| spawn_error(&spec, &e))?;
    let pgid = child.id().map(|id| id as i32);
    let (stdout, stderr, stdin) =
        match (child.stdout.take(), child.stderr.take(), child.stdin.take()) {
            (Some(o), Some(e), Some(i)) => (o, e, i),
            _ => {
                return Err(ErrorInfo::new(
                    ErrorCode::ProcessFailed,
                    format!("{}: its pipes could not be opened", spec.name),
                ))
            }
        };
    let (mut input, lines) = InputLines::open();
    let text = match &spec.stdin {
        Stdin::Lines(first) => {
            for line in first {
                let _ = input.send(line.clone());
            }
            None
        }
        Stdin::Text(text) => {
            input.close();
            Some(text.clone())
        }
    };
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_BYTES)));
    let tree = Arc::new(Mutex::new(Vec::new()));
    let (events_tx, events_rx) = mpsc::channel(CHANNEL_DEPTH);
    let (exited_tx, exited_rx) = watch::channel(false);
    if let Some(pid) = pgid {
        tokio::spawn(watch_tree(pid, tree.clone(), exited_rx.clone()));
    }

    tokio::spawn(write_input(stdin, text, lines));
    tokio::spawn(keep_tail(stderr, tail.clone()));
    // In the span it was started in (the agent's): its lines say whose process it is.
    tokio::spawn(tracing::Instrument::in_current_span(supervise(
        child,
        stdout,
        spec.clone(),
        pgid,
        tail,
        tree.clone(),
        events_tx,
        exited_tx,
    )));

    let events = futures_util::stream::unfold(events_rx, |mut rx| async move {
        rx.recv().await.map(|event| (event, rx))
    });
    Ok(Started {
        events: Box::pin(events),
        control: Some(Box::new(ProcessControl {
            pgid,
            input,
            tree,
            exited: exited_rx,
            grace: spec.stop_grace,
        })),
    })
}

fn spawn_error(spec: &ProcessSpec, e: &std::io::Error) -> ErrorInfo {
    match e.kind() {
        std::io::ErrorKind::NotFound => ErrorInfo::new(
            ErrorCode::CliNotFound,
            format!(
                "the {} program {:?} was not found; install it or point the setting {} at it",
                spec.name,
                spec.program.display().to_string(),
                spec.program_setting
            ),
        ),
        _ => ErrorInfo::new(
            ErrorCode::CliSpawnFailed,
            format!(
                "the {} program {:?} could not be started: {e}",
                spec.name,
                spec.program.display().to_string()
            ),
        ),
    }
}

/// Writes `text`, then the lines sent for stdin, in order, each followed by a newline; closes stdin
/// when the sender is dropped (or the process closed its end).
async fn write_input(
    mut pipe: ChildStdin,
    text: Option<String>,
    mut lines: mpsc::UnboundedReceiver<String>,
) {
    if let Some(text) = text {
        if pipe.write_all(text.as_bytes()).await.is_err() || pipe.flush().await.is_err() {
            return;
        }
    }
    while let Some(line) = lines.recv().await {
        if pipe.write_all(line.as_bytes()).await.is_err()
            || pipe.write_all(b"\n").await.is_err()
            || pipe.flush().await.is_err()
        {
            break;
        }
    }
}

/// Keeps the last bytes of stderr.
async fn keep_tail(mut stderr: tokio::process::ChildStderr, tail: Arc<Mutex<VecDeque<u8>>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if let Ok(mut tail) = tail.lock() {
            tail.extend(&buf[..n]);
            let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
            tail.drain(..excess);
        }
    }
}

fn tail_text(tail: &Mutex<VecDeque<u8>>) -> String {
    let bytes: Vec<u8> = tail
        .lock()
        .map(|t| t.iter().copied().collect())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

/// Reads stdout to its end, reports the exit, and leaves no process of the tree behind.
#[allow(clippy::too_many_arguments)]
async fn supervise(
    mut child: Child,
    stdout: tokio::process::ChildStdout,
    spec: ProcessSpec,
    pgid: Option<i32>,
    tail: Arc<Mutex<VecDeque<u8>>>,
    tree: Arc<Mutex<Vec<Proc>>>,
    events: mpsc::Sender<RunnerEvent>,
    exited: watch::Sender<bool>,
) {
    let progress = Arc::new(ReadProgress::default());
    let mut reading = tokio::spawn(tracing::Instrument::in_current_span(read_stdout(
        stdout,
        spec.max_line_bytes,
        spec.idle_timeout.clone(),
        events.clone(),
        progress.clone(),
    )));
    // The leader's exit decides, not stdout's end: a tool that inherited stdout may hold it open.
    let mut silent = false;
    let status = tokio::select! {
        status = child.wait() => status,
        read = &mut reading => {
            if matches!(read, Ok(ReadEnd::Silent)) {
                silent = true;
                if let Some(pgid) = pgid {
                    signal_group(pgid, libc::SIGKILL);
                    kill_tree(&tree, libc::SIGKILL);
                }
            }
            child.wait().await
        }
    };
    if let Some(pgid) = pgid {
        // Whatever the agent started (a tool's `sleep 300`, in its group or not) ends with it.
        signal_group(pgid, libc::SIGKILL);
        kill_tree(&tree, libc::SIGKILL);
    }
    // Drain what is left. Waiting on a slow agent is progress; a pipe silent for a while is not.
    let mut last = progress.lines.load(Ordering::Relaxed);
    let mut idle = Duration::ZERO;
    while !reading.is_finished() {
        tokio::time::sleep(DRAIN_POLL).await;
        let now = progress.lines.load(Ordering::Relaxed);
        if now != last || progress.sending.load(Ordering::Relaxed) {
            last = now;
            idle = Duration::ZERO;
        } else {
            idle += DRAIN_POLL;
            if idle >= DRAIN_IDLE_LIMIT {
                tracing::warn!("the agent's stdout stayed open after it exited; closing it");
                reading.abort();
                break;
            }
        }
    }
    let _ = exited.send(true);
    let error = match (status, &spec.idle_timeout) {
        (_, Some(timeout)) if silent => Some(ErrorInfo::new(
            ErrorCode::CliTimeout,
            format!(
                "{} printed nothing for {} s and was stopped (the setting {})",
                spec.name,
                timeout.after.as_secs_f64(),
                timeout.setting
            ),
        )),
        (Ok(status), _) => exit_error(&spec.name, status, &tail_text(&tail)),
        (Err(e), _) => Some(ErrorInfo::new(
            ErrorCode::ProcessFailed,
            format!("{}: cannot wait for it: {e}", spec.name),
        )),
    };
    let _ = events.send(RunnerEvent::Exited(RunnerExit { error })).await;
}

/// How the stdout reader is doing, for the drain after the process exited.
#[derive(Default)]
struct ReadProgress {
    /// Lines read so far.
    lines: AtomicUsize,
    /// The reader waits for the agent to take a line (progress, not a stall).
    sending: AtomicBool,
}

/// How often, and for how long at most, a silent stdout is waited for after the process exited.
const DRAIN_POLL: Duration = Duration::from_millis(100);
const DRAIN_IDLE_LIMIT: Duration = Duration::from_secs(2);

/// Why reading stdout stopped.
#[derive(Debug, PartialEq, Eq)]
enum ReadEnd {
    /// Its end (or a read error).
    Closed,
    /// Nothing came within the idle timeout.
    Silent,
}

/// Reads stdout to its end, line by line, into `events`; gives up when no line comes within `idle`.
async fn read_stdout(
    stdout: tokio::process::ChildStdout,
    max_line_bytes: usize,
    idle: Option<IdleTimeout>,
    events: mpsc::Sender<RunnerEvent>,
    progress: Arc<ReadProgress>,
) -> ReadEnd {
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut listening = true;
    loop {
        let mut read = std::pin::pin!(read_bounded_line(&mut reader, max_line_bytes));
        let read = match &idle {
            // Measured from the last line, so a slow agent that keeps printing never times out.
            Some(idle) => loop {
                match tokio::time::timeout(idle.after, &mut read).await {
                    Ok(read) => break read,
                    Err(_) if idle.hold.load(Ordering::Relaxed) => continue,
                    Err(_) => return ReadEnd::Silent,
                }
            },
            None => read.await,
        };
        let line = match read {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "reading the agent's stdout failed");
                break;
            }
        };
        progress.lines.fetch_add(1, Ordering::Relaxed);
        // Once the agent stops listening, keep draining so the process never blocks on a full pipe.
        if listening {
            progress.sending.store(true, Ordering::Relaxed);
            listening = events.send(line).await.is_ok();
            progress.sending.store(false, Ordering::Relaxed);
        }
    }
    ReadEnd::Closed
}

/// The error an exit status means, with the end of stderr.
fn exit_error(name: &str, status: ExitStatus, stderr: &str) -> Option<ErrorInfo> {
    use std::os::unix::process::ExitStatusExt;
    let detail = if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    };
    if let Some(signal) = status.signal() {
        return Some(ErrorInfo::new(
            ErrorCode::CliKilled,
            format!("{name} was killed by signal {signal}{detail}"),
        ));
    }
    match status.code() {
        Some(0) => None,
        Some(code) => Some(ErrorInfo::new(
            ErrorCode::CliExit,
            format!("{name} exited with code {code}{detail}"),
        )),
        None => Some(ErrorInfo::new(
            ErrorCode::CliExit,
            format!("{name} ended without an exit code{detail}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::tree::{descendants, TREE_SNAPSHOT_EVERY};
    use super::*;

    fn spec(program: &str, args: &[&str]) -> ProcessSpec {
        ProcessSpec {
            name: "test".into(),
            program: program.into(),
            args: args.iter().map(OsString::from).collect(),
            cwd: None,
            env: vec![],
            stdin: Stdin::Lines(vec!["hello".into()]),
            max_line_bytes: 1024,
            stop_grace: Duration::from_millis(500),
            program_setting: "test.program".into(),
            idle_timeout: None,
        }
    }

    #[tokio::test]
    async fn a_silent_process_is_stopped_after_its_idle_timeout() {
        use futures_util::StreamExt;
        let mut s = spec("sh", &["-c", "echo one; sleep 30 & wait"]);
        s.idle_timeout = Some(IdleTimeout::new(
            Duration::from_millis(300),
            "test.idle_timeout_ms",
        ));
        let begun = std::time::Instant::now();
        let events: Vec<_> = spawn(s).unwrap().events.collect().await;
        assert!(begun.elapsed() < Duration::from_secs(10), "{events:?}");
        assert_eq!(events[0], RunnerEvent::Bytes(b"one".to_vec()));
        let RunnerEvent::Exited(RunnerExit { error: Some(e) }) = &events[1] else {
            panic!("{events:?}")
        };
        assert_eq!(e.code, "cli_timeout");
        assert!(e.message.contains("test.idle_timeout_ms"), "{e:?}");
    }

    #[tokio::test]
    async fn text_on_stdin_is_written_as_is_and_closed() {
        use futures_util::StreamExt;
        let mut s = spec("sh", &["-c", "cat; echo; echo end"]);
        s.stdin = Stdin::Text("a prompt\nof two lines".into());
        let events: Vec<_> = spawn(s).unwrap().events.collect().await;
        assert_eq!(
            &events[..3],
            &[
                RunnerEvent::Bytes(b"a prompt".to_vec()),
                RunnerEvent::Bytes(b"of two lines".to_vec()),
                RunnerEvent::Bytes(b"end".to_vec()),
            ]
        );
    }

    #[tokio::test]
    async fn a_missing_program_names_its_setting() {
        let e = spawn(spec("/no/such/program", &[])).err().unwrap();
        assert_eq!(e.code, "cli_not_found");
        assert!(e.message.contains("test.program"));
    }

    #[tokio::test]
    async fn output_exit_code_and_stderr_tail_are_reported() {
        use futures_util::StreamExt;
        let started = spawn(spec(
            "sh",
            &["-c", "read x; echo got $x; echo oops >&2; exit 3"],
        ))
        .unwrap();
        let events: Vec<_> = started.events.collect().await;
        assert_eq!(events[0], RunnerEvent::Bytes(b"got hello".to_vec()));
        let RunnerEvent::Exited(exit) = &events[1] else {
            panic!("{events:?}")
        };
        let error = exit.error.clone().unwrap();
        assert_eq!(error.code, "cli_exit");
        assert!(error.message.contains("code 3: oops"), "{}", error.message);
    }

    /// Starts `sh` running `sleep 300` in the background (`setsid`: in a session of its own, like the
    /// CLI's Bash tool), then `shell_setup`, then prints `ready`; returns the runner and the sleeper's pid.
    async fn start_sleeper(setsid: bool, shell_setup: &str) -> (Started, i32) {
        use futures_util::StreamExt;
        let pidfile = tempfile_path().join("pid");
        let script = format!(
            "{} sleep 300 & echo $! > {}; {shell_setup} echo ready; wait",
            if setsid { "setsid" } else { "" },
            pidfile.display()
        );
        let mut started = spawn(spec("sh", &["-c", &script])).unwrap();
        let ready = started.events.next().await;
        assert_eq!(ready, Some(RunnerEvent::Bytes(b"ready".to_vec())));
        let pid = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        (started, pid)
    }

    /// Stops the runner and checks that its end is reported and the sleeper is gone.
    async fn stop_and_check(mut started: Started, sleeper: i32) {
        use futures_util::StreamExt;
        started.control.as_mut().unwrap().stop().await;
        let exit = started.events.next().await;
        assert!(matches!(exit, Some(RunnerEvent::Exited(_))), "{exit:?}");
        // Dead, or a zombie waiting for init to reap it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!alive(sleeper), "sleep 300 survived");
    }

    #[tokio::test]
    async fn stop_ends_the_whole_group() {
        let (started, sleeper) = start_sleeper(false, "trap '' INT;").await;
        stop_and_check(started, sleeper).await;
    }

    #[tokio::test]
    async fn stop_reaches_a_tool_in_its_own_session() {
        let (started, sleeper) = start_sleeper(true, "trap '' INT TERM;").await;
        stop_and_check(started, sleeper).await;
    }

    #[tokio::test]
    async fn a_tool_in_its_own_session_dies_with_its_killed_parent() {
        use futures_util::StreamExt;
        let (mut started, sleeper) = start_sleeper(true, "").await;
        tokio::time::sleep(TREE_SNAPSHOT_EVERY * 2).await;
        // Someone SIGKILLs the parent: it cannot clean up, the supervisor must.
        let parent = descendants(std::process::id() as i32)
            .into_iter()
            .find(|p| descendants(p.pid).iter().any(|c| c.pid == sleeper))
            .expect("the shell");
        unsafe { libc::kill(parent.pid, libc::SIGKILL) };
        let exit = started.events.next().await;
        let Some(RunnerEvent::Exited(RunnerExit { error: Some(e) })) = exit else {
            panic!("{exit:?}")
        };
        assert_eq!(e.code, "cli_killed");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!alive(sleeper), "the tool survived its parent");
    }

    /// True if `pid` runs (exists and is not a zombie).
    pub(crate) fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                stat.rsplit(')')
                    .next()
                    .and_then(|s| s.split_whitespace().next())
                    != Some("Z")
            }
            Err(_) => false,
        }
    }

    fn tempfile_path() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("agentstream-proc-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

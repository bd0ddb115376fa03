//! A process's tree, and stopping it. The Claude CLI runs each Bash tool in a process group of its
//! own, so signalling the CLI's group alone would orphan a tool's `sleep 300` when the CLI dies without
//! cleaning up: the supervisor keeps a snapshot of the process's descendants (from `/proc`, each with
//! its start time, so that a reused pid is never signalled) and kills what is left of them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use tokio::sync::watch;

use crate::runners::{InputClosed, InputLines, RunnerControl};

/// How often the descendants of a running process are listed.
pub(super) const TREE_SNAPSHOT_EVERY: Duration = Duration::from_millis(500);

/// A process seen in the tree: its pid and start time (so a reused pid is never signalled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Proc {
    pub(super) pid: i32,
    start: u64,
}

/// `(ppid, start time)` of a process, from `/proc/{pid}/stat`; `None` when it is gone or a zombie.
fn stat(pid: i32) -> Option<(i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((ppid, start))
}

/// Every live descendant of `root`.
pub(super) fn descendants(root: i32) -> Vec<Proc> {
    let mut children: std::collections::HashMap<i32, Vec<Proc>> = std::collections::HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some((ppid, start)) = stat(pid) {
                children.entry(ppid).or_default().push(Proc { pid, start });
            }
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for child in children.remove(&pid).unwrap_or_default() {
            stack.push(child.pid);
            out.push(child);
        }
    }
    out
}

/// Keeps `tree` up to date with the descendants of `pid` while it runs.
pub(super) async fn watch_tree(
    pid: i32,
    tree: Arc<Mutex<Vec<Proc>>>,
    mut exited: watch::Receiver<bool>,
) {
    loop {
        let now = tokio::task::spawn_blocking(move || descendants(pid))
            .await
            .unwrap_or_default();
        if *exited.borrow() {
            return;
        }
        if let Ok(mut tree) = tree.lock() {
            // Keep what was seen before too: a child that outlives its parent is still ours.
            for p in now {
                if !tree.contains(&p) {
                    tree.push(p);
                }
            }
            tree.retain(|p| stat(p.pid).is_some_and(|(_, start)| start == p.start));
        }
        if tokio::time::timeout(TREE_SNAPSHOT_EVERY, exited.wait_for(|done| *done))
            .await
            .is_ok()
        {
            return;
        }
    }
}

/// Signals every process of the snapshot that is still the same process.
pub(super) fn kill_tree(tree: &Mutex<Vec<Proc>>, signal: i32) {
    let procs = tree.lock().map(|t| t.clone()).unwrap_or_default();
    for p in procs {
        if stat(p.pid).is_some_and(|(_, start)| start == p.start) {
            // SAFETY: kill(2) on a pid just checked to be the process seen; it touches no memory of ours.
            unsafe {
                libc::kill(p.pid, signal);
            }
        }
    }
}

pub(super) fn signal_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals the process group; it touches no memory of ours.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// Stops a process runner.
pub(super) struct ProcessControl {
    pub(super) pgid: Option<i32>,
    /// The lines for its stdin, written in order by the process's writer task; dropped, stdin closes
    /// once what was sent is written.
    pub(super) input: InputLines,
    pub(super) tree: Arc<Mutex<Vec<Proc>>>,
    pub(super) exited: watch::Receiver<bool>,
    pub(super) grace: Duration,
}

impl RunnerControl for ProcessControl {
    fn send_line(&mut self, line: String) -> Result<(), InputClosed> {
        self.input.send(line)
    }

    fn end_input(&mut self) {
        self.input.close();
    }

    fn interrupt(&mut self) -> LocalBoxFuture<'static, ()> {
        // An agent CLI ends its turn cleanly on SIGINT (and then exits: it has no more input).
        if let (Some(pgid), false) = (self.pgid, *self.exited.borrow()) {
            signal_group(pgid, libc::SIGINT);
        }
        Box::pin(async {})
    }

    fn stop(&mut self) -> LocalBoxFuture<'static, ()> {
        let pgid = self.pgid;
        // Closed with the polite request: an agent CLI waiting for input exits.
        self.input.close();
        let mut exited = self.exited.clone();
        let grace = self.grace;
        let tree = self.tree.clone();
        Box::pin(async move {
            let Some(pgid) = pgid else { return };
            for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGKILL] {
                if *exited.borrow() {
                    break;
                }
                signal_group(pgid, signal);
                if signal != libc::SIGINT {
                    // Past the polite request, the tools (in groups of their own) are stopped too.
                    let now = tokio::task::spawn_blocking(move || descendants(pgid))
                        .await
                        .unwrap_or_default();
                    if let Ok(mut t) = tree.lock() {
                        t.extend(now);
                    }
                    kill_tree(&tree, signal);
                }
                let _ = tokio::time::timeout(grace, exited.wait_for(|done| *done)).await;
            }
            // The leader is gone; so is the rest of what it started.
            signal_group(pgid, libc::SIGKILL);
            kill_tree(&tree, libc::SIGKILL);
        })
    }
}

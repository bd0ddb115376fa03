//! `codex` agents: OpenAI's Codex CLI (`@openai/codex`, tested with 0.169.0) as `codex app-server`,
//! JSON-RPC over its stdin and stdout (one object per line, read by `parser::codex`).
//!
//! `codex exec --json` would be simpler, but it prints each answer whole; the app-server streams text
//! deltas, asks for approvals, and runs many turns in one process. So the runner is a JSON-RPC client:
//! it writes `initialize`, `initialized` and `thread/start` (or `thread/resume` to continue a thread)
//! at start, then a `turn/start` per prompt, and watches the lines on their way to the parser for
//! what it must react to ([`Session::saw`]): the thread's id, the turn under way (a follow-up waits
//! for its end: one sent during a turn would be merged into it, abandoning the answer being
//! streamed), approval requests (answered by id), and a refused request (the run ends with the
//! error). Stdin is closed once no turn is left, and the app-server exits.
//!
//! It runs with the server's environment and HOME, so the user's Codex configuration and login apply.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentstream_wire::{
    AgentType, AgentTypeInfo, CodexConfig, ErrorCode, ErrorInfo, OptionKind, PermissionAnswer,
    PermissionDecision,
};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde_json::{json, Value};

use super::kind::bounds::{self, invalid, plain_arg};
use super::kind::{choice, option, parse_configuration, AgentKind, Cli};
use super::process::{self, Args, IdleTimeout, ProcessSpec, Stdin};
use super::{Continuation, InputClosed, RunnerControl, RunnerEvent, RunnerSpec, Started};
use crate::configuration::Settings;
use crate::error::ApiError;
use crate::parser::codex::CodexLines;
use crate::parser::LineParser;

const APPROVAL_POLICIES: [&str; 3] = ["never", "on-request", "untrusted"];
const SANDBOXES: [&str; 3] = ["read-only", "workspace-write", "danger-full-access"];

/// The JSON-RPC ids of the requests written at start; turns count on from [`FIRST_TURN_ID`].
const INITIALIZE_ID: u64 = 1;
const THREAD_ID: u64 = 2;
const FIRST_TURN_ID: u64 = 3;

/// The `codex` agent type.
pub struct Codex;

impl Codex {
    fn cli(settings: &Settings) -> Cli<'_> {
        Cli {
            name: "codex",
            path: &settings.codex.cli_path,
            setting: "codex.cli_path (AGENTSTREAM__CODEX__CLI_PATH)",
        }
    }
}

impl AgentKind for Codex {
    fn agent_type(&self) -> AgentType {
        AgentType::Codex
    }

    fn info(&self, settings: &Settings) -> AgentTypeInfo {
        let (available, unavailable_reason) = Self::cli(settings).availability(self.agent_type());
        AgentTypeInfo {
            agent_type: self.agent_type().as_str().to_owned(),
            label: "Codex".to_owned(),
            description: "OpenAI's Codex CLI, as its app-server (docs/agent-types.md).".to_owned(),
            available,
            unavailable_reason,
            conversations: true,
            prompt_required: true,
            options: vec![
                option(
                    "model",
                    "Model",
                    OptionKind::Text,
                    "The model; the CLI's configured one when empty.",
                ),
                option(
                    "workingDirectory",
                    "Working directory",
                    OptionKind::Path,
                    "The folder the agent works in (the server's when empty).",
                ),
                choice(
                    "approvalPolicy",
                    "Approvals",
                    &APPROVAL_POLICIES,
                    "When it asks before running a command; clients answer (the CLI's configured policy when empty).",
                ),
                choice(
                    "sandbox",
                    "Sandbox",
                    &SANDBOXES,
                    "Where its commands may write (the CLI's configured sandbox when empty).",
                ),
                option(
                    "resume",
                    "Resume thread",
                    OptionKind::Text,
                    "Continue the Codex thread with this id.",
                ),
            ],
        }
    }

    fn launch(
        &self,
        prompt: &str,
        configuration: Option<&Value>,
        settings: &Settings,
    ) -> Result<RunnerSpec, ApiError> {
        let config = parse_config(configuration)?;
        spec(prompt, &config, settings)
    }

    fn continues(&self) -> bool {
        true
    }

    fn resume(
        &self,
        prompt: &str,
        continuation: &Continuation,
        session: &str,
        settings: &Settings,
    ) -> Result<RunnerSpec, ApiError> {
        let mut config = parse_config(continuation.configuration())?;
        config.resume = Some(session.to_owned());
        spec(prompt, &config, settings)
    }

    fn parser(&self) -> Box<dyn LineParser> {
        Box::new(CodexLines::new())
    }
}

/// Parses and checks a `codex` configuration (an unknown key is refused, named).
pub fn parse_config(configuration: Option<&Value>) -> Result<CodexConfig, ApiError> {
    let config: CodexConfig = parse_configuration(AgentType::Codex, configuration)?;
    if let Some(model) = &config.model {
        bounds::check_model(model)?;
    }
    for (name, value, allowed) in [
        (
            "approvalPolicy",
            &config.approval_policy,
            &APPROVAL_POLICIES,
        ),
        ("sandbox", &config.sandbox, &SANDBOXES),
    ] {
        if let Some(value) = value {
            if !allowed.contains(&value.as_str()) {
                return Err(invalid(format!(
                    "{name} must be one of {}, got {value:?}",
                    allowed.join(", ")
                )));
            }
        }
    }
    if let Some(dir) = &config.working_directory {
        if !plain_arg(dir) {
            return Err(invalid("workingDirectory is not a path"));
        }
    }
    if let Some(id) = &config.resume {
        bounds::check_uuid("resume", id)?;
    }
    Ok(config)
}

/// What a `codex` run needs: its process, and the prompt of its first turn.
#[derive(Clone, Debug, PartialEq)]
pub struct CodexSpec {
    pub process: ProcessSpec,
    pub prompt: String,
    /// The thread it continues (`thread/resume`), or `None` for a new one.
    pub resume: Option<String>,
}

/// The run of `prompt` with `config`: the CLI must be there, and the folder it names.
pub fn spec(
    prompt: &str,
    config: &CodexConfig,
    settings: &Settings,
) -> Result<RunnerSpec, ApiError> {
    if prompt.trim().is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "a codex agent needs a prompt",
        ));
    }
    if let Some(dir) = &config.working_directory {
        bounds::check_folder("workingDirectory", dir)?;
    }
    let program = Codex::cli(settings).require(AgentType::Codex)?;
    let mut spec = codex_spec(prompt, config, settings);
    spec.process.program = program;
    Ok(RunnerSpec::Codex(spec))
}

/// The app-server's command line, and the requests written first.
pub fn codex_spec(prompt: &str, config: &CodexConfig, settings: &Settings) -> CodexSpec {
    let mut args = Args::new(&["app-server"]);
    args.extend(&settings.codex.extra_args);
    let mut thread = json!({});
    if let Some(dir) = &config.working_directory {
        thread["cwd"] = json!(dir);
    }
    if let Some(model) = &config.model {
        thread["model"] = json!(model);
    }
    if let Some(policy) = &config.approval_policy {
        thread["approvalPolicy"] = json!(policy);
    }
    if let Some(sandbox) = &config.sandbox {
        thread["sandbox"] = json!(sandbox);
    }
    let start = match &config.resume {
        Some(id) => {
            thread["threadId"] = json!(id);
            thread["excludeTurns"] = json!(true);
            request(THREAD_ID, "thread/resume", thread)
        }
        None => request(THREAD_ID, "thread/start", thread),
    };
    let initialize = request(
        INITIALIZE_ID,
        "initialize",
        json!({"clientInfo": {"name": "agentstream", "title": "agentstream",
                              "version": env!("CARGO_PKG_VERSION")}}),
    );
    let idle = settings.codex.idle_timeout_ms;
    CodexSpec {
        process: ProcessSpec {
            name: "codex".to_owned(),
            program: settings.codex.cli_path.clone(),
            args: args.into_vec(),
            cwd: config.working_directory.as_ref().map(PathBuf::from),
            env: Vec::new(),
            stdin: Stdin::Lines(vec![
                initialize,
                json!({"method": "initialized"}).to_string(),
                start,
            ]),
            max_line_bytes: settings.runners.max_line_bytes,
            stop_grace: Duration::from_millis(settings.codex.stop_grace_ms),
            program_setting: "codex.cli_path (AGENTSTREAM__CODEX__CLI_PATH)".to_owned(),
            idle_timeout: (idle > 0).then(|| {
                IdleTimeout::new(
                    Duration::from_millis(idle),
                    "codex.idle_timeout_ms (AGENTSTREAM__CODEX__IDLE_TIMEOUT_MS)",
                )
            }),
        },
        prompt: prompt.to_owned(),
        resume: config.resume.clone(),
    }
}

/// A JSON-RPC request line.
fn request(id: u64, method: &str, params: Value) -> String {
    json!({"id": id, "method": method, "params": params}).to_string()
}

/// Starts the app-server; its first turn starts as soon as its thread is known.
pub fn start(spec: CodexSpec) -> Result<Started, ErrorInfo> {
    let hold = spec
        .process
        .idle_timeout
        .as_ref()
        .map(|t| t.hold.clone())
        .unwrap_or_default();
    let started = process::spawn(spec.process)?;
    let Some(process) = started.control else {
        return Err(ErrorInfo::new(
            ErrorCode::ProcessFailed,
            "codex: the process has no input",
        ));
    };
    let session = Arc::new(Mutex::new(Session {
        process,
        next_id: FIRST_TURN_ID,
        thread: spec.resume.clone(),
        turn: Turn::Idle,
        turn_requests: Vec::new(),
        queued: VecDeque::from([spec.prompt]),
        interrupt_asked: false,
        approvals: HashMap::new(),
        hold,
        refused: None,
        closed: false,
    }));
    if spec.resume.is_some() {
        // The thread's id is known: the first turn needs no answer first.
        lock(&session).start_queued_turn();
    }
    let watched = session.clone();
    let events = started.events.map(move |event| match event {
        RunnerEvent::Bytes(line) => {
            lock(&watched).saw(&line);
            RunnerEvent::Bytes(line)
        }
        RunnerEvent::Exited(mut exit) => {
            // A refused request ended the run: that is why it failed, whatever the exit code says.
            if let Some(refused) = lock(&watched).refused.take() {
                exit.error.get_or_insert(refused);
            }
            RunnerEvent::Exited(exit)
        }
        other => other,
    });
    Ok(Started {
        events: Box::pin(events),
        control: Some(Box::new(CodexControl(session))),
    })
}

fn lock(session: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    // A panic while the lock was held cannot leave the session half-changed in a way that matters
    // more than stopping the agent would: carry on with what is there.
    session
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where the thread's turn is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Turn {
    Idle,
    /// `turn/start` was written; its id is not known yet.
    Starting,
    Active(String),
}

/// The JSON-RPC client's state, shared by the stream watcher and the control.
struct Session {
    process: Box<dyn RunnerControl>,
    next_id: u64,
    thread: Option<String>,
    turn: Turn,
    /// The ids of the `turn/start` requests written (a refusal of one ends the run).
    turn_requests: Vec<u64>,
    /// Prompts waiting for the turn under way to end.
    queued: VecDeque<String>,
    /// An interrupt was asked before the turn's id was known.
    interrupt_asked: bool,
    /// Approval requests waiting for an answer: item id → the request's JSON-RPC id.
    approvals: HashMap<String, Value>,
    /// Held while an approval waits: the agent is silent then, by design.
    hold: Arc<AtomicBool>,
    /// Why the run cannot go on (the app-server refused a request it needs).
    refused: Option<ErrorInfo>,
    closed: bool,
}

impl Session {
    fn write(&mut self, line: String) -> Result<(), InputClosed> {
        if self.closed {
            return Err(InputClosed);
        }
        self.process.send_line(line)
    }

    /// Writes the next queued prompt's `turn/start`, when the thread is known and no turn runs.
    fn start_queued_turn(&mut self) {
        let (Some(thread), Turn::Idle) = (self.thread.clone(), &self.turn) else {
            return;
        };
        let Some(prompt) = self.queued.pop_front() else {
            return;
        };
        let id = self.next_id;
        self.next_id += 1;
        let params = json!({"threadId": thread, "input": [{"type": "text", "text": prompt}]});
        if self.write(request(id, "turn/start", params)).is_ok() {
            self.turn = Turn::Starting;
            self.turn_requests.push(id);
        }
    }

    fn interrupt_turn(&mut self, turn: &str) {
        let (Some(thread), id) = (self.thread.clone(), self.next_id) else {
            return;
        };
        self.next_id += 1;
        let params = json!({"threadId": thread, "turnId": turn});
        let _ = self.write(request(id, "turn/interrupt", params));
    }

    /// Reacts to one line the app-server printed (before the parser stores it).
    fn saw(&mut self, line: &[u8]) {
        // Most lines are deltas: only those that can matter are decoded.
        let interesting = [&b"\"id\":"[..], b"turn/started", b"turn/completed"]
            .iter()
            .any(|needle| line.windows(needle.len()).any(|w| w == *needle));
        if !interesting {
            return;
        }
        let Ok(Value::Object(msg)) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        let method = msg.get("method").and_then(Value::as_str);
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        match (method, msg.get("id")) {
            // A request of the server's: an approval waits for its answer.
            (Some(method), Some(rpc_id)) if method.ends_with("requestApproval") => {
                // Named as the parser names it to clients: the approval's own id when it has one,
                // else its item's.
                let named = params.get("approvalId").or_else(|| params.get("itemId"));
                if let Some(item) = named.and_then(Value::as_str) {
                    self.approvals.insert(item.to_owned(), rpc_id.clone());
                    self.hold.store(true, Ordering::Relaxed);
                }
            }
            (Some(_), Some(_)) => {}
            (None, Some(id)) => self.answered(id.as_u64(), &msg),
            (Some("turn/started"), None) => {
                if let Some(turn) = params.pointer("/turn/id").and_then(Value::as_str) {
                    self.turn = Turn::Active(turn.to_owned());
                    if std::mem::take(&mut self.interrupt_asked) {
                        self.interrupt_turn(turn);
                    }
                }
            }
            (Some("turn/completed"), None) => {
                self.turn = Turn::Idle;
                // What the turn asked dies with it.
                self.approvals.clear();
                self.hold.store(false, Ordering::Relaxed);
                self.start_queued_turn();
            }
            _ => {}
        }
    }

    /// The answer to one of this client's requests.
    fn answered(&mut self, id: Option<u64>, msg: &serde_json::Map<String, Value>) {
        let Some(id) = id else { return };
        if let Some(error) = msg.get("error") {
            let needed = id == INITIALIZE_ID || id == THREAD_ID || self.turn_requests.contains(&id);
            if needed {
                let said = error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the request was refused");
                self.refused = Some(ErrorInfo::new(
                    ErrorCode::AgentFailed,
                    format!("codex refused the run: {said}"),
                ));
                // Nothing can follow: let the app-server exit.
                self.closed = true;
                self.process.end_input();
            }
            return;
        }
        if id == THREAD_ID && self.thread.is_none() {
            self.thread = msg
                .get("result")
                .and_then(|r| r.pointer("/thread/id"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            self.start_queued_turn();
        }
    }
}

/// Talks to the app-server in its protocol.
struct CodexControl(Arc<Mutex<Session>>);

impl RunnerControl for CodexControl {
    fn send_input(&mut self, content: &str) -> Result<(), InputClosed> {
        let mut session = lock(&self.0);
        if session.closed {
            return Err(InputClosed);
        }
        session.queued.push_back(content.to_owned());
        session.start_queued_turn();
        Ok(())
    }

    fn request_interrupt(&mut self, _request_id: &str) -> Result<(), InputClosed> {
        let mut session = lock(&self.0);
        if session.closed {
            return Err(InputClosed);
        }
        match session.turn.clone() {
            Turn::Active(turn) => session.interrupt_turn(&turn),
            Turn::Starting => session.interrupt_asked = true,
            Turn::Idle => {}
        }
        Ok(())
    }

    fn answer_permission(
        &mut self,
        request_id: &str,
        _tool_name: &str,
        answer: &PermissionAnswer,
    ) -> Result<(), InputClosed> {
        let mut session = lock(&self.0);
        let Some(rpc_id) = session.approvals.remove(request_id) else {
            return Err(InputClosed);
        };
        if session.approvals.is_empty() {
            session.hold.store(false, Ordering::Relaxed);
        }
        let decision = match (answer.decision, answer.always == Some(true)) {
            (PermissionDecision::Allow, true) => "acceptForSession",
            (PermissionDecision::Allow, false) => "accept",
            (PermissionDecision::Deny, _) => "decline",
        };
        session.write(json!({"id": rpc_id, "result": {"decision": decision}}).to_string())
    }

    fn end_input(&mut self) {
        let mut session = lock(&self.0);
        session.closed = true;
        session.process.end_input();
    }

    fn interrupt(&mut self) -> LocalBoxFuture<'static, ()> {
        lock(&self.0).process.interrupt()
    }

    fn stop(&mut self) -> LocalBoxFuture<'static, ()> {
        let mut session = lock(&self.0);
        session.closed = true;
        session.process.stop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::test_defaults()
    }

    #[test]
    fn configuration_is_checked_and_a_wrong_option_is_named() {
        let bad = [
            (json!({"model": "m; rm -rf /"}), "model"),
            (json!({"approvalPolicy": "always"}), "approvalPolicy"),
            (json!({"sandbox": "none"}), "sandbox"),
            (json!({"resume": "latest"}), "resume"),
            (json!({"approvalMode": "yolo"}), "approvalMode"),
        ];
        for (config, named) in bad {
            let e = parse_config(Some(&config)).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidConfiguration, "{config}");
            assert!(e.message.contains(named), "{config}: {}", e.message);
        }
        assert!(parse_config(Some(
            &json!({"model": "gpt-5.5", "approvalPolicy": "on-request",
            "sandbox": "read-only", "resume": uuid::Uuid::nil()})
        ))
        .is_ok());
    }

    #[test]
    fn a_new_thread_is_started_and_a_resumed_one_named() {
        let config =
            parse_config(Some(&json!({"model": "gpt-5.5", "sandbox": "read-only"}))).unwrap();
        let spec = codex_spec("hello", &config, &settings());
        let Stdin::Lines(lines) = &spec.process.stdin else {
            panic!("{:?}", spec.process.stdin)
        };
        let sent: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(sent[0]["method"], "initialize");
        assert_eq!(sent[1], json!({"method": "initialized"}));
        assert_eq!(
            sent[2],
            json!({"id": 2, "method": "thread/start", "params": {"model": "gpt-5.5", "sandbox": "read-only"}})
        );
        assert_eq!(spec.process.args, ["app-server"]);
        let resumed = CodexConfig {
            resume: Some("t".into()),
            ..CodexConfig::default()
        };
        let spec = codex_spec("again", &resumed, &settings());
        let Stdin::Lines(lines) = &spec.process.stdin else {
            panic!()
        };
        let third: Value = serde_json::from_str(&lines[2]).unwrap();
        assert_eq!(third["method"], "thread/resume");
        assert_eq!(third["params"]["threadId"], "t");
    }

    /// A control that records what is written.
    struct Recorder(Arc<Mutex<Vec<Value>>>, bool);

    impl RunnerControl for Recorder {
        fn send_line(&mut self, line: String) -> Result<(), InputClosed> {
            self.0
                .lock()
                .unwrap()
                .push(serde_json::from_str(&line).unwrap());
            Ok(())
        }
        fn end_input(&mut self) {
            self.1 = true;
        }
        fn stop(&mut self) -> LocalBoxFuture<'static, ()> {
            Box::pin(async {})
        }
    }

    fn session(written: &Arc<Mutex<Vec<Value>>>) -> Session {
        Session {
            process: Box::new(Recorder(written.clone(), false)),
            next_id: FIRST_TURN_ID,
            thread: None,
            turn: Turn::Idle,
            turn_requests: Vec::new(),
            queued: VecDeque::from(["first".to_owned()]),
            interrupt_asked: false,
            approvals: HashMap::new(),
            hold: Arc::default(),
            refused: None,
            closed: false,
        }
    }

    #[test]
    fn turns_start_once_the_thread_is_known_and_one_at_a_time() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let mut s = session(&written);
        s.saw(br#"{"id":1,"result":{"userAgent":"x"}}"#);
        assert!(written.lock().unwrap().is_empty());
        s.saw(br#"{"id":2,"result":{"thread":{"id":"th"}}}"#);
        s.saw(br#"{"method":"turn/started","params":{"threadId":"th","turn":{"id":"t1"}}}"#);
        // A follow-up during the turn waits for its end.
        let mut control = CodexControl(Arc::new(Mutex::new(s)));
        control.send_input("second").unwrap();
        assert_eq!(written.lock().unwrap().len(), 1);
        control.request_interrupt("r").unwrap();
        lock(&control.0).saw(
            br#"{"method":"turn/completed","params":{"turn":{"id":"t1","status":"interrupted"}}}"#,
        );
        let w = written.lock().unwrap().clone();
        assert_eq!(
            w.iter().map(|v| v["method"].clone()).collect::<Vec<_>>(),
            ["turn/start", "turn/interrupt", "turn/start"]
        );
        assert_eq!(w[0]["params"]["input"][0]["text"], "first");
        assert_eq!(w[1]["params"], json!({"threadId": "th", "turnId": "t1"}));
        assert_eq!(w[2]["params"]["input"][0]["text"], "second");
        assert_eq!(
            (w[0]["id"].clone(), w[1]["id"].clone(), w[2]["id"].clone()),
            (json!(3), json!(4), json!(5))
        );
    }

    #[test]
    fn an_approval_is_answered_by_its_rpc_id_and_holds_the_idle_timeout() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let s = session(&written);
        let hold = s.hold.clone();
        let mut control = CodexControl(Arc::new(Mutex::new(s)));
        lock(&control.0).saw(br#"{"method":"item/commandExecution/requestApproval","id":0,"params":{"itemId":"call_1","command":"touch y"}}"#);
        assert!(hold.load(Ordering::Relaxed));
        let allow = PermissionAnswer {
            decision: PermissionDecision::Allow,
            message: None,
            updated_input: None,
            always: Some(true),
        };
        control
            .answer_permission("call_1", "exec_command", &allow)
            .unwrap();
        assert!(!hold.load(Ordering::Relaxed));
        assert_eq!(
            written.lock().unwrap()[0],
            json!({"id": 0, "result": {"decision": "acceptForSession"}})
        );
        assert!(control
            .answer_permission("call_1", "exec_command", &allow)
            .is_err());
    }

    #[test]
    fn a_refused_thread_ends_the_run_with_its_message() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let mut s = session(&written);
        s.saw(br#"{"id":2,"error":{"code":-32600,"message":"no rollout found for thread id x"}}"#);
        assert!(s.closed);
        assert!(s
            .refused
            .as_ref()
            .unwrap()
            .message
            .contains("no rollout found"));
        // A refused interrupt is no reason to end.
        let mut s = session(&written);
        s.turn_requests.push(3);
        s.saw(br#"{"id":7,"error":{"code":-32600,"message":"no active turn"}}"#);
        assert!(!s.closed);
    }
}

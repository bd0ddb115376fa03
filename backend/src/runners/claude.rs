//! `claude-code` agents: validates their configuration and turns it into a runner — the CLI spawned
//! here, or a proxy's SSE stream (`runners::proxy`).
//!
//! The CLI runs in streaming-JSON mode both ways (`-p --input-format stream-json --output-format
//! stream-json --verbose --include-partial-messages`): the prompt is the first message on its stdin, and
//! stdin stays open until the agent's `result`, so later input can follow. (`-p <prompt>` with an open
//! stdin would make the CLI wait 3 s for input before it starts.)

use std::path::PathBuf;

use agentstream_wire::{
    AgentType, AgentTypeInfo, ClaudeConfig, ClaudeTransport, ErrorCode, OptionKind,
};
use serde_json::{json, Value};

use super::kind::bounds::{self, invalid, plain_arg};
use super::kind::{choice, option, parse_configuration, AgentKind, Cli};
use super::process::{Args, ProcessSpec, Stdin};
use super::proxy::ProxySpec;
use super::{Continuation, RunnerSpec};
use crate::configuration::Settings;
use crate::error::ApiError;
use crate::parser::{ClaudeLines, LineParser};

/// Permission modes the CLI accepts.
const PERMISSION_MODES: [&str; 4] = ["default", "acceptEdits", "bypassPermissions", "plan"];

/// Bounds on configuration values (they end up on a command line).
const MAX_TOOLS: usize = bounds::MAX_LIST;
const MAX_MCP_CONFIG_BYTES: usize = 64 * 1024;

/// The `claude-code` agent type.
pub struct ClaudeCode;

impl ClaudeCode {
    fn cli(settings: &Settings) -> Cli<'_> {
        Cli {
            name: "claude",
            path: &settings.claude.cli_path,
            setting: "claude.cli_path (AGENTSTREAM__CLAUDE__CLI_PATH)",
        }
    }
}

impl AgentKind for ClaudeCode {
    fn agent_type(&self) -> AgentType {
        AgentType::ClaudeCode
    }

    fn info(&self, settings: &Settings) -> AgentTypeInfo {
        // Through a proxy, the CLI runs on the proxy's machine: nothing to find here.
        let (available, unavailable_reason) = match settings.claude.transport {
            ClaudeTransport::Cli => Self::cli(settings).availability(self.agent_type()),
            ClaudeTransport::Proxy => (true, None),
        };
        AgentTypeInfo {
            agent_type: self.agent_type().as_str().to_owned(),
            label: "Claude Code".to_owned(),
            description: "Anthropic's Claude Code CLI, run headless (docs/claude-code.md).".to_owned(),
            available,
            unavailable_reason,
            conversations: true,
            prompt_required: true,
            options: vec![
                option("model", "Model", OptionKind::Text, "--model: the CLI's default when empty."),
                option(
                    "workingDirectory",
                    "Working directory",
                    OptionKind::Path,
                    "The folder the agent works in (the server's when empty).",
                ),
                choice(
                    "permissionMode",
                    "Permissions",
                    &PERMISSION_MODES,
                    "--permission-mode; except with bypassPermissions, clients answer its tool requests.",
                ),
                choice(
                    "transport",
                    "Transport",
                    &["cli", "proxy"],
                    "cli: the server runs the CLI; proxy: a Claude proxy does (the claude.transport setting when empty).",
                ),
                option("allowedTools", "Allowed tools", OptionKind::List, "--allowedTools, e.g. Bash(git log:*)."),
                option("disallowedTools", "Disallowed tools", OptionKind::List, "--disallowedTools."),
                option("mcpConfig", "MCP config", OptionKind::Json, "--mcp-config: a JSON object, or a path."),
                option("mcpStrict", "Only these MCP servers", OptionKind::Boolean, "--strict-mcp-config."),
                option("sessionId", "Session id", OptionKind::Text, "--session-id: start a session with this UUID."),
                option("resume", "Resume session", OptionKind::Text, "--resume: continue the session with this UUID."),
            ],
        }
    }

    fn launch(
        &self,
        prompt: &str,
        configuration: Option<&Value>,
        settings: &Settings,
    ) -> Result<RunnerSpec, ApiError> {
        spec(prompt, configuration, settings)
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
        resume_spec(
            prompt,
            continuation.configuration(),
            session,
            &continuation.always_allowed,
            settings,
        )
    }

    fn parser(&self) -> Box<dyn LineParser> {
        Box::new(ClaudeLines)
    }
}

/// Parses and checks a `claude-code` configuration.
pub fn parse_config(configuration: Option<&Value>) -> Result<ClaudeConfig, ApiError> {
    let config: ClaudeConfig = parse_configuration(AgentType::ClaudeCode, configuration)?;
    if let Some(model) = &config.model {
        bounds::check_model(model)?;
    }
    for (name, id) in [
        ("sessionId", &config.session_id),
        ("resume", &config.resume),
    ] {
        if let Some(id) = id {
            bounds::check_uuid(name, id)?;
        }
    }
    if config.session_id.is_some() && config.resume.is_some() {
        return Err(invalid(
            "give sessionId (a new session) or resume (an existing one), not both",
        ));
    }
    for (name, tools) in [
        ("allowedTools", &config.allowed_tools),
        ("disallowedTools", &config.disallowed_tools),
    ] {
        let tools = tools.as_deref().unwrap_or_default();
        if tools.len() > MAX_TOOLS {
            return Err(invalid(format!(
                "{name} has {} entries; at most {MAX_TOOLS}",
                tools.len()
            )));
        }
        if let Some(bad) = tools.iter().find(|t| !plain_arg(t) || t.starts_with('-')) {
            return Err(invalid(format!("{name} entry {bad:?} is not a tool name")));
        }
    }
    if let Some(mode) = &config.permission_mode {
        if !PERMISSION_MODES.contains(&mode.as_str()) {
            return Err(invalid(format!(
                "permissionMode must be one of {}, got {mode:?}",
                PERMISSION_MODES.join(", ")
            )));
        }
    }
    if let Some(mcp) = &config.mcp_config {
        let ok = match mcp {
            Value::Object(_) => mcp.to_string().len() <= MAX_MCP_CONFIG_BYTES,
            Value::String(path) => plain_arg(path),
            _ => false,
        };
        if !ok {
            return Err(invalid(
                "mcpConfig must be a JSON object (at most 64 KiB) or a path",
            ));
        }
    }
    if let Some(dir) = &config.working_directory {
        if !plain_arg(dir) {
            return Err(invalid("workingDirectory is not a path"));
        }
    }
    Ok(config)
}

/// Whether the CLI would ask before some tool calls: in every permission mode but
/// `bypassPermissions`.
pub fn asks_permission(config: &ClaudeConfig) -> bool {
    config.permission_mode.as_deref() != Some("bypassPermissions")
}

/// The runner of a `claude-code` agent.
pub fn spec(
    prompt: &str,
    configuration: Option<&Value>,
    settings: &Settings,
) -> Result<RunnerSpec, ApiError> {
    if prompt.trim().is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "a claude-code agent needs a prompt",
        ));
    }
    let config = parse_config(configuration)?;
    match config.transport.unwrap_or(settings.claude.transport) {
        ClaudeTransport::Cli => {
            if let Some(dir) = &config.working_directory {
                bounds::check_folder("workingDirectory", dir)?;
            }
            let program = ClaudeCode::cli(settings).require(AgentType::ClaudeCode)?;
            let mut spec = cli_spec(prompt, &config, settings);
            spec.program = program;
            if asks_permission(&config) {
                // The CLI asks over its control protocol (stdout) and waits for the answer on stdin:
                // clients answer it (`POST …/permissions/{requestId}`).
                spec.args
                    .extend(["--permission-prompt-tool", "stdio"].map(std::ffi::OsString::from));
            }
            Ok(RunnerSpec::Process(spec))
        }
        ClaudeTransport::Proxy => Ok(RunnerSpec::Proxy(ProxySpec {
            base_url: settings.claude.proxy_url.trim_end_matches('/').to_owned(),
            body: proxy_body(prompt, &config),
            max_line_bytes: settings.runners.max_line_bytes,
            read_timeout: std::time::Duration::from_millis(
                settings.claude.proxy_read_timeout_ms.max(1),
            ),
        })),
    }
}

/// The runner of a later turn of a `claude-code` agent: `prompt` in its session (`--resume`), with
/// the configuration it was launched with, and the tools a client allowed for the session.
pub fn resume_spec(
    prompt: &str,
    configuration: Option<&Value>,
    session_id: &str,
    always_allowed: &[String],
    settings: &Settings,
) -> Result<RunnerSpec, ApiError> {
    let mut config = parse_config(configuration)?;
    config.session_id = None;
    config.resume = Some(session_id.to_owned());
    let allowed = config.allowed_tools.get_or_insert_with(Vec::new);
    for tool in always_allowed {
        if allowed.len() < MAX_TOOLS
            && !allowed.contains(tool)
            && plain_arg(tool)
            && !tool.starts_with('-')
        {
            allowed.push(tool.clone());
        }
    }
    let value = serde_json::to_value(&config)
        .map_err(|e| invalid(format!("claude-code configuration: {e}")))?;
    spec(prompt, Some(&value), settings)
}

/// The CLI's command line and stdin for one run.
pub fn cli_spec(prompt: &str, config: &ClaudeConfig, settings: &Settings) -> ProcessSpec {
    let mut args = Args::new(&[
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
    ]);
    args.flag("--model", config.model.as_ref());
    args.flag("--session-id", config.session_id.as_ref());
    args.flag("--resume", config.resume.as_ref());
    args.flag("--permission-mode", config.permission_mode.as_ref());
    args.flags("--allowedTools", config.allowed_tools.as_ref());
    args.flags("--disallowedTools", config.disallowed_tools.as_ref());
    let mcp = config.mcp_config.as_ref().map(|mcp| match mcp {
        Value::String(path) => path.clone(),
        object => object.to_string(),
    });
    args.flag("--mcp-config", mcp.as_ref());
    if config.mcp_strict == Some(true) {
        args.extend(["--strict-mcp-config"]);
    }
    args.extend(&settings.claude.extra_args);
    let first_message = json!({"type": "user", "message": {"role": "user", "content": prompt}});
    ProcessSpec {
        name: "claude".to_owned(),
        program: settings.claude.cli_path.clone(),
        args: args.into_vec(),
        cwd: config.working_directory.as_ref().map(PathBuf::from),
        env: Vec::new(),
        stdin: Stdin::Lines(vec![first_message.to_string()]),
        max_line_bytes: settings.runners.max_line_bytes,
        stop_grace: settings.claude.stop_grace(),
        program_setting: "claude.cli_path (AGENTSTREAM__CLAUDE__CLI_PATH)".to_owned(),
        // Claude asks permission and waits for the answer, silent, as long as a client takes.
        idle_timeout: None,
    }
}

/// The original proxy's request body: `{prompt, session_id, model, working_directory, mcp_config,
/// mcp_strict, allowed_tools, disallowed_tools}`.
pub fn proxy_body(prompt: &str, config: &ClaudeConfig) -> Value {
    json!({
        "prompt": prompt,
        "session_id": config.session_id.as_ref().or(config.resume.as_ref()),
        "model": config.model,
        "working_directory": config.working_directory,
        "mcp_config": config.mcp_config,
        "mcp_strict": config.mcp_strict.unwrap_or(false),
        "allowed_tools": config.allowed_tools,
        "disallowed_tools": config.disallowed_tools,
        "permission_mode": config.permission_mode,
        "resume": config.resume.is_some(),
    })
}

/// The configuration a proxy request stands for (the inverse of [`proxy_body`]).
pub fn config_from_proxy_body(body: &Value) -> ClaudeConfig {
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let list = |k: &str| {
        body.get(k).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
    };
    let session = text("session_id");
    let resume = body.get("resume").and_then(Value::as_bool).unwrap_or(false);
    ClaudeConfig {
        model: text("model"),
        working_directory: text("working_directory"),
        session_id: if resume { None } else { session.clone() },
        resume: if resume { session } else { None },
        allowed_tools: list("allowed_tools"),
        disallowed_tools: list("disallowed_tools"),
        permission_mode: text("permission_mode"),
        mcp_config: body.get("mcp_config").filter(|v| !v.is_null()).cloned(),
        mcp_strict: body
            .get("mcp_strict")
            .and_then(Value::as_bool)
            .filter(|strict| *strict),
        transport: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::test_defaults()
    }

    #[test]
    fn configuration_is_checked() {
        let bad = [
            json!({"model": "gpt; rm -rf /"}),
            json!({"sessionId": "abc"}),
            json!({"sessionId": uuid::Uuid::nil(), "resume": uuid::Uuid::nil()}),
            json!({"allowedTools": ["--dangerously-skip-permissions"]}),
            json!({"allowedTools": ["a\nb"]}),
            json!({"permissionMode": "yolo"}),
            json!({"mcpConfig": 5}),
            json!({"unknown": 1}),
            json!({"transport": "carrier-pigeon"}),
        ];
        for config in bad {
            assert_eq!(
                parse_config(Some(&config)).unwrap_err().code,
                ErrorCode::InvalidConfiguration,
                "{config}"
            );
        }
        let ok = json!({"model": "claude-opus-5-5", "allowedTools": ["Bash(git log:*)", "Read"],
                        "permissionMode": "acceptEdits", "mcpConfig": {"mcpServers": {}}, "mcpStrict": true});
        assert!(parse_config(Some(&ok)).is_ok());
    }

    #[test]
    fn cli_arguments_follow_the_configuration() {
        let config = parse_config(Some(
            &json!({"model": "m", "resume": uuid::Uuid::nil(), "allowedTools": ["Read", "Bash"],
                                               "permissionMode": "plan", "mcpStrict": true}),
        ))
        .unwrap();
        let spec = cli_spec("do it", &config, &settings());
        let args: Vec<String> = spec
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(joined.starts_with("-p --input-format stream-json --output-format stream-json --verbose --include-partial-messages"));
        for part in [
            "--model m",
            "--resume 00000000-0000-0000-0000-000000000000",
            "--allowedTools Read --allowedTools Bash",
            "--permission-mode plan",
            "--strict-mcp-config",
        ] {
            assert!(joined.contains(part), "{joined} lacks {part}");
        }
        let Stdin::Lines(lines) = &spec.stdin else {
            panic!("{:?}", spec.stdin)
        };
        let first: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            first,
            json!({"type": "user", "message": {"role": "user", "content": "do it"}})
        );
    }

    #[test]
    fn proxy_body_round_trips() {
        let config = parse_config(Some(
            &json!({"model": "m", "sessionId": uuid::Uuid::nil(), "allowedTools": ["Read"]}),
        ))
        .unwrap();
        let body = proxy_body("p", &config);
        assert_eq!(body["prompt"], "p");
        assert_eq!(body["allowed_tools"], json!(["Read"]));
        assert_eq!(config_from_proxy_body(&body), config);
    }

    #[test]
    fn a_missing_working_directory_is_refused_for_the_cli() {
        let e = spec(
            "p",
            Some(&json!({"workingDirectory": "/no/such/dir"})),
            &settings(),
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidConfiguration);
        assert!(spec("  ", None, &settings()).is_err());
    }
}

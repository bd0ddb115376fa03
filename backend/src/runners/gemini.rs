//! `gemini-cli` agents: the Gemini CLI (`@google/gemini-cli`, tested with 0.61.0) spawned here,
//! headless, printing `stream-json` (read by `parser::gemini`).
//!
//! - The prompt goes on stdin, then stdin is closed: with `-p ""` the CLI's prompt is exactly what it
//!   read there, so no prompt is too long for a command line or mistaken for a flag. The CLI has no
//!   input channel, so a follow-up is a new run in the same session (`--resume <session>`).
//! - The `gemini` binary relaunches itself as a child and ignores SIGINT and SIGTERM on its own pid;
//!   the process runner signals the whole process group, which stops both.
//! - It runs with the server's environment and HOME, so a user's Gemini login or `GEMINI_API_KEY`
//!   (and `GOOGLE_GEMINI_BASE_URL`) just work.

use std::path::PathBuf;
use std::time::Duration;

use agentstream_wire::{AgentType, AgentTypeInfo, ErrorCode, GeminiConfig, OptionKind};
use serde_json::Value;

use super::kind::bounds::{self, invalid, plain_arg};
use super::kind::{choice, option, parse_configuration, AgentKind, Cli};
use super::process::{Args, IdleTimeout, ProcessSpec, Stdin};
use super::{Continuation, RunnerSpec};
use crate::configuration::Settings;
use crate::error::ApiError;
use crate::parser::gemini::GeminiLines;
use crate::parser::LineParser;

/// `--approval-mode` values, as the CLI names them.
const APPROVAL_MODES: [&str; 4] = ["default", "auto_edit", "yolo", "plan"];

/// The `gemini-cli` agent type.
pub struct GeminiCli;

impl GeminiCli {
    fn cli(settings: &Settings) -> Cli<'_> {
        Cli {
            name: "gemini",
            path: &settings.gemini.cli_path,
            setting: "gemini.cli_path (AGENTSTREAM__GEMINI__CLI_PATH)",
        }
    }
}

impl AgentKind for GeminiCli {
    fn agent_type(&self) -> AgentType {
        AgentType::GeminiCli
    }

    fn info(&self, settings: &Settings) -> AgentTypeInfo {
        let (available, unavailable_reason) = Self::cli(settings).availability(self.agent_type());
        AgentTypeInfo {
            agent_type: self.agent_type().as_str().to_owned(),
            label: "Gemini CLI".to_owned(),
            description: "Google's Gemini CLI, run headless (docs/agent-types.md).".to_owned(),
            available,
            unavailable_reason,
            conversations: true,
            prompt_required: true,
            options: vec![
                option(
                    "model",
                    "Model",
                    OptionKind::Text,
                    "--model: the CLI's default when empty.",
                ),
                option(
                    "workingDirectory",
                    "Working directory",
                    OptionKind::Path,
                    "The folder the agent works in (the server's when empty); its sessions are kept per folder.",
                ),
                choice(
                    "approvalMode",
                    "Approvals",
                    &APPROVAL_MODES,
                    "--approval-mode: default runs no tool that needs approval (there is nobody to ask), \
                     auto_edit allows edits, yolo allows every tool, plan is read-only.",
                ),
                option(
                    "includeDirectories",
                    "Include directories",
                    OptionKind::List,
                    "--include-directories: more folders the agent may work in.",
                ),
                option(
                    "resume",
                    "Resume session",
                    OptionKind::Text,
                    "--resume: continue the Gemini session with this UUID.",
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
        Box::new(GeminiLines::new())
    }
}

/// Parses and checks a `gemini-cli` configuration (an unknown key is refused, named).
pub fn parse_config(configuration: Option<&Value>) -> Result<GeminiConfig, ApiError> {
    let config: GeminiConfig = parse_configuration(AgentType::GeminiCli, configuration)?;
    if let Some(model) = &config.model {
        bounds::check_model(model)?;
    }
    if let Some(mode) = &config.approval_mode {
        if !APPROVAL_MODES.contains(&mode.as_str()) {
            return Err(invalid(format!(
                "approvalMode must be one of {}, got {mode:?}",
                APPROVAL_MODES.join(", ")
            )));
        }
    }
    let dirs = config.include_directories.as_deref().unwrap_or_default();
    if dirs.len() > bounds::MAX_LIST {
        return Err(invalid(format!(
            "includeDirectories has {} entries; at most {}",
            dirs.len(),
            bounds::MAX_LIST
        )));
    }
    // The CLI splits the flag's value at commas.
    if let Some(bad) = dirs
        .iter()
        .find(|d| !plain_arg(d) || d.starts_with('-') || d.contains(','))
    {
        return Err(invalid(format!(
            "includeDirectories entry {bad:?} is not a path the CLI can take"
        )));
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

/// The run of `prompt` with `config`: the CLI must be there, and the folders it names.
pub fn spec(
    prompt: &str,
    config: &GeminiConfig,
    settings: &Settings,
) -> Result<RunnerSpec, ApiError> {
    if prompt.trim().is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "a gemini-cli agent needs a prompt",
        ));
    }
    if let Some(dir) = &config.working_directory {
        bounds::check_folder("workingDirectory", dir)?;
    }
    for dir in config.include_directories.iter().flatten() {
        bounds::check_folder("includeDirectories entry", dir)?;
    }
    let program = GeminiCli::cli(settings).require(AgentType::GeminiCli)?;
    let mut spec = cli_spec(prompt, config, settings);
    spec.program = program;
    Ok(RunnerSpec::Process(spec))
}

/// The CLI's command line and stdin for one run.
pub fn cli_spec(prompt: &str, config: &GeminiConfig, settings: &Settings) -> ProcessSpec {
    let mut args = Args::new(&["--skip-trust", "-o", "stream-json"]);
    args.flag("--model", config.model.as_ref());
    args.flag("--approval-mode", config.approval_mode.as_ref());
    args.flags("--include-directories", config.include_directories.as_ref());
    args.flag("--resume", config.resume.as_ref());
    args.extend(&settings.gemini.extra_args);
    // Last, so that nothing in extra_args can take the prompt's place.
    args.extend(["-p", ""]);
    let idle = settings.gemini.idle_timeout_ms;
    ProcessSpec {
        name: "gemini".to_owned(),
        program: settings.gemini.cli_path.clone(),
        args: args.into_vec(),
        cwd: config.working_directory.as_ref().map(PathBuf::from),
        env: Vec::new(),
        stdin: Stdin::Text(prompt.to_owned()),
        max_line_bytes: settings.runners.max_line_bytes,
        stop_grace: Duration::from_millis(settings.gemini.stop_grace_ms),
        program_setting: "gemini.cli_path (AGENTSTREAM__GEMINI__CLI_PATH)".to_owned(),
        idle_timeout: (idle > 0).then(|| {
            IdleTimeout::new(
                Duration::from_millis(idle),
                "gemini.idle_timeout_ms (AGENTSTREAM__GEMINI__IDLE_TIMEOUT_MS)",
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> Settings {
        Settings::test_defaults()
    }

    #[test]
    fn configuration_is_checked_and_a_wrong_option_is_named() {
        let bad = [
            (json!({"model": "m; rm -rf /"}), "model"),
            (json!({"approvalMode": "always"}), "approvalMode"),
            (json!({"includeDirectories": ["a,b"]}), "includeDirectories"),
            (
                json!({"includeDirectories": ["--yolo"]}),
                "includeDirectories",
            ),
            (json!({"resume": "latest"}), "resume"),
            (json!({"permissionMode": "plan"}), "permissionMode"),
            (json!({"model": 5}), "configuration"),
        ];
        for (config, named) in bad {
            let e = parse_config(Some(&config)).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidConfiguration, "{config}");
            assert!(e.message.contains(named), "{config}: {}", e.message);
        }
        let ok = json!({"model": "gemini-3.8-flash", "approvalMode": "yolo",
                        "includeDirectories": ["/tmp"], "resume": uuid::Uuid::nil()});
        assert!(parse_config(Some(&ok)).is_ok());
    }

    #[test]
    fn the_prompt_goes_on_stdin_and_the_options_on_the_command_line() {
        let config = parse_config(Some(&json!({"model": "m", "approvalMode": "yolo",
            "includeDirectories": ["/a", "/b"], "resume": uuid::Uuid::nil()})))
        .unwrap();
        let spec = cli_spec("-x do it", &config, &settings());
        let args: Vec<String> = spec
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--skip-trust",
                "-o",
                "stream-json",
                "--model",
                "m",
                "--approval-mode",
                "yolo",
                "--include-directories",
                "/a",
                "--include-directories",
                "/b",
                "--resume",
                "00000000-0000-0000-0000-000000000000",
                "-p",
                ""
            ]
        );
        assert_eq!(spec.stdin, Stdin::Text("-x do it".into()));
        assert!(spec.idle_timeout.is_some());
    }

    #[test]
    fn a_missing_cli_or_folder_is_refused_at_launch() {
        let mut s = settings();
        s.gemini.cli_path = "/no/such/gemini".into();
        let e = spec("p", &GeminiConfig::default(), &s).unwrap_err();
        assert_eq!(e.code, ErrorCode::AgentTypeUnavailable);
        assert_eq!(e.status.as_u16(), 501);
        assert!(e.message.contains("gemini.cli_path"), "{}", e.message);
        let far = GeminiConfig {
            working_directory: Some("/no/such/dir".into()),
            ..GeminiConfig::default()
        };
        let e = spec("p", &far, &s).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidConfiguration);
        assert!(spec(" ", &GeminiConfig::default(), &s).is_err());
    }
}

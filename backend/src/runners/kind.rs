//! What an agent type is to the server: one [`AgentKind`] per type, and nothing about a type anywhere
//! else. A kind checks a launch's configuration and turns it into the runner of its first run (the
//! command line, environment and stdin of its CLI, how long it may stay silent, how it is stopped); it
//! says how a later run continues the session; and it gives the parser of one run's lines, whose
//! `result` decides whether the run failed (never the exit code alone: CLIs disagree on what theirs
//! mean). Everything after the parser — numbering, storage, fan-out — is the same for every type.
//!
//! A new type is an [`AgentType`] name, a module beside this one implementing [`AgentKind`] (its
//! configuration struct in `agentstream-wire`), a parser in `parser/`, its line in [`kind`], and a
//! fake of its model API for the tests.

use std::path::{Path, PathBuf};

use actix_web::http::StatusCode;
use agentstream_wire::{AgentOption, AgentType, AgentTypeInfo, ErrorCode, OptionKind};
use serde_json::Value;

use super::{claude, codex, gemini, synthetic, Continuation, RunnerSpec};
use crate::configuration::Settings;
use crate::error::ApiError;
use crate::parser::LineParser;

/// One agent type.
pub trait AgentKind: Sync {
    fn agent_type(&self) -> AgentType;

    /// What `GET /api/agent-types` says of it: its options, and whether it can run here.
    fn info(&self, settings: &Settings) -> AgentTypeInfo;

    /// Checks a launch and gives its first run: 400 `invalid_configuration` naming the option that is
    /// wrong, 501 `agent_type_unavailable` when it cannot run on this server.
    fn launch(
        &self,
        prompt: &str,
        configuration: Option<&Value>,
        settings: &Settings,
    ) -> Result<RunnerSpec, ApiError>;

    /// Its agents can be continued: follow-ups, and a run cut by a restart resumed.
    fn continues(&self) -> bool;

    /// The run that continues `continuation`'s session (`session`) with `prompt`.
    fn resume(
        &self,
        prompt: &str,
        continuation: &Continuation,
        session: &str,
        settings: &Settings,
    ) -> Result<RunnerSpec, ApiError>;

    /// A parser for one run's lines.
    fn parser(&self) -> Box<dyn LineParser>;
}

/// The kind of `agent_type`.
pub fn kind(agent_type: AgentType) -> &'static dyn AgentKind {
    match agent_type {
        AgentType::Synthetic => &synthetic::Synthetic,
        AgentType::ClaudeCode => &claude::ClaudeCode,
        AgentType::GeminiCli => &gemini::GeminiCli,
        AgentType::Codex => &codex::Codex,
    }
}

/// Every type this server knows, as `GET /api/agent-types` lists them.
pub fn all(settings: &Settings) -> Vec<AgentTypeInfo> {
    AgentType::ALL
        .into_iter()
        .map(|t| kind(t).info(settings))
        .collect()
}

/// The CLI a type runs: where the settings say it is, and which setting that is.
pub struct Cli<'a> {
    /// Its name in messages (`gemini`).
    pub name: &'static str,
    pub path: &'a Path,
    /// The setting and its environment variable, as messages name them.
    pub setting: &'static str,
}

impl Cli<'_> {
    /// The program to run: the path when it names a file (a path with a `/`, relative to the server's
    /// folder), else the first executable of that name on `PATH`; made absolute, as an agent may run
    /// in another folder.
    pub fn find(&self) -> Option<PathBuf> {
        let path = self.path;
        if path.as_os_str().is_empty() {
            return None;
        }
        if path.components().count() > 1 || path.is_absolute() {
            return executable(path).then(|| std::path::absolute(path).unwrap_or(path.into()));
        }
        let dirs = std::env::var_os("PATH")?;
        std::env::split_paths(&dirs)
            .map(|dir| dir.join(path))
            .find(|candidate| executable(candidate))
            .map(|found| std::path::absolute(&found).unwrap_or(found))
    }

    /// Why its type cannot run here.
    pub fn missing(&self, agent_type: AgentType) -> String {
        format!(
            "{agent_type} agents cannot run on this server: the {} CLI {:?} was not found; install it \
             (scripts/install-tools {}) or point the setting {} at it",
            self.name,
            self.path.display().to_string(),
            self.name,
            self.setting
        )
    }

    /// The program, or 501 `agent_type_unavailable` naming the setting.
    pub fn require(&self, agent_type: AgentType) -> Result<PathBuf, ApiError> {
        self.find().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                ErrorCode::AgentTypeUnavailable,
                self.missing(agent_type),
            )
        })
    }

    /// `available` and `unavailableReason` of the type's [`AgentTypeInfo`].
    pub fn availability(&self, agent_type: AgentType) -> (bool, Option<String>) {
        match self.find() {
            Some(_) => (true, None),
            None => (false, Some(self.missing(agent_type))),
        }
    }
}

fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A type's `configuration` as its struct (`deny_unknown_fields`: an unknown key is refused, named);
/// none is the defaults.
pub fn parse_configuration<T: serde::de::DeserializeOwned + Default>(
    agent_type: AgentType,
    configuration: Option<&Value>,
) -> Result<T, ApiError> {
    match configuration {
        None | Some(Value::Null) => Ok(T::default()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| bounds::invalid(format!("{agent_type} configuration: {e}"))),
    }
}

/// An option of a type, for its [`AgentTypeInfo`].
pub fn option(name: &str, label: &str, kind: OptionKind, description: &str) -> AgentOption {
    AgentOption {
        name: name.to_owned(),
        label: label.to_owned(),
        kind,
        description: description.to_owned(),
        choices: Vec::new(),
        default: None,
    }
}

/// A `choice` option.
pub fn choice(name: &str, label: &str, choices: &[&str], description: &str) -> AgentOption {
    AgentOption {
        choices: choices.iter().map(|c| (*c).to_owned()).collect(),
        ..option(name, label, OptionKind::Choice, description)
    }
}

/// Bounds shared by the CLI types' configurations (values end up on a command line).
pub mod bounds {
    use super::ApiError;
    use agentstream_wire::ErrorCode;

    /// Longest single value (a path, a tool name).
    pub const MAX_ITEM_BYTES: usize = 1024;
    /// Most entries in a list option.
    pub const MAX_LIST: usize = 200;

    /// 400 `invalid_configuration`.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::bad_request(ErrorCode::InvalidConfiguration, message)
    }

    /// Non-empty, bounded, no control characters: safe as one argument.
    pub fn plain_arg(s: &str) -> bool {
        !s.is_empty() && s.len() <= MAX_ITEM_BYTES && !s.chars().any(char::is_control)
    }

    /// A model name as the CLIs take them.
    pub fn check_model(model: &str) -> Result<(), ApiError> {
        let ok = !model.is_empty()
            && model.len() <= 200
            && model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._:/@[]-".contains(c));
        if ok {
            Ok(())
        } else {
            Err(invalid(format!("model {model:?} is not a model name")))
        }
    }

    /// A folder on this server.
    pub fn check_folder(name: &str, dir: &str) -> Result<(), ApiError> {
        if !plain_arg(dir) {
            return Err(invalid(format!("{name} is not a path")));
        }
        if !std::path::Path::new(dir).is_dir() {
            return Err(invalid(format!(
                "{name} {dir:?} is not a folder on this server"
            )));
        }
        Ok(())
    }

    /// A session id as the CLIs make them.
    pub fn check_uuid(name: &str, id: &str) -> Result<(), ApiError> {
        uuid::Uuid::parse_str(id)
            .map(drop)
            .map_err(|_| invalid(format!("{name} must be a UUID, got {id:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cli_is_found_by_path_or_on_path() {
        let sh = Cli {
            name: "sh",
            path: Path::new("sh"),
            setting: "x",
        };
        assert!(sh.find().is_some_and(|p| p.is_absolute()));
        let missing = Cli {
            name: "nope",
            path: Path::new("/no/such/cli"),
            setting: "nope.cli_path (AGENTSTREAM__NOPE__CLI_PATH)",
        };
        assert_eq!(missing.find(), None);
        let e = missing.require(AgentType::GeminiCli).unwrap_err();
        assert_eq!(e.code, ErrorCode::AgentTypeUnavailable);
        assert!(e.message.contains("nope.cli_path"), "{}", e.message);
        // A file that is not executable is not a CLI.
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("cli");
        std::fs::write(&plain, "").unwrap();
        let not_executable = Cli {
            name: "cli",
            path: &plain,
            setting: "x",
        };
        assert_eq!(not_executable.find(), None);
    }

    #[test]
    fn every_type_describes_itself() {
        let settings = Settings::test_defaults();
        let types = all(&settings);
        assert_eq!(types.len(), AgentType::ALL.len());
        for (info, t) in types.iter().zip(AgentType::ALL) {
            assert_eq!(info.agent_type, t.as_str());
            assert!(!info.options.is_empty(), "{t}");
            assert_eq!(info.available, info.unavailable_reason.is_none(), "{t}");
            assert_eq!(info.conversations, kind(t).continues());
        }
        // The synthetic agent needs nothing.
        assert!(types[0].available);
    }
}

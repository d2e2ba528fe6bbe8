//! [`Failure`]: why a command did not succeed, and the exit code that says so.

use std::fmt;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: anything not listed below (a 422, a 5xx, a server that cannot be reached).
pub const EXIT_OTHER: u8 = 1;
/// Exit code: the command line is wrong (clap's own code for usage errors).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: 404 (no such task, worker or dependency), and `next` with nothing ready.
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit code: refused (400, 403, 409, 412): the lifecycle, the policy, a lost lease or a
/// version mismatch said no.
pub const EXIT_REFUSED: u8 = 4;
/// Exit code: 401, no token or a bad one.
pub const EXIT_AUTH: u8 = 5;

/// What `next` says on stderr when nothing is ready (the MCP tool's words too).
pub const NOTHING_READY: &str = taskflow_mcp::NOTHING_READY;

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// An answer of the API's error mapping: from the server's `{"error", "status_code"}` body
    /// in remote mode, from `ApiError::from(core error)` in local mode.
    Api {
        /// The HTTP status.
        status: u16,
        /// The message (the body's `error`).
        message: String,
    },
    /// `next` found nothing ready.
    NothingReady,
    /// The command line (or its environment) is wrong: no mode, two modes, a bad URL.
    Usage(String),
    /// Anything else, with no HTTP status: the server cannot be reached, its answer is not
    /// taskflow's, the local file cannot be opened.
    Other(String),
}

impl Failure {
    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure::Usage(message.into())
    }

    /// Any other failure.
    pub fn other(message: impl fmt::Display) -> Self {
        Failure::Other(message.to_string())
    }

    /// The failure a core error is, through the API's own mapping (`ApiError::from`): the
    /// same status as the server would answer. Refusals keep their message, which is the
    /// API's; for store failures (5xx) the message is the error itself rather than the API's
    /// generic text, since in local mode there is no server log to look it up in.
    pub fn from_core(error: taskflow_core::Error) -> Self {
        let detail = error.to_string();
        let api = taskflow_poem::ApiError::from(error);
        let status = api.status().as_u16();
        let message = if status >= 500 {
            detail
        } else {
            api.message().to_owned()
        };
        Failure::Api { status, message }
    }

    /// The process's exit code: 3 not found, 4 refused (400/403/409/412), 5 auth (401),
    /// 2 usage, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Api { status, .. } => exit_code_for_status(*status),
            Failure::NothingReady => EXIT_NOT_FOUND,
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Other(_) => EXIT_OTHER,
        }
    }

    /// The HTTP status behind this failure; 0 when there was none (no server answered).
    pub fn status_code(&self) -> u16 {
        match self {
            Failure::Api { status, .. } => *status,
            _ => 0,
        }
    }

    /// The `{"error", "status_code"}` object `--json` prints on stderr.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.to_string(), "status_code": self.status_code() })
    }
}

/// The exit code for an HTTP error status.
pub fn exit_code_for_status(status: u16) -> u8 {
    match status {
        404 => EXIT_NOT_FOUND,
        400 | 403 | 409 | 412 => EXIT_REFUSED,
        401 => EXIT_AUTH,
        _ => EXIT_OTHER,
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Api { message, .. } => f.write_str(message),
            Failure::NothingReady => f.write_str(NOTHING_READY),
            Failure::Usage(message) | Failure::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Failure {}

impl From<taskflow_core::Error> for Failure {
    fn from(error: taskflow_core::Error) -> Self {
        Failure::from_core(error)
    }
}

#[cfg(test)]
mod tests {
    use taskflow_core::Error;

    use super::*;

    #[test]
    fn statuses_map_to_exit_codes() {
        for (status, code) in [
            (404, 3),
            (400, 4),
            (403, 4),
            (409, 4),
            (412, 4),
            (401, 5),
            (422, 1),
            (500, 1),
            (503, 1),
        ] {
            assert_eq!(exit_code_for_status(status), code, "{status}");
        }
        assert_eq!(Failure::NothingReady.exit_code(), 3);
        assert_eq!(Failure::usage("x").exit_code(), 2);
        assert_eq!(Failure::other("x").exit_code(), 1);
    }

    #[test]
    fn core_errors_take_the_api_status_and_message() {
        let f = Failure::from_core(Error::task_not_found(9));
        assert_eq!(
            f,
            Failure::Api {
                status: 404,
                message: "Task not found".to_owned()
            }
        );
        assert_eq!(
            f.to_json(),
            serde_json::json!({"error": "Task not found", "status_code": 404})
        );
        let f = Failure::from_core(Error::LeaseLost { current_fence: 2 });
        assert_eq!(f.status_code(), 409);
        assert_eq!(f.to_string(), "Lease lost: task is at fence 2");
        let f = Failure::from_core(Error::backend("disk full"));
        assert_eq!(f.status_code(), 500);
        assert_eq!(f.to_string(), "disk full");
    }
}

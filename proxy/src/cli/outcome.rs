//! How every command ends: a [`Failure`] (its message on stderr, its exit code) or an exit code, and the
//! output written on the way. One mapping of errors to exit codes for the commands that act through
//! [`regbridge::Error`], the account store's [`AccountError`] and the connection store's
//! [`ConnectionError`], locally or through a server's management API.
//!
//! Exit codes (see [`super::exit_code`]): 0 success, 1 other failures (conflicts included), 2 bad input,
//! 3 not found, 4 authentication or authorization.

use std::io::{Read, Write};
use std::process::ExitCode;

use regbridge::{Error, Secret};
use serde_json::Value;

use crate::accounts::AccountError;
use crate::connections::ConnectionError;

/// A failed command: its message and exit code.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// What failed and what to do, for stderr.
    pub message: String,
}

/// A command's result: the exit code of a success (`registry validate` succeeds with 4 when the registry
/// refuses the login), or its failure.
pub type Outcome = Result<u8, Failure>;

impl Failure {
    /// Bad input (exit 2).
    pub fn bad_input(message: impl Into<String>) -> Self {
        Failure { code: 2, message: message.into() }
    }

    /// The failure of a management API call: its kind's exit code, and the server's message as the local
    /// command words it (without the "resource not found:" of the error's display).
    pub fn of_api(err: Error) -> Self {
        let code = super::exit_code(&err);
        match err {
            Error::NotFound { name, .. } | Error::AlreadyExists { name, .. } => Failure { code, message: name },
            Error::InvalidInput { message, .. } => Failure { code, message },
            other => other.into(),
        }
    }
}

impl From<&Error> for Failure {
    fn from(err: &Error) -> Self {
        Failure { code: super::exit_code(err), message: super::describe(err) }
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        (&err).into()
    }
}

impl From<AccountError> for Failure {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::Invalid(fields) => Failure::bad_input(
                fields.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("\n       "),
            ),
            AccountError::NotFound(message) => Failure { code: 3, message },
            AccountError::Conflict(message) => Failure { code: 1, message },
            AccountError::Other(inner) => inner.into(),
        }
    }
}

impl From<ConnectionError> for Failure {
    fn from(err: ConnectionError) -> Self {
        match err {
            ConnectionError::Invalid(errors) => Failure::bad_input(
                errors.iter().map(|f| format!("--{}: {}", f.field, f.message)).collect::<Vec<_>>().join("\n       "),
            ),
            ConnectionError::NotFound(_) => Failure { code: 3, message: err.to_string() },
            ConnectionError::Conflict { .. } => Failure { code: 1, message: err.to_string() },
            ConnectionError::Other(inner) => inner.into(),
        }
    }
}

/// The exit code of `outcome`, its failure reported on stderr (in the log format in use).
pub fn exit(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            super::report(&failure.message, failure.code);
            ExitCode::from(failure.code)
        }
    }
}

/// Runs a command's future on a new runtime and answers its exit code.
pub fn block_on(future: impl std::future::Future<Output = Outcome>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => exit(runtime.block_on(future)),
        Err(e) => exit(Err(Error::internal("start the tokio runtime", e).into())),
    }
}

/// Writes `text` to `out`; exit code 0. A reader that went away (`| head -1`) wanted no more: that is a
/// success too.
pub fn print(out: &mut dyn Write, text: &str) -> Outcome {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Error::internal("write to standard output", e).into()),
    }
}

/// Writes `value` as pretty JSON; exit code 0.
pub fn print_json(out: &mut dyn Write, value: &impl serde::Serialize) -> Outcome {
    print(out, &super::output::json(value))
}

/// `value` (an account) with a secret shown once under `field`.
pub fn with_secret(mut value: Value, field: &str, secret: Option<&Secret>) -> Value {
    if let (Some(secret), Some(map)) = (secret, value.as_object_mut()) {
        map.insert(field.to_owned(), Value::String(secret.expose().to_owned()));
    }
    value
}

/// The secret a `--password-stdin` (or `--token-stdin`, named by `flag`) command reads: standard input
/// without the line ends `echo` or a terminal adds. Empty input is refused: it is a forgotten pipe.
pub fn read_secret(stdin: &mut dyn Read, flag: &str) -> Result<Secret, Failure> {
    let mut text = String::new();
    stdin
        .read_to_string(&mut text)
        .map_err(|e| Failure::bad_input(format!("{flag}: cannot read standard input: {e}")))?;
    let secret = Secret::new(text.trim_end_matches(['\r', '\n']));
    if secret.expose().is_empty() {
        return Err(Failure::bad_input(format!("{flag}: standard input is empty; pipe the secret")));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_lose_their_line_end_and_empty_input_is_refused() {
        assert_eq!(read_secret(&mut "s3cret\r\n".as_bytes(), "--password-stdin").unwrap().expose(), "s3cret");
        let empty = read_secret(&mut "\n".as_bytes(), "--token-stdin").unwrap_err();
        assert_eq!(empty.code, 2);
        assert!(empty.message.contains("--token-stdin"), "{}", empty.message);
    }

    #[test]
    fn api_failures_keep_the_servers_words_and_the_exit_code_of_their_kind() {
        let missing = Failure::of_api(Error::not_found(regbridge::Resource::Other, "no user named \"x\""));
        assert_eq!((missing.code, missing.message.as_str()), (3, "no user named \"x\""));
        assert_eq!(Failure::of_api(Error::Denied { message: "not an admin".into() }).code, 4);
        assert_eq!(Failure::from(AccountError::Conflict("taken".into())).code, 1);
        assert_eq!(Failure::from(ConnectionError::NotFound("named \"x\"".into())).code, 3);
    }

    #[test]
    fn a_closed_pipe_is_not_a_failure() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        assert_eq!(print(&mut Closed, "x").unwrap(), 0);
    }
}

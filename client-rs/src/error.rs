//! What a failed call returns: one variant per gRPC status (the other clients' error tree), each with the
//! service's message and its `google.rpc.ErrorInfo` reason and metadata.

use std::collections::HashMap;
use std::fmt;

/// The service's explanation of a failure (from `grpc-status-details-bin`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    pub message: String,
    /// The ErrorInfo reason, for example TABLE_NOT_FOUND or INVALID_FILTER ("" when the service gave none).
    pub reason: String,
    pub metadata: HashMap<String, String>,
}

impl fmt::Display for Details {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{} [{}]", self.message, self.reason)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {0}")]
    InvalidArgument(Details),
    #[error("not found: {0}")]
    NotFound(Details),
    #[error("already exists: {0}")]
    AlreadyExists(Details),
    #[error("failed precondition: {0}")]
    FailedPrecondition(Details),
    #[error("aborted: {0}")]
    Aborted(Details),
    #[error("permission denied: {0}")]
    PermissionDenied(Details),
    #[error("unauthenticated: {0}")]
    Unauthenticated(Details),
    #[error("resource exhausted: {0}")]
    ResourceExhausted(Details),
    #[error("unavailable: {0}")]
    Unavailable(Details),
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(Details),
    #[error("data loss: {0}")]
    DataLoss(Details),
    #[error("cancelled: {0}")]
    Cancelled(Details),
    /// Any other status (UNKNOWN, INTERNAL, UNIMPLEMENTED, OUT_OF_RANGE), with its code.
    #[error("gRPC status {code}: {details}")]
    Other { code: i32, details: Details },
    /// The connection or the HTTP/2 exchange failed before a status arrived.
    #[error("transport: {0}")]
    Transport(String),
    /// A call this client refuses before sending it (a bad URI, rows that are not JSON objects, ...).
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub(crate) fn from_status(code: i32, details: Details) -> Error {
        match code {
            1 => Error::Cancelled(details),
            3 => Error::InvalidArgument(details),
            4 => Error::DeadlineExceeded(details),
            5 => Error::NotFound(details),
            6 => Error::AlreadyExists(details),
            7 => Error::PermissionDenied(details),
            8 => Error::ResourceExhausted(details),
            9 => Error::FailedPrecondition(details),
            10 => Error::Aborted(details),
            14 => Error::Unavailable(details),
            15 => Error::DataLoss(details),
            16 => Error::Unauthenticated(details),
            _ => Error::Other { code, details },
        }
    }

    /// The service's details, for a status error.
    pub fn details(&self) -> Option<&Details> {
        match self {
            Error::InvalidArgument(d) | Error::NotFound(d) | Error::AlreadyExists(d) | Error::FailedPrecondition(d)
            | Error::Aborted(d) | Error::PermissionDenied(d) | Error::Unauthenticated(d)
            | Error::ResourceExhausted(d) | Error::Unavailable(d) | Error::DeadlineExceeded(d) | Error::DataLoss(d)
            | Error::Cancelled(d) => Some(d),
            Error::Other { details, .. } => Some(details),
            Error::Transport(_) | Error::Usage(_) => None,
        }
    }

    /// The ErrorInfo reason ("" when there is none).
    pub fn reason(&self) -> &str {
        self.details().map(|d| d.reason.as_str()).unwrap_or("")
    }
}

pub type Result<T> = std::result::Result<T, Error>;

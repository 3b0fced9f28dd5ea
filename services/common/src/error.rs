//! One error model for every service: a small [`ErrorCode`] that maps to both
//! a gRPC code and an HTTP status, carried by [`ApiError`] together with the
//! rich details of the gRPC error model (google.rpc.BadRequest, ResourceInfo,
//! RetryInfo, QuotaFailure). Messages are for humans; codes are for programs.

use std::time::Duration;

use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// Bounds on what an error echoes of its request, so a status always fits in
/// the headers common clients accept (8 KiB in grpc-go and grpcio), however
/// large the bad input: a longer text keeps its start and says it was cut.
const MAX_MESSAGE_CHARS: usize = 512;
const MAX_FIELD_CHARS: usize = 80;
const MAX_DESCRIPTION_CHARS: usize = 160;
const MAX_RESOURCE_NAME_CHARS: usize = 128;
/// Field violations sent in one answer; the message counts the rest.
const MAX_FIELD_VIOLATIONS: usize = 20;

/// `text`, cut to at most `max` characters (an ellipsis marking the cut).
pub fn bounded(text: impl Into<String>, max: usize) -> String {
    let mut text = text.into();
    // Longer than `max` exactly when a character stands at index `max`.
    if text.char_indices().nth(max).is_some() {
        let cut = text.char_indices().nth(max.saturating_sub(1)).map_or(0, |(at, _)| at);
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// What went wrong, in the terms both gRPC and HTTP callers understand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    ResourceExhausted,
    DeadlineExceeded,
    Unavailable,
    Unimplemented,
    Internal,
}

impl ErrorCode {
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            Self::InvalidArgument => tonic::Code::InvalidArgument,
            Self::NotFound => tonic::Code::NotFound,
            Self::AlreadyExists => tonic::Code::AlreadyExists,
            Self::FailedPrecondition => tonic::Code::FailedPrecondition,
            Self::Unauthenticated => tonic::Code::Unauthenticated,
            Self::PermissionDenied => tonic::Code::PermissionDenied,
            Self::ResourceExhausted => tonic::Code::ResourceExhausted,
            Self::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            Self::Unavailable => tonic::Code::Unavailable,
            Self::Unimplemented => tonic::Code::Unimplemented,
            Self::Internal => tonic::Code::Internal,
        }
    }

    /// The code of a status another service answered; codes this model
    /// does not distinguish become INTERNAL.
    pub fn from_grpc(code: tonic::Code) -> Self {
        match code {
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange => Self::InvalidArgument,
            tonic::Code::NotFound => Self::NotFound,
            tonic::Code::AlreadyExists => Self::AlreadyExists,
            tonic::Code::FailedPrecondition => Self::FailedPrecondition,
            tonic::Code::Unauthenticated => Self::Unauthenticated,
            tonic::Code::PermissionDenied => Self::PermissionDenied,
            tonic::Code::ResourceExhausted => Self::ResourceExhausted,
            tonic::Code::DeadlineExceeded => Self::DeadlineExceeded,
            tonic::Code::Unavailable => Self::Unavailable,
            tonic::Code::Unimplemented => Self::Unimplemented,
            _ => Self::Internal,
        }
    }

    pub fn http_status(self) -> http::StatusCode {
        http_status_of(self.grpc_code())
    }
}

/// The HTTP status that answers a gRPC code, for callers who read HTTP
/// (Connect, REST, SSE): the table of the Connect protocol, which is
/// google.api's HTTP mapping with 499 for a cancelled call.
pub fn http_status_of(code: tonic::Code) -> http::StatusCode {
    use http::StatusCode;
    use tonic::Code;
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).expect("499 is a valid status"),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error a service returns to its caller.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    // Boxed: ErrorDetails is large, and errors travel in every Result.
    details: Box<ErrorDetails>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: bounded(message, MAX_MESSAGE_CHARS), details: Box::default() }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// INVALID_ARGUMENT for a single bad field.
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut violations = FieldViolations::default();
        violations.add(field, description);
        violations.into_error()
    }

    /// NOT_FOUND naming the missing resource in a ResourceInfo detail.
    pub fn not_found(resource_type: &str, resource_name: &str) -> Self {
        let resource_name = &bounded(resource_name, MAX_RESOURCE_NAME_CHARS);
        let mut error = Self::new(ErrorCode::NotFound, format!("{resource_type} {resource_name:?} does not exist"));
        error.details.set_resource_info(resource_type, resource_name, "", "not found");
        error
    }

    /// ALREADY_EXISTS naming the clashing resource in a ResourceInfo detail.
    pub fn already_exists(resource_type: &str, resource_name: &str) -> Self {
        let resource_name = &bounded(resource_name, MAX_RESOURCE_NAME_CHARS);
        let mut error =
            Self::new(ErrorCode::AlreadyExists, format!("{resource_type} {resource_name:?} already exists"));
        error.details.set_resource_info(resource_type, resource_name, "", "already exists");
        error
    }

    /// RESOURCE_EXHAUSTED telling the caller when to retry.
    pub fn resource_exhausted(message: impl Into<String>, retry_after: Duration) -> Self {
        Self::new(ErrorCode::ResourceExhausted, message).with_retry_after(retry_after)
    }

    /// UNAVAILABLE: a dependency (database, another service) cannot be reached.
    /// The cause is logged by the caller, never sent: it may name hosts.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.details.set_retry_info(Some(retry_after));
        self
    }

    /// Names the cause in a google.rpc.ErrorInfo, for programs to branch on.
    pub fn with_error_info(
        mut self,
        reason: &str,
        domain: &str,
        metadata: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        self.details.set_error_info(reason, domain, metadata.into_iter().collect::<std::collections::HashMap<_, _>>());
        self
    }

    pub fn with_quota_violation(mut self, subject: &str, description: &str) -> Self {
        self.details.add_quota_failure_violation(subject, description);
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        tonic::Status::with_error_details(error.code.grpc_code(), error.message, *error.details)
    }
}

/// A status another service answered, passed on with its details (e.g. the
/// field violations of a request made on the caller's behalf).
impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        Self {
            code: ErrorCode::from_grpc(status.code()),
            message: status.message().to_owned(),
            details: Box::new(status.get_error_details()),
        }
    }
}

/// Collects every bad field of a request, so the caller learns all of them in
/// one answer (google.rpc.BadRequest) instead of one per round trip.
#[derive(Debug, Default)]
pub struct FieldViolations {
    violations: Vec<FieldViolation>,
}

impl FieldViolations {
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations
            .push(FieldViolation::new(bounded(field, MAX_FIELD_CHARS), bounded(description, MAX_DESCRIPTION_CHARS)));
    }

    /// Records `field` as bad when `result` is an error.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(description) => {
                self.add(field, description);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }

    /// `Ok(())` when nothing was recorded, INVALID_ARGUMENT otherwise.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.violations.is_empty() { Ok(()) } else { Err(self.into_error()) }
    }

    /// INVALID_ARGUMENT carrying the recorded violations: every one, up to
    /// [`MAX_FIELD_VIOLATIONS`]; the message says how many more there were.
    pub fn into_error(mut self) -> ApiError {
        let more = self.violations.len().saturating_sub(MAX_FIELD_VIOLATIONS);
        self.violations.truncate(MAX_FIELD_VIOLATIONS);
        let fields = self.violations.iter().map(|v| v.field.as_str()).collect::<Vec<_>>().join(", ");
        let message = match (self.violations.as_slice(), more) {
            ([only], 0) => format!("invalid {}: {}", only.field, only.description),
            (_, 0) => format!("invalid fields: {fields}"),
            (_, more) => format!("invalid fields: {fields} and {more} more"),
        };
        let mut error = ApiError::new(ErrorCode::InvalidArgument, message);
        error.details.set_bad_request(self.violations);
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_violations_become_bad_request_details() {
        let mut violations = FieldViolations::default();
        violations.add("symbol.ticker", "must not be empty");
        violations.add("page_size", "must not be negative");
        let status = tonic::Status::from(violations.into_result().unwrap_err());
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "invalid fields: symbol.ticker, page_size");
        let bad_request = status.get_details_bad_request().expect("bad request detail");
        let fields: Vec<_> = bad_request.field_violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["symbol.ticker", "page_size"]);
    }

    /// The size of a status as it travels: its headers' names and values.
    fn header_bytes(status: tonic::Status) -> usize {
        let response = status.into_http::<tonic::body::Body>();
        response.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum()
    }

    #[test]
    fn errors_echo_a_bounded_part_of_any_input() {
        let huge = "X".repeat(1 << 20);
        let mut violations = FieldViolations::default();
        for index in 0..500 {
            violations.add(format!("symbols[{index}]"), format!("{huge:?} is not a registry symbol"));
        }
        let status = tonic::Status::from(violations.into_error());
        assert!(status.message().ends_with("symbols[19] and 480 more"), "{}", status.message());
        let bad_request = status.get_details_bad_request().unwrap();
        assert_eq!(bad_request.field_violations.len(), 20);
        assert!(bad_request.field_violations[0].description.ends_with('…'));
        assert!(header_bytes(status) < 8 * 1024, "fits grpc-go's and grpcio's header limit");

        let status = tonic::Status::from(ApiError::not_found("symbol", &huge));
        assert!(status.message().chars().count() <= MAX_MESSAGE_CHARS);
        assert!(header_bytes(status) < 8 * 1024);
        let small = tonic::Status::from(ApiError::not_found("symbol", "XYZ"));
        assert_eq!(small.message(), "symbol \"XYZ\" does not exist", "short inputs are kept whole");
    }

    #[test]
    fn bounded_text_keeps_its_start_and_marks_the_cut() {
        assert_eq!(bounded("abcdef", 4), "abc…");
        assert_eq!(bounded("abcd", 4), "abcd");
        assert_eq!(bounded("ééééé", 3), "éé…", "cut on a character boundary");
    }

    #[test]
    fn not_found_names_the_resource() {
        let status = tonic::Status::from(ApiError::not_found("symbol", "XYZ"));
        assert_eq!(status.code(), tonic::Code::NotFound);
        let info = status.get_details_resource_info().expect("resource info");
        assert_eq!((info.resource_type.as_str(), info.resource_name.as_str()), ("symbol", "XYZ"));
    }

    #[test]
    fn resource_exhausted_carries_retry_info() {
        let status = tonic::Status::from(ApiError::resource_exhausted("slow down", Duration::from_secs(3)));
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(status.get_details_retry_info().unwrap().retry_delay, Some(Duration::from_secs(3)));
    }

    #[test]
    fn every_code_maps_to_matching_grpc_and_http_statuses() {
        assert_eq!(ErrorCode::NotFound.http_status(), http::StatusCode::NOT_FOUND);
        assert_eq!(ErrorCode::ResourceExhausted.http_status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(ErrorCode::Unauthenticated.grpc_code(), tonic::Code::Unauthenticated);
    }
}

//! The platform kit every WizData service is built from: one way to configure,
//! log, report errors, reach the database and run a tonic server.

pub mod auth;
pub mod bus;
pub mod cache;
pub mod config;
pub mod connections;
pub mod db;
pub mod deadline;
pub mod endpoints;
pub mod error;
pub mod grpc;
pub mod health;
pub mod http2;
pub mod ids;
pub mod interval;
pub mod lanes;
pub mod market_events;
pub mod metrics;
pub mod pagination;
pub mod redis;
pub mod server;
pub mod subjects;
pub mod symbols;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;

pub use error::{ApiError, ErrorCode, FieldViolations};

//! The mesh end to end, one module per area, in one test binary: the mesh
//! is linked once, and every area shares `wizdata-test-support`'s harness.
//! Suites that must own their process (the global log subscriber, the global
//! tracing pipeline, the process's metrics recorder) are binaries of their own
//! beside this one.

mod auth;
mod contracts;
mod discovery;
mod faults;
mod feeds;
mod gateway;
mod indicators;
mod live_indicators;
mod market_data;
mod platform;
mod registry;
mod streaming;

//! The WizData gateway: one ingress for gRPC and gRPC-Web with authentication
//! and distributed rate limits. Built by its own issue (#7); this crate holds
//! its place in the workspace so the layout in DESIGN.md is complete.

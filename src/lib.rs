//! The WizData mesh contracts: generated messages, clients and servers for
//! every service, one module per proto package, plus the encoded descriptor
//! set that reflection and the access checks read.
//!
//! ```no_run
//! use wizdata::registry::v1::{registry_service_client::RegistryServiceClient, ListSymbolsRequest};
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let mut registry = RegistryServiceClient::connect("http://127.0.0.1:50051").await?;
//! let page = registry.list_symbols(ListSymbolsRequest::default()).await?.into_inner();
//! # Ok(()) }
//! ```

mod generated {
    include!(concat!(env!("OUT_DIR"), "/wizdata_includes.rs"));
}

pub use generated::wizdata::*;

/// Every wizdata proto file and its imports, encoded as a
/// `google.protobuf.FileDescriptorSet` with source info (comments).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/wizdata_descriptor.bin"));

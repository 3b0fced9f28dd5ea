//! What the gateway knows of every RPC it routes, read from the contract's
//! descriptor set: the service it belongs to, whether either side streams,
//! whether it is safe to retry, and its message types (which the Connect and
//! REST front ends translate JSON with). Paths outside the contract are
//! refused at the edge instead of costing a backend a round trip.

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, MethodDescriptor};

/// One RPC of the contract.
#[derive(Debug, Clone)]
pub struct Method {
    /// The full service name, e.g. `wizdata.registry.v1.RegistryService`.
    pub service: &'static str,
    pub client_streaming: bool,
    pub server_streaming: bool,
    /// Marked `idempotency_level = NO_SIDE_EFFECTS` or `IDEMPOTENT`: a
    /// failed attempt can be sent again.
    pub retryable: bool,
    /// Marked `NO_SIDE_EFFECTS`: Connect may call it with GET.
    pub no_side_effects: bool,
    /// The gRPC path, `/package.Service/Method`.
    pub path: &'static str,
    pub descriptor: MethodDescriptor,
}

impl Method {
    pub fn streams(&self) -> bool {
        self.client_streaming || self.server_streaming
    }
}

/// Every RPC of the WizData services, by HTTP/2 path.
#[derive(Debug)]
pub struct Methods {
    /// Looked up on every call: hashed with foldhash, not SipHash.
    by_path: foldhash::HashMap<&'static str, Method>,
    services: Vec<&'static str>,
    /// The contract and the google.rpc error details its errors carry.
    pool: DescriptorPool,
}

impl Methods {
    /// The RPCs of the contract this binary was built with.
    pub fn contract() -> &'static Self {
        static METHODS: LazyLock<Methods> = LazyLock::new(|| {
            let mut pool =
                DescriptorPool::decode(wizdata::FILE_DESCRIPTOR_SET).expect("the embedded descriptor set decodes");
            pool.decode_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
                .expect("the error details' descriptor set decodes");
            Methods::from_pool(pool, "wizdata.")
        });
        &METHODS
    }

    /// The services the gateway answers itself: health and reflection, so
    /// Connect clients (`buf curl` by reflection) reach them too.
    pub fn own() -> &'static Self {
        static OWN: LazyLock<Methods> = LazyLock::new(|| {
            let mut pool = DescriptorPool::new();
            for set in [
                tonic_health::pb::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            ] {
                pool.decode_file_descriptor_set(set).expect("tonic's descriptor sets decode");
            }
            Methods::from_pool(pool, "grpc.")
        });
        &OWN
    }

    /// The RPCs of the services in `pool` whose names start with `prefix`.
    fn from_pool(pool: DescriptorPool, prefix: &str) -> Self {
        let mut by_path = foldhash::HashMap::default();
        let mut services = Vec::new();
        for service in pool.services().filter(|service| service.full_name().starts_with(prefix)) {
            // Leaked once per service for the life of the process: the
            // names are borrowed by every call's rate-limit key and metric.
            let name: &'static str = Box::leak(service.full_name().to_owned().into_boxed_str());
            services.push(name);
            for method in service.methods() {
                let path: &'static str = Box::leak(format!("/{name}/{}", method.name()).into_boxed_str());
                let level = idempotency_level(&method);
                let method = Method {
                    service: name,
                    client_streaming: method.is_client_streaming(),
                    server_streaming: method.is_server_streaming(),
                    retryable: matches!(level, NO_SIDE_EFFECTS | IDEMPOTENT),
                    no_side_effects: level == NO_SIDE_EFFECTS,
                    path,
                    descriptor: method,
                };
                by_path.insert(path, method);
            }
        }
        services.sort_unstable();
        Self { by_path, services, pool }
    }

    pub fn get(&self, path: &str) -> Option<&Method> {
        self.by_path.get(path)
    }

    /// Every RPC, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Method> {
        self.by_path.values()
    }

    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// Every service of the contract, sorted.
    pub fn services(&self) -> &[&'static str] {
        &self.services
    }

    /// The full name of a service named by its role (`market-data`) or in full.
    pub fn service_named(&self, name: &str) -> Option<&'static str> {
        let wanted = name.trim();
        self.services.iter().copied().find(|service| {
            *service == wanted
                || service.split('.').nth(1).is_some_and(|area| area == wanted.replace('-', "").to_lowercase())
        })
    }
}

// google.protobuf.MethodOptions.IdempotencyLevel.
const NO_SIDE_EFFECTS: i32 = 1;
const IDEMPOTENT: i32 = 2;

fn idempotency_level(method: &MethodDescriptor) -> i32 {
    let options = method.options();
    match options.get_field_by_name("idempotency_level").as_deref() {
        Some(prost_reflect::Value::EnumNumber(level)) => *level,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_marks_reads_retryable_and_writes_not() {
        let methods = Methods::contract();
        let get_quote = methods.get("/wizdata.marketdata.v1.MarketDataService/GetQuote").expect("GetQuote");
        assert!(get_quote.retryable && get_quote.no_side_effects && !get_quote.streams());
        assert_eq!(get_quote.service, "wizdata.marketdata.v1.MarketDataService");
        let create = methods.get("/wizdata.registry.v1.RegistryService/CreateSymbol").expect("CreateSymbol");
        assert!(!create.retryable);
        let subscribe = methods.get("/wizdata.streaming.v1.StreamingService/Subscribe").expect("Subscribe");
        assert!(subscribe.server_streaming && !subscribe.client_streaming);
        let ingest = methods.get("/wizdata.marketdata.v1.MarketDataService/IngestTicks").expect("IngestTicks");
        assert!(ingest.client_streaming && !ingest.retryable);
        assert!(methods.get("/wizdata.registry.v1.RegistryService/Nope").is_none());
    }

    #[test]
    fn services_are_named_by_role_or_in_full() {
        let methods = Methods::contract();
        assert_eq!(methods.services().len(), 5);
        assert_eq!(methods.service_named("market-data"), Some("wizdata.marketdata.v1.MarketDataService"));
        assert_eq!(methods.service_named("registry"), Some("wizdata.registry.v1.RegistryService"));
        assert_eq!(
            methods.service_named("wizdata.streaming.v1.StreamingService"),
            Some("wizdata.streaming.v1.StreamingService")
        );
        assert_eq!(methods.service_named("billing"), None);
    }
}

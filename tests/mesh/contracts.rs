//! The contract itself: every RPC declares who may call it, and the
//! descriptor set the servers publish is complete.

use prost_reflect::{DescriptorPool, Value};

fn pool() -> DescriptorPool {
    DescriptorPool::decode(wizdata::FILE_DESCRIPTOR_SET).expect("the embedded descriptor set decodes")
}

#[test]
fn every_rpc_declares_a_scope_or_that_it_is_public() {
    let pool = pool();
    let access = pool.get_extension_by_name("wizdata.auth.v1.access").expect("the access option is defined");
    let mut checked = 0;
    for service in pool.services().filter(|s| s.full_name().starts_with("wizdata.")) {
        for method in service.methods() {
            let options = method.options();
            assert!(options.has_extension(&access), "{} has no (wizdata.auth.v1.access) option", method.full_name());
            let rule = options.get_extension(&access);
            let rule = rule.as_message().expect("the access option is a message");
            let scope = rule.get_field_by_name("scope").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            let public = matches!(rule.get_field_by_name("public").as_deref(), Some(Value::Bool(true)));
            assert!(
                public == scope.is_empty(),
                "{} must declare exactly one of a scope or public: true (scope {scope:?}, public {public})",
                method.full_name()
            );
            if !public {
                let (area, verb) = scope.split_once(':').unwrap_or_default();
                assert!(
                    !area.is_empty() && ["read", "write", "admin", "keys"].contains(&verb),
                    "{}: scope {scope:?} is not <area>:<read|write|admin|keys>",
                    method.full_name()
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 6 + 6 + 4 + 9 + 3, "every RPC of the five services was checked");
    // The servers enforce the same rules, read from the same option.
    assert_eq!(wizdata_common::auth::access::AccessRules::contract().len(), checked);
}

#[test]
fn write_rpcs_need_write_scopes() {
    let pool = pool();
    let access = pool.get_extension_by_name("wizdata.auth.v1.access").unwrap();
    let scope_of = |method: &str| {
        let (service, name) = method.rsplit_once('/').unwrap();
        let method = pool.get_service_by_name(service).unwrap().methods().find(|m| m.name() == name).unwrap();
        let options = method.options();
        let rule = options.get_extension(&access);
        rule.as_message().unwrap().get_field_by_name("scope").unwrap().as_str().unwrap().to_owned()
    };
    for write in [
        "wizdata.registry.v1.RegistryService/CreateSymbol",
        "wizdata.registry.v1.RegistryService/UpdateSymbol",
        "wizdata.registry.v1.RegistryService/DeleteSymbol",
        "wizdata.marketdata.v1.MarketDataService/IngestTicks",
        "wizdata.marketdata.v1.MarketDataService/ImportCandles",
    ] {
        assert!(scope_of(write).ends_with(":write"), "{write} needs a write scope, has {}", scope_of(write));
    }
    assert_eq!(scope_of("wizdata.registry.v1.RegistryService/ListSymbols"), "registry:read");
}

#[test]
fn the_descriptor_set_keeps_documentation_for_reflection_clients() {
    let pool = pool();
    let service = pool.get_service_by_name("wizdata.registry.v1.RegistryService").unwrap();
    let file = service.parent_file();
    let documented = file
        .file_descriptor_proto()
        .source_code_info
        .as_ref()
        .is_some_and(|info| info.location.iter().any(|l| l.leading_comments().contains("catalogue of exchanges")));
    assert!(documented, "proto comments are embedded, so buf curl / grpcurl describe show them");
}

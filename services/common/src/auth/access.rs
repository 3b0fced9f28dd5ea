//! What each RPC requires, read from the `(wizdata.auth.v1.access)` method
//! option of the descriptor set the contracts crate embeds: no hand-kept
//! table of permissions can drift from the protos.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, Value};

const ACCESS_OPTION: &str = "wizdata.auth.v1.access";

/// Who may call one RPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with or without credentials.
    Public,
    /// Callers whose credentials (or the anonymous scope set) carry this scope.
    Scope(String),
}

/// The access rule of every RPC of the WizData services, by HTTP/2 path
/// (`/wizdata.registry.v1.RegistryService/CreateSymbol`).
#[derive(Debug)]
pub struct AccessRules {
    by_path: HashMap<String, Access>,
}

impl AccessRules {
    /// The rules of the contracts this binary was built with.
    pub fn contract() -> &'static Self {
        static RULES: LazyLock<AccessRules> = LazyLock::new(|| {
            AccessRules::from_descriptor_set(wizdata::FILE_DESCRIPTOR_SET)
                .expect("every RPC of the embedded contract declares exactly one access rule")
        });
        &RULES
    }

    /// Reads the rules of every `wizdata.*` service. An RPC without the
    /// option, or with both or neither of a scope and `public`, is an error:
    /// serving it would mean guessing who may call it.
    pub fn from_descriptor_set(encoded: &[u8]) -> anyhow::Result<Self> {
        let pool = DescriptorPool::decode(encoded)?;
        let option = pool
            .get_extension_by_name(ACCESS_OPTION)
            .ok_or_else(|| anyhow::anyhow!("the descriptor set does not define {ACCESS_OPTION}"))?;
        let mut by_path = HashMap::new();
        for service in pool.services().filter(|service| service.full_name().starts_with("wizdata.")) {
            for method in service.methods() {
                let options = method.options();
                if !options.has_extension(&option) {
                    anyhow::bail!("{} has no ({ACCESS_OPTION}) option", method.full_name());
                }
                let rule = options.get_extension(&option);
                let rule = rule.as_message().ok_or_else(|| anyhow::anyhow!("{ACCESS_OPTION} is not a message"))?;
                let scope =
                    rule.get_field_by_name("scope").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                let public = matches!(rule.get_field_by_name("public").as_deref(), Some(Value::Bool(true)));
                let access = match (public, scope.is_empty()) {
                    (true, true) => Access::Public,
                    (false, false) => Access::Scope(scope),
                    _ => anyhow::bail!(
                        "{} must declare exactly one of a scope or public: true (scope {scope:?}, public {public})",
                        method.full_name()
                    ),
                };
                by_path.insert(format!("/{}/{}", service.full_name(), method.name()), access);
            }
        }
        Ok(Self { by_path })
    }

    /// The rule for a request path; `None` for paths outside the WizData
    /// contracts (health, reflection), which are open to probes and explorers.
    pub fn for_path(&self, path: &str) -> Option<&Access> {
        self.by_path.get(path)
    }

    /// Every scope some RPC requires: the scopes a key or user can be given.
    pub fn scopes(&self) -> BTreeSet<&str> {
        self.by_path
            .values()
            .filter_map(|access| match access {
                Access::Scope(scope) => Some(scope.as_str()),
                Access::Public => None,
            })
            .collect()
    }

    /// How many RPCs the rules cover.
    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_names_a_rule_for_every_rpc() {
        let rules = AccessRules::contract();
        assert_eq!(
            rules.for_path("/wizdata.registry.v1.RegistryService/CreateSymbol"),
            Some(&Access::Scope("registry:write".into()))
        );
        assert_eq!(rules.for_path("/wizdata.auth.v1.AuthService/Login"), Some(&Access::Public));
        assert_eq!(rules.for_path("/grpc.health.v1.Health/Check"), None);
        assert!(rules.scopes().contains("marketdata:write"));
        assert!(rules.scopes().contains("auth:admin"));
    }
}

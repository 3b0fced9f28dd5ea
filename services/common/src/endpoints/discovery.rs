//! Where a service's endpoints are: the addresses its URL's host resolves
//! to, asked of DNS again every refresh interval (and at once after a
//! connection to one of them fails). A Kubernetes headless Service answers
//! with one address per ready pod, so every pod becomes an endpoint; an
//! ordinary Service's single virtual address would pin each connection to
//! one pod.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use crate::config::parse_duration;

/// How backend names are resolved: one group for the gateway and for every
/// service's channels to the others, so one setting governs every call.
#[derive(clap::Args, Debug, Clone)]
pub struct DiscoveryConfig {
    /// How often a service URL whose host is a name (not an IP address) is
    /// resolved again; each address it resolves to is an endpoint of its own.
    #[arg(long, env = "WIZDATA_DNS_REFRESH_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub dns_refresh_interval: Duration,

    /// How long one resolution may take; a name server that does not answer
    /// in time leaves the endpoints found last in place.
    #[arg(long, env = "WIZDATA_DNS_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub dns_timeout: Duration,

    /// A DNS server (ip:port) to ask instead of the system's resolv.conf.
    #[arg(long, env = "WIZDATA_DNS_SERVER")]
    pub dns_server: Option<SocketAddr>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self { dns_refresh_interval: Duration::from_secs(5), dns_timeout: Duration::from_secs(2), dns_server: None }
    }
}

/// What one resolution of a name said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The name's addresses, sorted: each one an endpoint.
    Addresses(Vec<IpAddr>),
    /// The name does not exist, or exists with no address: an authoritative
    /// "none", so the service has no endpoint until that changes.
    NoAddresses(String),
    /// No usable answer (a timeout, a server failure): nothing was learnt,
    /// and the endpoints found last stay.
    Failed(String),
}

/// Resolves service names, shared by every endpoint pool of a process.
#[derive(Clone)]
pub struct Resolver {
    // Built on first use: a process whose URLs are all IP addresses never
    // needs a resolv.conf.
    dns: Arc<std::sync::OnceLock<Result<TokioResolver, String>>>,
    config: DiscoveryConfig,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Resolver {
    pub fn new(config: &DiscoveryConfig) -> Self {
        Self { dns: Arc::default(), config: config.clone() }
    }

    pub fn refresh_interval(&self) -> Duration {
        self.config.dns_refresh_interval
    }

    /// The longest one resolution may take, search domains included.
    pub fn lookup_timeout(&self) -> Duration {
        self.config.dns_timeout * 2
    }

    /// The addresses `host` resolves to now (A and AAAA records).
    pub async fn resolve(&self, host: &str) -> Resolution {
        let dns = match self.dns.get_or_init(|| self.build()) {
            Ok(dns) => dns,
            Err(why) => return Resolution::Failed(why.clone()),
        };
        // The resolver's own timeout applies per query; this bounds the whole
        // lookup.
        let lookup = tokio::time::timeout(self.lookup_timeout(), dns.lookup_ip(host)).await;
        match lookup {
            Err(_) => Resolution::Failed(format!("no DNS answer for {host} within {:?}", self.lookup_timeout())),
            Ok(Ok(found)) => {
                let mut addresses: Vec<IpAddr> = found.iter().collect();
                addresses.sort();
                addresses.dedup();
                match addresses.is_empty() {
                    true => Resolution::NoAddresses(format!("{host} has no address")),
                    false => Resolution::Addresses(addresses),
                }
            }
            Ok(Err(error)) if error.is_nx_domain() => {
                Resolution::NoAddresses(format!("{host} does not exist (NXDOMAIN)"))
            }
            Ok(Err(error)) if error.is_no_records_found() => {
                Resolution::NoAddresses(format!("{host} has no address record"))
            }
            Ok(Err(error)) => Resolution::Failed(format!("resolving {host} failed: {error}")),
        }
    }

    fn build(&self) -> Result<TokioResolver, String> {
        let (resolver_config, mut options) = match self.config.dns_server {
            Some(server) => {
                let mut name_server = NameServerConfig::udp_and_tcp(server.ip());
                for connection in &mut name_server.connections {
                    connection.port = server.port();
                }
                (ResolverConfig::from_name_servers(vec![name_server]), ResolverOpts::default())
            }
            None => hickory_resolver::system_conf::read_system_conf()
                .map_err(|error| format!("cannot read the system's DNS configuration: {error}"))?,
        };
        options.timeout = self.config.dns_timeout;
        options.attempts = 1;
        // The refresh interval is the cache: every resolution asks afresh, so a
        // changed answer is seen at the next refresh whatever its TTL.
        options.cache_size = 0;
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        hickory_resolver::Resolver::builder_with_config(resolver_config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(|error| format!("cannot start the DNS resolver: {error}"))
    }
}

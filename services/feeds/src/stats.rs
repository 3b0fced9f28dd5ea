//! A feed's metrics, labelled by provider: what arrived by kind, reconnects,
//! lag behind the provider's clock, and whether it is connected (its health,
//! also kept in [`connections`] for health checks).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use tokio::sync::watch;
use wizdata_common::time::now_ns;

/// Whether each feed of this process is connected (a polling feed: its last
/// call succeeded), by provider. Process-wide, like the metrics beside it.
static CONNECTIONS: LazyLock<watch::Sender<BTreeMap<&'static str, bool>>> =
    LazyLock::new(|| watch::Sender::new(BTreeMap::new()));

/// Every started feed's connection, by provider, changing as they do: what
/// `serve all` reports as grpc.health `feed/<provider>` and `wizdata feed`
/// answers on `/healthz`.
pub fn connections() -> watch::Receiver<BTreeMap<&'static str, bool>> {
    CONNECTIONS.subscribe()
}

fn set_connected(provider: &'static str, connected: bool) {
    CONNECTIONS.send_if_modified(|connections| connections.insert(provider, connected) != Some(connected));
}

/// What a provider's message was, for `feed_messages_total{kind}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Trade,
    Quote,
    /// Subscription answers, heartbeats and other protocol messages.
    Control,
    /// Not JSON, or a known message with a field missing, of the wrong type,
    /// or not a number: skipped.
    Malformed,
    /// A message type this feed does not know: skipped.
    Unknown,
    /// Data for a symbol the map does not carry: skipped.
    Unmapped,
    /// A duplicate or out of order by the provider's numbering: skipped.
    Stale,
    /// An error the provider sent.
    Error,
}

impl MessageKind {
    const ALL: [MessageKind; 8] = [
        MessageKind::Trade,
        MessageKind::Quote,
        MessageKind::Control,
        MessageKind::Malformed,
        MessageKind::Unknown,
        MessageKind::Unmapped,
        MessageKind::Stale,
        MessageKind::Error,
    ];

    pub fn label(self) -> &'static str {
        match self {
            MessageKind::Trade => "trade",
            MessageKind::Quote => "quote",
            MessageKind::Control => "control",
            MessageKind::Malformed => "malformed",
            MessageKind::Unknown => "unknown",
            MessageKind::Unmapped => "unmapped",
            MessageKind::Stale => "stale",
            MessageKind::Error => "error",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct FeedStats {
    provider: &'static str,
}

impl FeedStats {
    /// Exports every series at zero, so `rate()` and alerts see them from
    /// the start.
    pub fn new(provider: &'static str) -> Self {
        for kind in MessageKind::ALL {
            metrics::counter!("feed_messages_total", "provider" => provider, "kind" => kind.label()).increment(0);
        }
        metrics::counter!("feed_reconnects_total", "provider" => provider).increment(0);
        metrics::gauge!("feed_connected", "provider" => provider).set(0.0);
        set_connected(provider, false);
        Self { provider }
    }

    pub fn provider(&self) -> &'static str {
        self.provider
    }

    pub fn message(&self, kind: MessageKind) {
        metrics::counter!("feed_messages_total", "provider" => self.provider, "kind" => kind.label()).increment(1);
    }

    /// Counts a skipped message by its kind; why is for debugging a feed.
    pub fn skipped(&self, skipped: &crate::parse::Skipped) {
        self.message(skipped.kind);
        tracing::debug!(provider = self.provider, kind = skipped.kind.label(), why = %skipped.why, "skipped");
    }

    pub fn reconnect(&self) {
        metrics::counter!("feed_reconnects_total", "provider" => self.provider).increment(1);
    }

    /// How far behind the provider's event time (ns) we are receiving.
    pub fn lag(&self, event_ns: i64) {
        let lag = (now_ns() - event_ns) as f64 / 1e9;
        metrics::gauge!("feed_lag_seconds", "provider" => self.provider).set(lag);
    }

    pub fn connected(&self, connected: bool) {
        metrics::gauge!("feed_connected", "provider" => self.provider).set(if connected { 1.0 } else { 0.0 });
        set_connected(self.provider, connected);
    }
}

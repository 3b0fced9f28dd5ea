//! Where a feed's data goes: the mesh's market data service. Ticks are
//! batched (up to [`MAX_BATCH`] or [`LINGER`]) into one IngestTicks call
//! each, retried with backoff until the mesh acknowledges it: the trades
//! carry the provider's ids, so a retry of a call that was partly applied
//! counts each trade once.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::marketdata::v1::{
    ImportCandlesRequest, ImportCandlesResponse, IngestTicksRequest, IngestTicksResponse, Tick, TickRejection,
};
use wizdata::r#type::v1::{Candle, Interval};
use wizdata_common::auth::credentials::AuthenticatedChannel as Channel;

use crate::FeedError;
use crate::backoff::Backoff;

/// Most ticks in one IngestTicks call.
pub const MAX_BATCH: usize = 2000;
/// How long a tick waits for others to share its call.
pub const LINGER: Duration = Duration::from_millis(50);
/// Ticks queued before the feed waits for the mesh.
const QUEUE: usize = 16 * 1024;

enum Item {
    Tick(Tick),
    /// Answered once every tick queued before it is acknowledged.
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::Sender<Item>,
    market: MarketDataServiceClient<Channel>,
}

impl Publisher {
    /// Starts the task that sends queued ticks; it ends when every
    /// publisher is dropped and the queue is drained.
    pub fn start(channel: Channel, provider: &'static str) -> (Self, JoinHandle<()>) {
        let market = MarketDataServiceClient::new(channel).max_encoding_message_size(64 << 20);
        let (queue, items) = mpsc::channel(QUEUE);
        let task = tokio::spawn(send_loop(market.clone(), items, provider));
        (Self { queue, market }, task)
    }

    pub async fn tick(&self, tick: Tick) {
        let _ = self.queue.send(Item::Tick(tick)).await;
    }

    /// Waits until every tick queued before is acknowledged by the mesh.
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.queue.send(Item::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }

    /// Imports `candles` as one ImportCandles call (which replaces stored
    /// bars at the same open times), retrying while the mesh is unavailable.
    pub async fn import(
        &self,
        symbol: &str,
        interval: Interval,
        candles: Vec<Candle>,
    ) -> Result<ImportCandlesResponse, FeedError> {
        let request = ImportCandlesRequest { symbol: symbol.into(), interval: interval as i32, candles };
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let mut market = self.market.clone();
            match market.import_candles(tokio_stream::iter([request.clone()])).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if retryable(&status) => {
                    tracing::warn!(%symbol, code = ?status.code(), message = status.message(), "import failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(status) => return Err(FeedError::Mesh(format!("{:?}: {}", status.code(), status.message()))),
            }
        }
    }
}

fn retryable(status: &tonic::Status) -> bool {
    use tonic::Code::*;
    matches!(status.code(), Unavailable | DeadlineExceeded | ResourceExhausted | Aborted | Internal | Unknown)
}

async fn send_loop(market: MarketDataServiceClient<Channel>, mut items: mpsc::Receiver<Item>, provider: &'static str) {
    for outcome in ["accepted", "duplicate", "refused"] {
        metrics::counter!("feed_ticks_total", "provider" => provider, "outcome" => outcome).increment(0);
    }
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut flushes = Vec::new();
    while let Some(first) = items.recv().await {
        let mut next = Some(first);
        let linger = tokio::time::sleep(LINGER);
        tokio::pin!(linger);
        while let Some(item) = next.take() {
            match item {
                Item::Tick(tick) => batch.push(tick),
                // Everything before a flush goes out now.
                Item::Flush(done) => {
                    flushes.push(done);
                    break;
                }
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
            next = tokio::select! {
                item = items.recv() => item,
                _ = &mut linger => None,
            };
        }
        if !batch.is_empty() {
            send(&market, std::mem::take(&mut batch), provider).await;
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Sends one batch until the mesh acknowledges it. Refused ticks are a
/// feed's bug or a registry gap, logged with the mesh's own description.
async fn send(market: &MarketDataServiceClient<Channel>, ticks: Vec<Tick>, provider: &'static str) {
    let request = IngestTicksRequest { ticks };
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    loop {
        let mut market = market.clone();
        match market.ingest_ticks(tokio_stream::iter([request.clone()])).await {
            Ok(summary) => return account(&summary.into_inner(), provider),
            Err(status) => {
                tracing::warn!(provider, code = ?status.code(), message = status.message(), "ingest failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

/// Counts a call's outcome. Duplicates are a replay doing its job; any other
/// refusal is a feed's bug or a registry gap, logged in the mesh's words.
fn account(summary: &IngestTicksResponse, provider: &'static str) {
    let duplicate = TickRejection::Duplicate as i32;
    let duplicates: u64 =
        summary.rejections.iter().filter(|count| count.reason == duplicate).map(|count| count.count).sum();
    let refused = summary.rejected - duplicates;
    metrics::counter!("feed_ticks_total", "provider" => provider, "outcome" => "accepted").increment(summary.accepted);
    metrics::counter!("feed_ticks_total", "provider" => provider, "outcome" => "duplicate").increment(duplicates);
    metrics::counter!("feed_ticks_total", "provider" => provider, "outcome" => "refused").increment(refused);
    if let Some(sample) = summary.samples.iter().find(|sample| sample.reason != duplicate) {
        tracing::warn!(provider, refused, first = %sample.detail, "the mesh refused ticks");
    }
}

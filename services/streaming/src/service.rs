//! The StreamingService RPCs: Subscribe and Session hand each caller an
//! outbox fed by the hub and pumped to the client by a task of its own.

use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::join_all;
use prost_types::Timestamp;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel as GrpcChannel;
use tonic::{Request, Response, Status, Streaming};
use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::marketdata::v1::{GetCandlesRequest, GetQuotesRequest};
use wizdata::streaming::v1::market_event::Payload;
use wizdata::streaming::v1::streaming_service_server::StreamingService;
use wizdata::streaming::v1::{
    CandleUpdate, Channel, CommandAck, GetStreamStatsRequest, GetStreamStatsResponse, Heartbeat, MarketEvent,
    SessionRequest, SessionResponse, SubscribeCommand, SubscribeRequest, SubscribeResponse, UnsubscribeCommand,
    session_request, session_response, subscribe_response,
};
use wizdata::r#type::v1::Interval;
use wizdata_common::auth::{Caller, client_address};
use wizdata_common::symbols::SymbolDirectory;
use wizdata_common::time::to_timestamp;
use wizdata_common::{ApiError, ErrorCode, FieldViolations, interval};

use crate::StreamingConfig;
use crate::hub::{Hub, SubscriberId, TopicKey};
use crate::outbox::{Outbox, Outgoing};
use crate::stats::Stats;

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Items buffered between a subscriber's pump and its HTTP/2 stream.
const PUMP_BUFFER: usize = 16;

#[derive(Clone)]
pub struct Streamer {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Hub,
    stats: Arc<Stats>,
    symbols: SymbolDirectory,
    market_data: MarketDataServiceClient<GrpcChannel>,
    stopping: watch::Receiver<bool>,
    config: StreamingConfig,
    next_subscriber: AtomicU64,
    streams_by_subject: Mutex<HashMap<String, u32>>,
}

/// The topics one call holds.
type Held = Arc<Mutex<BTreeSet<TopicKey>>>;

/// What one Subscribe or Session call holds while it streams.
struct Call {
    id: SubscriberId,
    outbox: Arc<Outbox>,
    held: Held,
    slot: StreamSlot,
    /// A Session's command reader, stopped with the call.
    commands: Option<tokio::task::JoinHandle<()>>,
}

/// One of a subject's concurrent streams, given back when dropped.
struct StreamSlot {
    inner: Arc<Inner>,
    subject: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = self.inner.streams_by_subject.lock().expect("stream count lock is not poisoned");
        if let Some(count) = streams.get_mut(&self.subject) {
            *count -= 1;
            if *count == 0 {
                streams.remove(&self.subject);
            }
        }
    }
}

impl Streamer {
    pub fn new(
        bus: wizdata_common::bus::Bus,
        symbols: SymbolDirectory,
        market_data: GrpcChannel,
        stopping: watch::Receiver<bool>,
        config: StreamingConfig,
    ) -> Self {
        let stats = Arc::new(Stats::default());
        Self {
            inner: Arc::new(Inner {
                hub: Hub::new(bus, stats.clone()),
                stats,
                symbols,
                market_data: MarketDataServiceClient::new(market_data),
                stopping,
                config,
                next_subscriber: AtomicU64::new(1),
                streams_by_subject: Mutex::default(),
            }),
        }
    }
}

impl Inner {
    /// A subscriber id and an empty outbox for a new call.
    fn new_subscriber(&self) -> (SubscriberId, Arc<Outbox>) {
        let id = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        let outbox = Outbox::new(self.config.subscriber_queue as usize, self.config.slow_subscriber_timeout);
        (id, Arc::new(outbox))
    }

    /// Counts a stream against its subject's limit.
    fn open_stream<T>(self: &Arc<Self>, request: &Request<T>, caller: &Caller) -> Result<StreamSlot, ApiError> {
        let subject = match (caller.anonymous, client_address(request, &self.config.trusted_proxies)) {
            (true, Some(address)) => format!("{}@{address}", caller.subject),
            _ => caller.subject.clone(),
        };
        let limit = self.config.max_streams_per_subject;
        let mut streams = self.streams_by_subject.lock().expect("stream count lock is not poisoned");
        let count = streams.entry(subject.clone()).or_default();
        if *count >= limit {
            return Err(ApiError::new(
                ErrorCode::ResourceExhausted,
                format!("at most {limit} concurrent streams per subject; close one first"),
            )
            .with_quota_violation(&subject, &format!("{limit} concurrent streams")));
        }
        *count += 1;
        Ok(StreamSlot { inner: self.clone(), subject })
    }

    /// The topics a subscription asks for, every bad field reported at
    /// once. Symbols are checked with the registry, as the caller.
    async fn topics(
        &self,
        prefix: &str,
        symbols: &[String],
        channels: &[i32],
        candle_interval: i32,
        caller: &Caller,
        check_streamable: bool,
    ) -> Result<Vec<TopicKey>, ApiError> {
        let field = |name: &str| format!("{prefix}{name}");
        let mut violations = FieldViolations::default();
        if symbols.is_empty() {
            violations.add(field("symbols"), "name at least one symbol");
        }
        if channels.is_empty() {
            violations.add(field("channels"), "name at least one channel");
        }
        let mut wanted = BTreeSet::new();
        for (index, value) in channels.iter().enumerate() {
            match Channel::try_from(*value) {
                Ok(Channel::Unspecified) | Err(_) => violations.add(
                    format!("{}[{index}]", field("channels")),
                    format!("{value} is not a channel; use CHANNEL_QUOTES, CHANNEL_TRADES or CHANNEL_CANDLES"),
                ),
                Ok(channel) => {
                    wanted.insert(channel);
                }
            }
        }
        let interval = match wanted.contains(&Channel::Candles) {
            true => violations.check(&field("candle_interval"), interval::from_request(candle_interval)),
            false => Some(Interval::Unspecified),
        };
        let mut unique: Vec<(usize, &str)> = Vec::new();
        for (index, symbol) in symbols.iter().enumerate() {
            match symbol.trim() {
                "" => violations.add(format!("{}[{index}]", field("symbols")), "must not be empty"),
                trimmed if unique.iter().all(|(_, seen)| *seen != trimmed) => unique.push((index, trimmed)),
                _ => {}
            }
        }
        let max = self.config.max_subscriptions_per_call as usize;
        if unique.len() * wanted.len() > max {
            violations.add(
                field("symbols"),
                format!(
                    "at most {max} subscriptions per call (got {} symbols x {} channels)",
                    unique.len(),
                    wanted.len()
                ),
            );
        }
        if !violations.is_empty() {
            return Err(violations.into_error());
        }
        let found = join_all(unique.iter().map(|(_, symbol)| self.symbols.lookup(symbol, caller))).await;
        let mut tickers = Vec::new();
        for ((index, symbol), found) in unique.iter().zip(found) {
            let at = format!("{}[{index}]", field("symbols"));
            match found? {
                None => violations.add(at, format!("{symbol:?} is not a registry symbol")),
                Some(known) if check_streamable && !known.streamable => {
                    violations.add(at, format!("{symbol:?} is not streamable"))
                }
                Some(known) => tickers.push(known.ticker.to_string()),
            }
        }
        violations.into_result()?;
        let interval = interval.expect("checked above");
        Ok(tickers
            .iter()
            .flat_map(|symbol| {
                wanted.iter().map(move |channel| TopicKey {
                    symbol: symbol.clone(),
                    channel: *channel,
                    interval: if *channel == Channel::Candles { interval } else { Interval::Unspecified },
                })
            })
            .collect())
    }

    /// Joins `keys` and queues their snapshots: each topic's latest quote or
    /// open candle, numbered with the topic's last event.
    async fn join(
        &self,
        keys: Vec<TopicKey>,
        id: SubscriberId,
        outbox: &Arc<Outbox>,
        held: &Held,
        caller: &Caller,
    ) -> Result<(), ApiError> {
        let mut joined = Vec::new();
        for key in keys {
            if held.lock().expect("held topics lock is not poisoned").contains(&key) {
                continue;
            }
            let sequence = self.hub.join(&key, id, outbox.clone()).await?;
            held.lock().expect("held topics lock is not poisoned").insert(key.clone());
            joined.push((key, sequence));
        }
        for event in self.snapshot(&joined, caller).await? {
            outbox.push_snapshot(event);
        }
        Ok(())
    }

    async fn snapshot(&self, joined: &[(TopicKey, u64)], caller: &Caller) -> Result<Vec<MarketEvent>, ApiError> {
        let snapshot = |key: &TopicKey, sequence: u64, event_time, payload| MarketEvent {
            symbol: key.symbol.clone(),
            channel: key.channel as i32,
            sequence,
            event_time,
            snapshot: true,
            payload: Some(payload),
        };
        let mut events = Vec::new();
        let quoted: Vec<String> = joined
            .iter()
            .filter(|(key, _)| key.channel == Channel::Quotes)
            .map(|(key, _)| key.symbol.clone())
            .collect();
        if !quoted.is_empty() {
            let mut request = Request::new(GetQuotesRequest { symbols: quoted });
            caller.forward(&mut request);
            let quotes =
                self.market_data.clone().get_quotes(request).await.map_err(upstream_failure)?.into_inner().quotes;
            for (key, sequence) in joined.iter().filter(|(key, _)| key.channel == Channel::Quotes) {
                if let Some(quote) = quotes.iter().find(|quote| quote.symbol == key.symbol) {
                    events.push(snapshot(key, *sequence, quote.update_time, Payload::Quote(quote.clone())));
                }
            }
        }
        for (key, sequence) in joined.iter().filter(|(key, _)| key.channel == Channel::Candles) {
            let width = interval::width_seconds(key.interval).expect("candle topics have an interval");
            let now = chrono::Utc::now();
            let open = interval::bar_open_seconds(width, now.timestamp_nanos_opt().unwrap_or_default());
            let mut request = Request::new(GetCandlesRequest {
                symbol: key.symbol.clone(),
                interval: key.interval as i32,
                start_time: Some(Timestamp { seconds: open, nanos: 0 }),
                end_time: Some(Timestamp { seconds: open + width, nanos: 0 }),
                page_size: 1,
                page_token: String::new(),
            });
            caller.forward(&mut request);
            let candles = self.market_data.clone().get_candles(request).await.map_err(upstream_failure)?.into_inner();
            if let Some(candle) = candles.candles.into_iter().next() {
                let event_time = candle.open_time;
                let update = CandleUpdate { interval: key.interval as i32, candle: Some(candle) };
                events.push(snapshot(key, *sequence, event_time, Payload::Candle(update)));
            }
        }
        Ok(events)
    }

    /// Sends what the outbox holds to the client until the client goes, the
    /// outbox closes (a stuck subscriber) or the server stops; then lets go
    /// of everything the call held.
    fn pump<R: Send + 'static>(
        self: &Arc<Self>,
        call: Call,
        convert: fn(Outgoing) -> R,
        heartbeat: fn(Heartbeat) -> R,
    ) -> EventStream<R> {
        let Call { id, outbox, held, slot, commands } = call;
        let (sender, receiver) = mpsc::channel::<Result<R, Status>>(PUMP_BUFFER);
        let ending: Arc<Mutex<Option<Status>>> = Arc::default();
        let inner = self.clone();
        let end_with = ending.clone();
        inner.stats.connected();
        tokio::spawn(async move {
            let _slot = slot;
            let every = inner.config.heartbeat_interval;
            let mut heartbeats = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            let mut stopping = inner.stopping.clone();
            let status = loop {
                let item = match outbox.take() {
                    Err(_closed) => break Some(stuck(inner.config.slow_subscriber_timeout)),
                    Ok(item) => item,
                };
                if let Some(item) = item {
                    let is_event = matches!(item, Outgoing::Event(_));
                    tokio::select! {
                        sent = sender.send(Ok(convert(item))) => if sent.is_err() { break None },
                        () = outbox.closed() => break Some(stuck(inner.config.slow_subscriber_timeout)),
                    }
                    if is_event {
                        inner.stats.event_out();
                    }
                    continue;
                }
                tokio::select! {
                    () = outbox.ready() => {}
                    _ = heartbeats.tick() => {
                        let beat = heartbeat(Heartbeat { time: Some(to_timestamp(chrono::Utc::now())) });
                        if sender.send(Ok(beat)).await.is_err() {
                            break None;
                        }
                    }
                    () = sender.closed() => break None,
                    () = until_stopping(&mut stopping) => {
                        break Some(Status::unavailable("the server is shutting down; subscribe again"));
                    }
                }
            };
            if let Some(commands) = commands {
                commands.abort();
            }
            outbox.close();
            let keys = std::mem::take(&mut *held.lock().expect("held topics lock is not poisoned"));
            for key in keys {
                inner.hub.leave(&key, id);
            }
            inner.stats.disconnected();
            *end_with.lock().expect("ending lock is not poisoned") = status;
        });
        // The stream's last word: a status when the call ended for a reason.
        let last =
            futures_util::stream::once(async move { ending.lock().expect("ending lock is not poisoned").take() })
                .filter_map(|status| async move { status.map(Err) });
        Box::pin(ReceiverStream::new(receiver).chain(last))
    }
}

/// Resolves once the process starts stopping (never, if nobody can say so).
async fn until_stopping(stopping: &mut watch::Receiver<bool>) {
    loop {
        if *stopping.borrow_and_update() {
            return;
        }
        if stopping.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

fn stuck(after: Duration) -> Status {
    ApiError::new(
        ErrorCode::ResourceExhausted,
        format!("the subscriber left events unread for over {after:?}; subscribe again and read faster"),
    )
    .into()
}

/// Market data's answer, as this service's: the caller's own credentials or
/// request are passed on; anything else means snapshots cannot be read now.
fn upstream_failure(status: Status) -> ApiError {
    match status.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied | tonic::Code::InvalidArgument => status.into(),
        code => ApiError::unavailable(format!("market data could not serve the snapshot ({code:?}); retry later")),
    }
}

fn subscribe_response(item: Outgoing) -> SubscribeResponse {
    let payload = match item {
        Outgoing::Event(event) => subscribe_response::Payload::Event(event),
        Outgoing::Ack(_) => unreachable!("Subscribe takes no commands"),
    };
    SubscribeResponse { payload: Some(payload) }
}

fn subscribe_heartbeat(heartbeat: Heartbeat) -> SubscribeResponse {
    SubscribeResponse { payload: Some(subscribe_response::Payload::Heartbeat(heartbeat)) }
}

fn session_response(item: Outgoing) -> SessionResponse {
    let payload = match item {
        Outgoing::Event(event) => session_response::Payload::Event(event),
        Outgoing::Ack(ack) => session_response::Payload::Ack(ack),
    };
    SessionResponse { payload: Some(payload) }
}

fn session_heartbeat(heartbeat: Heartbeat) -> SessionResponse {
    SessionResponse { payload: Some(session_response::Payload::Heartbeat(heartbeat)) }
}

/// Runs one Session command and says how it went.
async fn run_command(
    inner: &Arc<Inner>,
    command: SessionRequest,
    id: SubscriberId,
    outbox: &Arc<Outbox>,
    held: &Held,
    caller: &Caller,
) -> CommandAck {
    let result = match command.command {
        Some(session_request::Command::Subscribe(subscribe)) => {
            subscribe_command(inner, subscribe, id, outbox, held, caller).await
        }
        Some(session_request::Command::Unsubscribe(unsubscribe)) => {
            unsubscribe_command(inner, unsubscribe, id, held, caller).await
        }
        None => Err(ApiError::invalid_field("command", "set subscribe or unsubscribe")),
    };
    let (code, message) = match result {
        Ok(()) => (0, String::new()),
        Err(error) => (error.code().grpc_code() as i32, error.message().to_owned()),
    };
    let active_subscriptions = held.lock().expect("held topics lock is not poisoned").len() as u32;
    CommandAck { command_id: command.command_id, code, message, active_subscriptions }
}

/// Adds topics to a session, within the per-call limit.
async fn subscribe_command(
    inner: &Arc<Inner>,
    command: SubscribeCommand,
    id: SubscriberId,
    outbox: &Arc<Outbox>,
    held: &Held,
    caller: &Caller,
) -> Result<(), ApiError> {
    let keys =
        inner.topics("subscribe.", &command.symbols, &command.channels, command.candle_interval, caller, true).await?;
    let max = inner.config.max_subscriptions_per_call as usize;
    let held_now = held.lock().expect("held topics lock is not poisoned").clone();
    let after = held_now.union(&keys.iter().cloned().collect()).count();
    if after > max {
        return Err(ApiError::new(
            ErrorCode::ResourceExhausted,
            format!("at most {max} subscriptions per session (this would make {after})"),
        ));
    }
    inner.join(keys, id, outbox, held, caller).await
}

/// Removes topics from a session; all or none, NOT_FOUND naming any it
/// does not hold.
async fn unsubscribe_command(
    inner: &Arc<Inner>,
    command: UnsubscribeCommand,
    id: SubscriberId,
    held: &Held,
    caller: &Caller,
) -> Result<(), ApiError> {
    let keys = inner
        .topics("unsubscribe.", &command.symbols, &command.channels, command.candle_interval, caller, false)
        .await?;
    let mut held_now = held.lock().expect("held topics lock is not poisoned");
    let missing: Vec<String> = keys
        .iter()
        .filter(|key| !held_now.contains(*key))
        .map(|key| format!("{} {}", key.symbol, key.channel.as_str_name()))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::new(ErrorCode::NotFound, format!("not subscribed: {}", missing.join(", "))));
    }
    for key in &keys {
        held_now.remove(key);
        inner.hub.leave(key, id);
    }
    Ok(())
}

#[tonic::async_trait]
impl StreamingService for Streamer {
    type SubscribeStream = EventStream<SubscribeResponse>;
    type SessionStream = EventStream<SessionResponse>;

    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        let inner = &self.inner;
        let caller = Caller::serving(&request);
        let slot = inner.open_stream(&request, &caller)?;
        let SubscribeRequest { symbols, channels, candle_interval } = request.into_inner();
        let keys = inner.topics("", &symbols, &channels, candle_interval, &caller, true).await?;
        let (id, outbox) = inner.new_subscriber();
        let held = Held::default();
        if let Err(error) = inner.join(keys, id, &outbox, &held, &caller).await {
            for key in held.lock().expect("held topics lock is not poisoned").iter() {
                inner.hub.leave(key, id);
            }
            return Err(error.into());
        }
        let call = Call { id, outbox, held, slot, commands: None };
        Ok(Response::new(inner.pump(call, subscribe_response, subscribe_heartbeat)))
    }

    async fn session(
        &self,
        request: Request<Streaming<SessionRequest>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let inner = self.inner.clone();
        let caller = Caller::serving(&request);
        let slot = inner.open_stream(&request, &caller)?;
        let mut commands = request.into_inner();
        let (id, outbox) = inner.new_subscriber();
        let held = Held::default();
        let reader = tokio::spawn({
            let (inner, outbox, held) = (inner.clone(), outbox.clone(), held.clone());
            async move {
                // Commands end when the client half-closes; events keep flowing.
                while let Ok(Some(command)) = commands.message().await {
                    let ack = run_command(&inner, command, id, &outbox, &held, &caller).await;
                    outbox.push_ack(ack);
                }
            }
        });
        let call = Call { id, outbox, held, slot, commands: Some(reader) };
        Ok(Response::new(inner.pump(call, session_response, session_heartbeat)))
    }

    async fn get_stream_stats(
        &self,
        _: Request<GetStreamStatsRequest>,
    ) -> Result<Response<GetStreamStatsResponse>, Status> {
        Ok(Response::new(self.inner.stats.report()))
    }
}

//! The StreamingService RPCs: Subscribe and Session hand each caller an
//! outbox fed by the hub, drained by the call's response stream as its
//! HTTP/2 connection polls it.

use std::collections::{BTreeSet, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::join_all;
use prost_types::Timestamp;
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use wizdata::indicator::v1::IndicatorSpec;
use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::marketdata::v1::{GetCandlesRequest, GetQuotesRequest};
use wizdata::streaming::v1::market_event::Payload;
use wizdata::streaming::v1::streaming_service_server::StreamingService;
use wizdata::streaming::v1::{
    CandleUpdate, Channel, CommandAck, GetStreamStatsRequest, GetStreamStatsResponse, Heartbeat, MarketEvent,
    SessionRequest, SessionResponse, SubscribeCommand, SubscribeRequest, SubscribeResponse, UnsubscribeCommand,
    session_request,
};
use wizdata::r#type::v1::Interval;
use wizdata_common::auth::{Caller, client_address};
use wizdata_common::endpoints::ServiceChannel;
use wizdata_common::subjects::{StreamSlot, StreamSlots, anonymous_subject, subject_key};
use wizdata_common::symbols::{SymbolDirectory, check_symbol_length};
use wizdata_common::time::{now_ns, now_timestamp};
use wizdata_common::{ApiError, ErrorCode, FieldViolations, interval};

use crate::StreamingConfig;
use crate::encoded::{EncodeAs, Encoded};
use crate::hub::{Hub, SubscriberId, TopicKey};
use crate::live::{LiveSpec, Seeder};
use crate::outbox::{Outbox, Outgoing};
use crate::stats::Stats;

pub type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[derive(Clone)]
pub struct Streamer {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Hub,
    stats: Arc<Stats>,
    symbols: SymbolDirectory,
    market_data: MarketDataServiceClient<ServiceChannel>,
    stopping: watch::Receiver<bool>,
    config: StreamingConfig,
    next_subscriber: AtomicU64,
    streams: StreamSlots,
}

impl Streamer {
    pub fn new(
        bus: wizdata_common::bus::Bus,
        symbols: SymbolDirectory,
        market_data: ServiceChannel,
        stopping: watch::Receiver<bool>,
        config: StreamingConfig,
    ) -> Self {
        let stats = Arc::new(Stats::new());
        Self {
            inner: Arc::new(Inner {
                hub: Hub::new(bus, stats.clone(), Seeder::new(market_data.clone())),
                stats,
                symbols,
                market_data: MarketDataServiceClient::new(market_data),
                stopping,
                streams: StreamSlots::new(config.max_streams_per_subject as usize),
                config,
                next_subscriber: AtomicU64::new(1),
            }),
        }
    }
}

/// What a subscription asks for, read from the request alone: the unique
/// symbols (with their index in the request, for field violations), the
/// channels, the candle interval and the indicators.
struct TopicRequest<'a> {
    field_prefix: &'static str,
    symbols: Vec<(usize, &'a str)>,
    channels: BTreeSet<Channel>,
    interval: Interval,
    indicators: BTreeSet<LiveSpec>,
}

/// The fields of a Subscribe request, SubscribeCommand or UnsubscribeCommand.
struct Asked<'a> {
    symbols: &'a [String],
    channels: &'a [i32],
    candle_interval: i32,
    indicators: &'a [IndicatorSpec],
}

/// Subscribe and the Session commands name topics with the same fields.
macro_rules! asked_from {
    ($command:ty) => {
        impl<'a> From<&'a $command> for Asked<'a> {
            fn from(command: &'a $command) -> Self {
                Asked {
                    symbols: &command.symbols,
                    channels: &command.channels,
                    candle_interval: command.candle_interval,
                    indicators: &command.indicators,
                }
            }
        }
    };
}

asked_from!(SubscribeRequest);
asked_from!(SubscribeCommand);
asked_from!(UnsubscribeCommand);

impl<'a> TopicRequest<'a> {
    /// Every bad field reported at once; `max` bounds the subscriptions:
    /// symbols x channels, each indicator counting as a channel.
    fn parse(field_prefix: &'static str, asked: Asked<'a>, max: usize) -> Result<Self, ApiError> {
        let Asked { symbols, channels, candle_interval, indicators } = asked;
        let field = |name: &str| format!("{field_prefix}{name}");
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
                    format!(
                        "{value} is not a channel; use CHANNEL_QUOTES, CHANNEL_TRADES, CHANNEL_CANDLES or CHANNEL_INDICATORS"
                    ),
                ),
                Ok(channel) => {
                    wanted.insert(channel);
                }
            }
        }
        let by_interval = wanted.contains(&Channel::Candles) || wanted.contains(&Channel::Indicators);
        let interval = match by_interval {
            true => violations.check(&field("candle_interval"), interval::from_request(candle_interval)),
            false => Some(Interval::Unspecified),
        };
        let live: BTreeSet<LiveSpec> = match wanted.contains(&Channel::Indicators) {
            true => wizdata_indicator::plan(&field("indicators"), indicators, &mut violations)
                .into_iter()
                .map(LiveSpec::new)
                .collect(),
            false => {
                if !indicators.is_empty() {
                    violations.add(field("indicators"), "name indicators only with CHANNEL_INDICATORS");
                }
                BTreeSet::new()
            }
        };
        let mut unique: Vec<(usize, &str)> = Vec::new();
        for (index, symbol) in symbols.iter().enumerate() {
            let at = || format!("{}[{index}]", field("symbols"));
            match symbol.trim() {
                "" => violations.add(at(), "must not be empty"),
                trimmed => match check_symbol_length(trimmed) {
                    Err(why) => violations.add(at(), why),
                    Ok(()) if unique.iter().all(|(_, seen)| *seen != trimmed) => unique.push((index, trimmed)),
                    Ok(()) => {}
                },
            }
        }
        // Each indicator is a subscription of its own, in place of the channel.
        let per_symbol = wanted.len() - usize::from(wanted.contains(&Channel::Indicators)) + live.len();
        if unique.len() * per_symbol > max {
            violations.add(
                field("symbols"),
                format!(
                    "at most {max} subscriptions per call (got {} symbols x {per_symbol} channels and indicators)",
                    unique.len(),
                ),
            );
        }
        violations.into_result()?;
        Ok(Self {
            field_prefix,
            symbols: unique,
            channels: wanted,
            interval: interval.expect("a bad interval is a violation above"),
            indicators: live,
        })
    }
}

impl Inner {
    /// The topics `request` names, its symbols checked with the registry as
    /// the caller (and, to subscribe, that they are streamable).
    async fn topics(
        &self,
        request: TopicRequest<'_>,
        caller: &Caller,
        check_streamable: bool,
    ) -> Result<Vec<TopicKey>, ApiError> {
        let found = join_all(request.symbols.iter().map(|(_, symbol)| self.symbols.lookup(symbol, caller))).await;
        let mut violations = FieldViolations::default();
        let mut tickers = Vec::new();
        for ((index, symbol), found) in request.symbols.iter().zip(found) {
            let at = format!("{}symbols[{index}]", request.field_prefix);
            match found? {
                None => violations.add(at, format!("{symbol:?} is not a registry symbol")),
                Some(known) if check_streamable && !known.streamable => {
                    violations.add(at, format!("{symbol:?} is not streamable"))
                }
                Some(known) => tickers.push(known.ticker.to_string()),
            }
        }
        violations.into_result()?;
        let mut keys = Vec::new();
        for symbol in &tickers {
            for channel in &request.channels {
                let key =
                    |interval, indicator| TopicKey { symbol: symbol.clone(), channel: *channel, interval, indicator };
                match channel {
                    Channel::Indicators => keys.extend(
                        request.indicators.iter().map(|indicator| key(request.interval, Some(indicator.clone()))),
                    ),
                    Channel::Candles => keys.push(key(request.interval, None)),
                    _ => keys.push(key(Interval::Unspecified, None)),
                }
            }
        }
        Ok(keys)
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
            let open = interval::bar_open_seconds(width, now_ns());
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
}

/// What one Subscribe or Session call owns while it streams: its place in
/// the hub, its outbox, the topics it holds and one of its subject's stream
/// slots. Dropping it lets go of all of them, however the call ends.
struct Session {
    inner: Arc<Inner>,
    caller: Caller,
    id: SubscriberId,
    outbox: Arc<Outbox>,
    // Behind a lock: a Session's commands change the topics from the command
    // reader while the response stream may end the call and let go of them.
    topics: Mutex<BTreeSet<TopicKey>>,
    // Given back when the call ends, even while a stuck client keeps its
    // HTTP/2 stream (and so this session) open.
    slot: Mutex<Option<StreamSlot>>,
}

impl Session {
    /// Counts a new call against its subject's stream limit and gives it a
    /// subscriber id and an empty outbox.
    fn open<T>(inner: &Arc<Inner>, request: &Request<T>) -> Result<Self, ApiError> {
        let caller = Caller::serving(request);
        let subject =
            subject_key(&caller, || anonymous_subject(client_address(request, &inner.config.trusted_proxies)));
        let limit = inner.streams.max();
        let slot = inner.streams.acquire(&subject).ok_or_else(|| {
            ApiError::new(
                ErrorCode::ResourceExhausted,
                format!("at most {limit} concurrent streams per subject; close one first"),
            )
            .with_quota_violation(&subject, &format!("{limit} concurrent streams"))
        })?;
        let id = inner.next_subscriber.fetch_add(1, Ordering::Relaxed);
        let outbox = Outbox::new(inner.config.subscriber_queue as usize, inner.config.slow_subscriber_timeout);
        Ok(Self {
            inner: inner.clone(),
            caller,
            id,
            outbox: Arc::new(outbox),
            topics: Mutex::default(),
            slot: Mutex::new(Some(slot)),
        })
    }

    fn topics(&self) -> std::sync::MutexGuard<'_, BTreeSet<TopicKey>> {
        self.topics.lock().expect("session topics lock is not poisoned")
    }

    /// The topics `request` names, parsed and checked with the registry.
    async fn resolve(&self, request: TopicRequest<'_>, check_streamable: bool) -> Result<Vec<TopicKey>, ApiError> {
        self.inner.topics(request, &self.caller, check_streamable).await
    }

    /// Joins `keys` and queues their snapshots: each topic's latest quote or
    /// open candle, numbered with the topic's last event.
    async fn join(&self, keys: Vec<TopicKey>) -> Result<(), ApiError> {
        let mut joined = Vec::new();
        for key in keys {
            if self.topics().contains(&key) {
                continue;
            }
            let sequence = self.inner.hub.join(&key, self.id, self.outbox.clone(), &self.caller).await?;
            self.topics().insert(key.clone());
            joined.push((key, sequence));
        }
        for event in self.inner.snapshot(&joined, &self.caller).await? {
            self.outbox.push_snapshot(event);
        }
        Ok(())
    }

    /// Runs one Session command and says how it went.
    async fn run(&self, command: SessionRequest) -> CommandAck {
        let result = match command.command {
            Some(session_request::Command::Subscribe(subscribe)) => self.subscribe(subscribe).await,
            Some(session_request::Command::Unsubscribe(unsubscribe)) => self.unsubscribe(unsubscribe).await,
            None => Err(ApiError::invalid_field("command", "set subscribe or unsubscribe")),
        };
        let (code, message) = match result {
            Ok(()) => (0, String::new()),
            Err(error) => (error.code().grpc_code() as i32, error.message().to_owned()),
        };
        let active_subscriptions = self.topics().len() as u32;
        CommandAck { command_id: command.command_id, code, message, active_subscriptions }
    }

    /// Adds topics to a session, within the per-call limit.
    async fn subscribe(&self, command: SubscribeCommand) -> Result<(), ApiError> {
        let max = self.inner.config.max_subscriptions_per_call as usize;
        let request = TopicRequest::parse("subscribe.", Asked::from(&command), max)?;
        let keys = self.resolve(request, true).await?;
        let after = self.topics().union(&keys.iter().cloned().collect()).count();
        if after > max {
            return Err(ApiError::new(
                ErrorCode::ResourceExhausted,
                format!("at most {max} subscriptions per session (this would make {after})"),
            ));
        }
        self.join(keys).await
    }

    /// Removes topics from a session; all or none, NOT_FOUND naming any it
    /// does not hold.
    async fn unsubscribe(&self, command: UnsubscribeCommand) -> Result<(), ApiError> {
        let max = self.inner.config.max_subscriptions_per_call as usize;
        let request = TopicRequest::parse("unsubscribe.", Asked::from(&command), max)?;
        let keys = self.resolve(request, false).await?;
        let mut topics = self.topics();
        let missing: Vec<String> = keys.iter().filter(|key| !topics.contains(*key)).map(TopicKey::describe).collect();
        if !missing.is_empty() {
            return Err(ApiError::new(ErrorCode::NotFound, format!("not subscribed: {}", missing.join(", "))));
        }
        for key in &keys {
            topics.remove(key);
            self.inner.hub.leave(key, self.id);
        }
        Ok(())
    }

    /// The call's responses: what the outbox holds, encoded as `response`,
    /// with heartbeats while idle, until the client goes, the outbox closes
    /// (a stuck subscriber) or the server stops. Polled by the HTTP/2
    /// connection itself, so an event costs no task switch of its own. The
    /// call lets go of everything it holds when the stream is dropped, or at
    /// once when its outbox closes: a stuck client reads nothing, so its
    /// stream is not polled. `commands` is a Session's command reader,
    /// stopped with the call.
    fn responses(
        self: Arc<Self>,
        commands: Option<tokio::task::JoinHandle<()>>,
        response: EncodeAs,
    ) -> EventStream<Encoded> {
        let call = Arc::new(Call::new(self.clone(), commands));
        tokio::spawn({
            let call = call.clone();
            async move {
                call.session.outbox.closed().await;
                call.release();
            }
        });
        let every = self.inner.config.heartbeat_interval;
        let state = Responses {
            release: ReleaseOnDrop(call),
            heartbeats: tokio::time::interval_at(tokio::time::Instant::now() + every, every),
            stopping: self.inner.stopping.clone(),
            session: self,
            response,
            resynced: VecDeque::new(),
            ended: false,
        };
        Box::pin(futures_util::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        }))
    }

    /// Closes the outbox and leaves every topic: when the call ends, or
    /// when it is dropped before it streamed.
    fn end(&self) {
        self.outbox.close();
        self.slot.lock().expect("session slot lock is not poisoned").take();
        for key in std::mem::take(&mut *self.topics()) {
            self.inner.hub.leave(&key, self.id);
        }
    }
}

/// A call's hold on its session, counted as a connection until released.
struct Call {
    session: Arc<Session>,
    commands: Option<tokio::task::JoinHandle<()>>,
    released: AtomicBool,
}

impl Call {
    fn new(session: Arc<Session>, commands: Option<tokio::task::JoinHandle<()>>) -> Self {
        session.inner.stats.connected();
        Self { session, commands, released: AtomicBool::new(false) }
    }

    /// Lets go of the session's topics and outbox and stops its command
    /// reader; the first call does it, later ones nothing.
    fn release(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(commands) = &self.commands {
            commands.abort();
        }
        self.session.end();
        self.session.inner.stats.disconnected();
    }
}

/// Releases the call when its response stream is dropped, however it ends.
struct ReleaseOnDrop(Arc<Call>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// What a call's response stream holds between items.
struct Responses {
    session: Arc<Session>,
    response: EncodeAs,
    heartbeats: tokio::time::Interval,
    stopping: watch::Receiver<bool>,
    /// Snapshot events read after a bus interruption, sent before the rest.
    resynced: VecDeque<Encoded>,
    /// The ending status was sent: nothing follows it.
    ended: bool,
    release: ReleaseOnDrop,
}

impl Responses {
    async fn next(&mut self) -> Option<Result<Encoded, Status>> {
        if self.ended {
            return None;
        }
        loop {
            if let Some(encoded) = self.resynced.pop_front() {
                self.session.inner.stats.event_out();
                return Some(Ok(encoded));
            }
            let encoded = match self.session.outbox.take() {
                Err(_closed) => return self.end_with(stuck(self.session.inner.config.slow_subscriber_timeout)),
                Ok(Some(Outgoing::Resync(key, sequence))) => {
                    self.resync(key, sequence).await;
                    continue;
                }
                Ok(Some(Outgoing::Shared(shared))) => self.response.shared(&shared),
                Ok(Some(Outgoing::Own(event))) => self.response.event(&event),
                Ok(Some(Outgoing::Ack(ack))) => return Some(Ok(self.response.ack(&ack))),
                Ok(None) => {
                    tokio::select! {
                        () = self.session.outbox.ready() => continue,
                        _ = self.heartbeats.tick() => {
                            return Some(Ok(self.response.heartbeat(&Heartbeat { time: Some(now_timestamp()) })));
                        }
                        () = until_stopping(&mut self.stopping) => {
                            return self.end_with(Status::unavailable("the server is shutting down; subscribe again"));
                        }
                    }
                }
            };
            self.session.inner.stats.event_out();
            return Some(Ok(encoded));
        }
    }

    /// The call's last item: why it ended.
    fn end_with(&mut self, status: Status) -> Option<Result<Encoded, Status>> {
        self.ended = true;
        self.release.0.release();
        Some(Err(status))
    }

    /// Reads `key`'s state afresh, to be sent as snapshot events numbered
    /// `sequence` (after the gap that made it necessary).
    async fn resync(&mut self, key: TopicKey, sequence: u64) {
        match self.session.inner.snapshot(&[(key, sequence)], &self.session.caller).await {
            Ok(events) => self.resynced.extend(events.iter().map(|event| self.response.event(event))),
            // The gap already told the client; live events bring the state back.
            Err(error) => tracing::debug!(%error, "cannot read a snapshot to resynchronise after a bus interruption"),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.end();
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

impl Streamer {
    /// Subscribe, its responses encoded (a topic's event once for all its
    /// subscribers): what [`crate::StreamingRoutes`] serves.
    pub async fn subscribe_encoded(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<EventStream<Encoded>>, Status> {
        let session = Session::open(&self.inner, &request)?;
        let request = request.into_inner();
        let max = self.inner.config.max_subscriptions_per_call as usize;
        let topics = TopicRequest::parse("", Asked::from(&request), max)?;
        let keys = session.resolve(topics, true).await?;
        session.join(keys).await?;
        Ok(Response::new(Arc::new(session).responses(None, EncodeAs::Subscribe)))
    }

    /// Session, its responses encoded as [`Streamer::subscribe_encoded`]'s.
    pub async fn session_encoded(
        &self,
        request: Request<Streaming<SessionRequest>>,
    ) -> Result<Response<EventStream<Encoded>>, Status> {
        let session = Arc::new(Session::open(&self.inner, &request)?);
        let mut commands = request.into_inner();
        let reader = tokio::spawn({
            // Shared with the response stream: commands change the session's
            // topics while their events stream.
            let session = session.clone();
            async move {
                // Commands end when the client half-closes; events keep flowing.
                // Waiting for room to acknowledge before reading the next
                // command holds back a client that does not read its answers.
                while let Ok(Some(command)) = commands.message().await {
                    let ack = session.run(command).await;
                    if session.outbox.push_ack(ack).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(session.responses(Some(reader), EncodeAs::Session)))
    }
}

/// Encoded responses read back as typed ones.
fn decoded<M: prost::Message + Default + 'static>(stream: EventStream<Encoded>) -> EventStream<M> {
    Box::pin(stream.map(|item| {
        item.and_then(|Encoded(bytes)| M::decode(bytes).map_err(|_| Status::internal("a response failed to decode")))
    }))
}

/// The typed RPCs, for callers of the generated server. Served by
/// [`crate::StreamingRoutes`], Subscribe and Session never come here: it
/// sends their encoded responses as they are.
#[tonic::async_trait]
impl StreamingService for Streamer {
    type SubscribeStream = EventStream<SubscribeResponse>;
    type SessionStream = EventStream<SessionResponse>;

    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        Ok(self.subscribe_encoded(request).await?.map(decoded))
    }

    async fn session(
        &self,
        request: Request<Streaming<SessionRequest>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        Ok(self.session_encoded(request).await?.map(decoded))
    }

    async fn get_stream_stats(
        &self,
        _: Request<GetStreamStatsRequest>,
    ) -> Result<Response<GetStreamStatsResponse>, Status> {
        Ok(Response::new(self.inner.stats.report()))
    }
}

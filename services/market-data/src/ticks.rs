//! Admission of ticks: each is accepted into a batch or rejected with a
//! reason, counted for the call's summary. A bad tick never fails the call.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use wizdata::marketdata::v1::{IngestTicksResponse, RejectedTick, RejectionCount, Tick, TickRejection, tick::Kind};

use wizdata_common::time::ns_from_timestamp;

use crate::bars::TopOfBook;
use crate::batch::{Batch, IdentifiedTrade, TradeEvent};

/// Rejected ticks described in the response, to help a feed find its bug.
pub const MAX_SAMPLES: usize = 10;
/// The longest trade source, in characters (the column's width).
pub const MAX_SOURCE_CHARS: usize = 32;
/// The longest trade id, in characters (the column's width).
pub const MAX_TRADE_ID_CHARS: usize = 128;

/// The running summary of one IngestTicks call.
#[derive(Debug, Default)]
pub struct Summary {
    accepted: u64,
    rejected: u64,
    by_reason: BTreeMap<i32, u64>,
    samples: Vec<RejectedTick>,
    /// Position of the next tick in the call's stream.
    next_index: u64,
}

/// Exports the ingest counters at zero (accepted, and rejected for every
/// reason), so `rate()` and alerts see every series from the start.
pub fn export_counters() {
    metrics::counter!("marketdata_ticks_total", "outcome" => "accepted").increment(0);
    let reasons = (1..).map_while(|value| TickRejection::try_from(value).ok());
    for reason in reasons {
        metrics::counter!("marketdata_ticks_total", "outcome" => "rejected", "reason" => reason.as_str_name())
            .increment(0);
    }
}

impl Summary {
    fn reject(&mut self, index: u64, reason: TickRejection, detail: String) {
        self.rejected += 1;
        *self.by_reason.entry(reason as i32).or_default() += 1;
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(RejectedTick { index, reason: reason as i32, detail });
        }
    }

    /// Counts trades accepted at admission that the writer found to be
    /// repeats as rejected duplicates instead.
    pub fn duplicates(&mut self, duplicates: Vec<IdentifiedTrade>) {
        for held in duplicates {
            self.accepted -= 1;
            let trade = held.trade;
            let detail =
                format!("trade {:?} from {:?} of {} was already applied", trade.trade_id, trade.source, trade.symbol);
            self.reject(held.index, TickRejection::Duplicate, detail);
        }
    }

    pub fn into_response(self) -> IngestTicksResponse {
        metrics::counter!("marketdata_ticks_total", "outcome" => "accepted").increment(self.accepted);
        for (reason, count) in &self.by_reason {
            let reason = TickRejection::try_from(*reason).map_or("UNKNOWN", |reason| reason.as_str_name());
            metrics::counter!("marketdata_ticks_total", "outcome" => "rejected", "reason" => reason).increment(*count);
        }
        IngestTicksResponse {
            accepted: self.accepted,
            rejected: self.rejected,
            rejections: self.by_reason.into_iter().map(|(reason, count)| RejectionCount { reason, count }).collect(),
            samples: self.samples,
        }
    }
}

pub struct Admission {
    /// Ticks later than now plus this are refused.
    pub max_future_ns: i64,
}

impl Admission {
    /// Admits one message's ticks. `symbols` maps each symbol in them to the
    /// registry's ticker (`None`: unknown).
    pub fn admit(
        &self,
        ticks: Vec<Tick>,
        symbols: &HashMap<String, Option<Arc<str>>>,
        now_ns: i64,
        summary: &mut Summary,
    ) -> Batch {
        let mut batch = Batch::default();
        // Sized once: growing by doubling copies every trade again into
        // memory the allocator has to fault in.
        let identified = ticks
            .iter()
            .filter(|tick| matches!(&tick.kind, Some(Kind::Trade(trade)) if !trade.trade_id.is_empty()))
            .count();
        batch.identified.reserve(identified);
        batch.trades.reserve(ticks.len() - identified);
        for tick in ticks {
            let index = summary.next_index;
            summary.next_index += 1;
            match self.check(&tick, symbols, now_ns) {
                Ok((symbol, time_ns)) => {
                    summary.accepted += 1;
                    match tick.kind {
                        Some(Kind::Trade(trade)) => {
                            let identified = !trade.trade_id.is_empty();
                            let trade = TradeEvent {
                                symbol,
                                time_ns,
                                price: trade.price,
                                size: trade.size,
                                source: trade.source,
                                trade_id: trade.trade_id,
                            };
                            if identified {
                                batch.add_identified(index, trade);
                            } else {
                                batch.add_trade(trade);
                            }
                        }
                        Some(Kind::BidAsk(book)) => batch.add_top_of_book(
                            &symbol,
                            TopOfBook {
                                time_ns,
                                bid: book.bid,
                                bid_size: book.bid_size,
                                ask: book.ask,
                                ask_size: book.ask_size,
                            },
                        ),
                        None => unreachable!("check refuses ticks without a kind"),
                    }
                }
                Err((reason, detail)) => summary.reject(index, reason, detail),
            }
        }
        batch
    }

    fn check(
        &self,
        tick: &Tick,
        symbols: &HashMap<String, Option<Arc<str>>>,
        now_ns: i64,
    ) -> Result<(Arc<str>, i64), (TickRejection, String)> {
        let Some(Some(symbol)) = symbols.get(&tick.symbol) else {
            return Err((TickRejection::UnknownSymbol, format!("symbol {:?} is not in the registry", tick.symbol)));
        };
        let Some(time) = &tick.time else {
            return Err((TickRejection::MissingTime, "time is required".into()));
        };
        let Some(time_ns) = ns_from_timestamp(time) else {
            return Err((
                TickRejection::InvalidTime,
                format!("time {}s {}ns is not a valid time from 1970 on", time.seconds, time.nanos),
            ));
        };
        if time_ns > now_ns.saturating_add(self.max_future_ns) {
            let ahead_ms = (time_ns - now_ns) / 1_000_000;
            return Err((TickRejection::FutureTime, format!("time is {ahead_ms} ms in the future")));
        }
        match &tick.kind {
            None => Err((TickRejection::MissingKind, "a tick is a trade or a bid_ask".into())),
            Some(Kind::Trade(trade)) => {
                positive_price("trade.price", trade.price)?;
                size("trade.size", trade.size)?;
                trade_identity(&trade.source, &trade.trade_id)?;
                Ok((symbol.clone(), time_ns))
            }
            Some(Kind::BidAsk(book)) => {
                positive_price("bid_ask.bid", book.bid)?;
                positive_price("bid_ask.ask", book.ask)?;
                size("bid_ask.bid_size", book.bid_size)?;
                size("bid_ask.ask_size", book.ask_size)?;
                Ok((symbol.clone(), time_ns))
            }
        }
    }
}

fn positive_price(field: &str, price: f64) -> Result<(), (TickRejection, String)> {
    if price.is_finite() && price > 0.0 {
        Ok(())
    } else {
        Err((TickRejection::InvalidPrice, format!("{field} {price} is not a finite positive number")))
    }
}

fn trade_identity(source: &str, trade_id: &str) -> Result<(), (TickRejection, String)> {
    let invalid = |detail: String| Err((TickRejection::InvalidTradeId, detail));
    if !trade_id.is_empty() && source.is_empty() {
        return invalid("trade.trade_id needs trade.source, naming whose id it is".into());
    }
    for (field, value, most) in
        [("trade.source", source, MAX_SOURCE_CHARS), ("trade.trade_id", trade_id, MAX_TRADE_ID_CHARS)]
    {
        let chars = value.chars().count();
        if chars > most {
            return invalid(format!("{field} has {chars} characters; at most {most}"));
        }
        // PostgreSQL's text cannot hold NUL, and a control character in an
        // id is a feed's bug, not an id.
        if value.chars().any(char::is_control) {
            return invalid(format!("{field} contains a control character"));
        }
    }
    Ok(())
}

fn size(field: &str, size: f64) -> Result<(), (TickRejection, String)> {
    if size.is_finite() && size >= 0.0 {
        Ok(())
    } else {
        Err((TickRejection::InvalidSize, format!("{field} {size} is not a finite non-negative number")))
    }
}

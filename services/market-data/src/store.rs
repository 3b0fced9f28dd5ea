//! Candles and quote parts in the database (SQLite or PostgreSQL via
//! sea-orm). Writes are batched upserts whose conflict clause applies the
//! same order-independent merge as `bars`, so concurrent writers (several
//! ingest calls, several replicas on PostgreSQL) never lose a trade.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use wizdata::r#type::v1::{Interval, Quote};
use wizdata_common::time::NANOS_PER_SECOND;

use crate::bars::{BarState, QuoteState};
use crate::batch::BarKey;
use crate::convert;
use crate::entity::{BarRow, NEVER, candle, quote};
use crate::interval::code;

/// Rows per INSERT: 12 parameters each stays far below SQLite's 32,766 and
/// PostgreSQL's 65,535 bind parameters.
const ROWS_PER_STATEMENT: usize = 1000;

/// Keeps whichever side's value the condition picks, for ON CONFLICT DO UPDATE
/// (both backends see the stored row by table name and the new one as
/// `excluded`).
fn pick(condition: &str, column: &str, table: &str) -> Expr {
    Expr::cust(format!("CASE WHEN {condition} THEN excluded.{column} ELSE {table}.{column} END"))
}

fn candle_merge() -> OnConflict {
    let t = "market_candle";
    let earlier = format!("(excluded.first_trade_ns, excluded.open) < ({t}.first_trade_ns, {t}.open)");
    let later = format!("(excluded.last_trade_ns, excluded.close) > ({t}.last_trade_ns, {t}.close)");
    OnConflict::columns([candle::Column::Symbol, candle::Column::Interval, candle::Column::OpenTime])
        .value(candle::Column::Open, pick(&earlier, "open", t))
        .value(candle::Column::FirstTradeNs, pick(&earlier, "first_trade_ns", t))
        .value(candle::Column::Close, pick(&later, "close", t))
        .value(candle::Column::LastTradeNs, pick(&later, "last_trade_ns", t))
        .value(candle::Column::High, pick(&format!("excluded.high > {t}.high"), "high", t))
        .value(candle::Column::Low, pick(&format!("excluded.low < {t}.low"), "low", t))
        .value(candle::Column::Volume, Expr::cust(format!("{t}.volume + excluded.volume")))
        .value(candle::Column::TradeCount, Expr::cust(format!("{t}.trade_count + excluded.trade_count")))
        .to_owned()
}

fn quote_merge() -> OnConflict {
    let t = "market_quote";
    let later_trade = format!(
        "(excluded.last_trade_ns, excluded.last_price, excluded.last_size) > ({t}.last_trade_ns, {t}.last_price, {t}.last_size)"
    );
    let later_book = format!(
        "(excluded.book_ns, excluded.bid, excluded.ask, excluded.bid_size, excluded.ask_size) > ({t}.book_ns, {t}.bid, {t}.ask, {t}.bid_size, {t}.ask_size)"
    );
    let mut merge = OnConflict::column(quote::Column::Symbol);
    for column in ["last_price", "last_size", "last_trade_ns"] {
        merge.value(sea_orm::sea_query::Alias::new(column), pick(&later_trade, column, t));
    }
    for column in ["bid", "bid_size", "ask", "ask_size", "book_ns"] {
        merge.value(sea_orm::sea_query::Alias::new(column), pick(&later_book, column, t));
    }
    merge
}

/// What a write changed, as now stored.
pub struct Written {
    pub candles: Vec<candle::Model>,
    pub quotes: Vec<quote::Model>,
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Merges `bars` and `quotes` into what is stored, in one transaction,
    /// and returns the merged rows.
    pub async fn write(
        &self,
        bars: &HashMap<BarKey, BarState>,
        quotes: &HashMap<Arc<str>, QuoteState>,
    ) -> Result<Written, DbErr> {
        let transaction = self.db.begin().await?;
        let mut written = Written { candles: Vec::with_capacity(bars.len()), quotes: Vec::with_capacity(quotes.len()) };
        let bar_rows: Vec<candle::ActiveModel> = bars.iter().map(|(key, bar)| bar_row(key, bar)).collect();
        for chunk in bar_rows.chunks(ROWS_PER_STATEMENT) {
            let rows = candle::Entity::insert_many(chunk.to_vec())
                .on_conflict(candle_merge())
                .exec_with_returning(&transaction)
                .await?;
            written.candles.extend(rows);
        }
        let quote_rows: Vec<quote::ActiveModel> =
            quotes.iter().map(|(symbol, state)| quote_row(symbol, state)).collect();
        for chunk in quote_rows.chunks(ROWS_PER_STATEMENT) {
            let rows = quote::Entity::insert_many(chunk.to_vec())
                .on_conflict(quote_merge())
                .exec_with_returning(&transaction)
                .await?;
            written.quotes.extend(rows);
        }
        transaction.commit().await?;
        Ok(written)
    }

    /// Bars of `symbol` at `interval` with `start <= open_time < end` and
    /// `open_time > after`, oldest first (times in seconds). Only the columns
    /// a reader sees are fetched: this is the hot read path.
    pub async fn candles(
        &self,
        symbol: &str,
        interval: Interval,
        start: i64,
        end: i64,
        after: Option<i64>,
        limit: u64,
    ) -> Result<Vec<BarRow>, DbErr> {
        let mut select = candle::Entity::find()
            .select_only()
            .columns([
                candle::Column::OpenTime,
                candle::Column::Open,
                candle::Column::High,
                candle::Column::Low,
                candle::Column::Close,
                candle::Column::Volume,
                candle::Column::TradeCount,
            ])
            .filter(candle::Column::Symbol.eq(symbol))
            .filter(candle::Column::Interval.eq(code(interval)))
            .filter(candle::Column::OpenTime.gte(start))
            .filter(candle::Column::OpenTime.lt(end));
        if let Some(after) = after {
            select = select.filter(candle::Column::OpenTime.gt(after));
        }
        select.order_by_asc(candle::Column::OpenTime).limit(limit).into_model::<BarRow>().all(&self.db).await
    }

    /// The quote of `symbol` as stored: its quote parts and its two latest
    /// daily bars (`stale` is left for the reader). `None` before its first
    /// tick.
    pub async fn quote(&self, symbol: &str) -> Result<Option<Quote>, DbErr> {
        let Some(row) = quote::Entity::find_by_id(symbol).one(&self.db).await? else { return Ok(None) };
        let days = candle::Entity::find()
            .filter(candle::Column::Symbol.eq(symbol))
            .filter(candle::Column::Interval.eq(code(Interval::OneDay)))
            .order_by_desc(candle::Column::OpenTime)
            .limit(2)
            .all(&self.db)
            .await?;
        Ok(Some(convert::quote(&row, &days)))
    }

    /// Stores imported bars, replacing any stored at the same open times, in
    /// one transaction. Returns how many replaced a stored bar.
    pub async fn import(&self, rows: Vec<candle::Model>) -> Result<u64, DbErr> {
        let transaction = self.db.begin().await?;
        // Take the write lock before reading: on SQLite (WAL) a transaction
        // that reads first cannot upgrade to a write once the writer has
        // committed meanwhile, and fails "database is locked" at once, while
        // waiting for the lock first honours the busy timeout.
        candle::Entity::delete_many().filter(Expr::value(false)).exec(&transaction).await?;
        let mut replaced = 0;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let first = &chunk[0];
            replaced += candle::Entity::find()
                .filter(candle::Column::Symbol.eq(first.symbol.as_str()))
                .filter(candle::Column::Interval.eq(first.interval.as_str()))
                .filter(candle::Column::OpenTime.is_in(chunk.iter().map(|row| row.open_time)))
                .count(&transaction)
                .await?;
            let replace =
                OnConflict::columns([candle::Column::Symbol, candle::Column::Interval, candle::Column::OpenTime])
                    .update_columns([
                        candle::Column::Open,
                        candle::Column::High,
                        candle::Column::Low,
                        candle::Column::Close,
                        candle::Column::Volume,
                        candle::Column::TradeCount,
                        candle::Column::FirstTradeNs,
                        candle::Column::LastTradeNs,
                    ])
                    .to_owned();
            let active: Vec<candle::ActiveModel> = chunk.iter().cloned().map(Into::into).collect();
            candle::Entity::insert_many(active).on_conflict(replace).exec_without_returning(&transaction).await?;
        }
        transaction.commit().await?;
        Ok(replaced)
    }
}

fn bar_row(key: &BarKey, bar: &BarState) -> candle::ActiveModel {
    candle::ActiveModel {
        symbol: Set(key.symbol.to_string()),
        interval: Set(code(key.interval).to_owned()),
        open_time: Set(key.open_time),
        open: Set(bar.open),
        high: Set(bar.high),
        low: Set(bar.low),
        close: Set(bar.close),
        volume: Set(bar.volume),
        trade_count: Set(bar.trade_count),
        first_trade_ns: Set(bar.first_trade_ns),
        last_trade_ns: Set(bar.last_trade_ns),
    }
}

fn quote_row(symbol: &str, state: &QuoteState) -> quote::ActiveModel {
    let trade = state.last_trade;
    let book = state.top_of_book;
    quote::ActiveModel {
        symbol: Set(symbol.to_owned()),
        last_price: Set(trade.map_or(0.0, |t| t.price)),
        last_size: Set(trade.map_or(0.0, |t| t.size)),
        last_trade_ns: Set(trade.map_or(NEVER, |t| t.time_ns)),
        bid: Set(book.map_or(0.0, |b| b.bid)),
        bid_size: Set(book.map_or(0.0, |b| b.bid_size)),
        ask: Set(book.map_or(0.0, |b| b.ask)),
        ask_size: Set(book.map_or(0.0, |b| b.ask_size)),
        book_ns: Set(book.map_or(NEVER, |b| b.time_ns)),
    }
}

/// An imported bar: it stands for trades spanning the whole bar, so a later
/// live trade inside it merges sensibly.
pub fn imported_row(symbol: &str, interval: Interval, open_time: i64, width: i64, ohlcv: [f64; 5]) -> candle::Model {
    let [open, high, low, close, volume] = ohlcv;
    candle::Model {
        symbol: symbol.to_owned(),
        interval: code(interval).to_owned(),
        open_time,
        open,
        high,
        low,
        close,
        volume,
        trade_count: 0,
        first_trade_ns: open_time * NANOS_PER_SECOND,
        last_trade_ns: (open_time + width) * NANOS_PER_SECOND - 1,
    }
}

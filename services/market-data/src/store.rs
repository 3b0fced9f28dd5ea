//! Candles and quote parts in the database (SQLite or PostgreSQL via
//! sea-orm). Writes are batched upserts whose conflict clause applies the
//! same order-independent merge as `bars`, so concurrent writers (several
//! ingest calls, several replicas on PostgreSQL) never lose a trade.

use std::collections::HashSet;
use std::sync::Arc;

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait, TryInsertResult,
};
use wizdata::r#type::v1::{Interval, Quote};
use wizdata_common::time::{NANOS_PER_SECOND, now_ns};

use crate::bars::{BarState, QuoteState};
use crate::batch::{
    AlreadyApplied, BarKey, Batch, IdRun, IdentifiedTrade, SeriesRuns, TradeKey, TradeKeyRef, runs_minus,
};
use crate::candle_cache::SETTLE_MARGIN_NS;
use crate::convert;
use crate::entity::{BarRow, NEVER, candle, quote, series_revision, trade_id, trade_id_range, trade_series};
use crate::interval::{self, bar_is_closed, code};

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

/// A new revision for a written series: the writer's clock, or one past the
/// stored revision where that is not smaller (see `entity::series_revision`);
/// the settled revision rises by the row's own (1 for a write that touched
/// a closed bar, else 0).
fn revision_bump() -> OnConflict {
    let t = "market_series_revision";
    OnConflict::columns([series_revision::Column::Symbol, series_revision::Column::Interval])
        .value(
            series_revision::Column::Revision,
            Expr::cust(format!(
                "CASE WHEN {t}.revision >= excluded.revision THEN {t}.revision + 1 ELSE excluded.revision END"
            )),
        )
        .value(
            series_revision::Column::SettledRevision,
            Expr::cust(format!("{t}.settled_revision + excluded.settled_revision")),
        )
        .to_owned()
}

/// A written series: symbol, interval code, and whether the write touched
/// a bar already closed.
type WrittenSeries<'a> = (&'a str, &'a str, bool);

/// Gives each of `series` (sorted, each once) a new revision, and those
/// that touched a closed bar a new settled revision, in the transaction
/// that writes their bars; returns the settled revisions those now have.
/// In one order on every writer, after the bars, so replicas on one
/// PostgreSQL queue.
async fn bump_revisions(
    connection: &impl ConnectionTrait,
    series: &[WrittenSeries<'_>],
    now_ns: i64,
) -> Result<Vec<SettledRevision>, DbErr> {
    let mut settled = Vec::new();
    for chunk in series.chunks(ROWS_PER_STATEMENT) {
        let rows = chunk.iter().map(|&(symbol, interval, touched_closed)| series_revision::ActiveModel {
            symbol: Set(symbol.to_owned()),
            interval: Set(interval.to_owned()),
            revision: Set(now_ns),
            settled_revision: Set(i64::from(touched_closed)),
        });
        let stored = series_revision::Entity::insert_many(rows)
            .on_conflict(revision_bump())
            .exec_with_returning(connection)
            .await?;
        settled.extend(
            stored
                .into_iter()
                .filter(|row| {
                    chunk.iter().any(|&(symbol, interval, touched_closed)| {
                        touched_closed && (symbol, interval) == (row.symbol.as_str(), row.interval.as_str())
                    })
                })
                .map(|row| SettledRevision {
                    symbol: row.symbol,
                    interval: row.interval,
                    settled_revision: row.settled_revision,
                }),
        );
    }
    Ok(settled)
}

/// A series' settled revision after a write that raised it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledRevision {
    pub symbol: String,
    /// The interval's code.
    pub interval: String,
    pub settled_revision: i64,
}

/// The written series (sorted, each once), each flagged when one of its
/// bars was closed at `now_ns`.
fn written_series(candles: &[candle::Model], now_ns: i64) -> Vec<WrittenSeries<'_>> {
    let mut series: Vec<WrittenSeries<'_>> = Vec::new();
    let mut sorted: Vec<&candle::Model> = candles.iter().collect();
    sorted.sort_unstable_by(|a, b| (&a.symbol, &a.interval).cmp(&(&b.symbol, &b.interval)));
    for row in sorted {
        let closed =
            interval::parse(&row.interval).is_some_and(|interval| bar_is_closed(interval, row.open_time, now_ns));
        match series.last_mut() {
            Some((symbol, interval, touched_closed))
                if (*symbol, *interval) == (row.symbol.as_str(), row.interval.as_str()) =>
            {
                *touched_closed |= closed;
            }
            _ => series.push((&row.symbol, &row.interval, closed)),
        }
    }
    series
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
    /// The identified trades not applied, being repeats, with their
    /// positions in the batch's identified list.
    pub duplicates: Vec<(usize, IdentifiedTrade)>,
    /// The series whose settled revision the write raised.
    pub settled: Vec<SettledRevision>,
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// The time in ns at which a write judges which bars are closed, and
    /// checks that judgement again after its commit: the system clock, or a
    /// test's.
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db, clock: Arc::new(now_ns) }
    }

    /// Claims the ids of the batch's identified trades, folds in those it
    /// claimed, and merges its bars and quotes into what is stored, all in
    /// one transaction; returns the merged rows and the duplicates. The
    /// claim and the merge commit together, so a trade is counted exactly
    /// when its id is remembered, whichever replica wrote it.
    pub async fn write(&self, batch: &mut Batch, applied_ns: i64) -> Result<Written, DbErr> {
        let transaction = self.db.begin().await?;
        let duplicates = if batch.identified.is_empty() {
            Vec::new()
        } else {
            let claims = batch.claims();
            // Keys before series, each in order, on every writer: two
            // replicas on one PostgreSQL then never wait on each other in a
            // cycle.
            let already_applied = AlreadyApplied {
                keys: claim_trade_ids(&transaction, claims.keys, applied_ns).await?,
                runs: claim_id_runs(&transaction, &claims.series, applied_ns).await?,
            };
            batch.settle(&already_applied)
        };
        let (bars, quotes) = (&batch.bars, &batch.quotes);
        let mut written = Written {
            candles: Vec::with_capacity(bars.len()),
            quotes: Vec::with_capacity(quotes.len()),
            duplicates,
            settled: Vec::new(),
        };
        // Rows in one order on every writer, so concurrent upserts of the
        // same bars (replicas on one PostgreSQL) queue instead of deadlocking.
        let mut bars: Vec<_> = bars.iter().collect();
        bars.sort_unstable_by(|(a, _), (b, _)| {
            (&a.symbol, a.interval, a.open_time).cmp(&(&b.symbol, b.interval, b.open_time))
        });
        let mut quotes: Vec<_> = quotes.iter().collect();
        quotes.sort_unstable_by_key(|(symbol, _)| *symbol);
        let bar_rows: Vec<candle::ActiveModel> = bars.into_iter().map(|(key, bar)| bar_row(key, bar)).collect();
        for chunk in bar_rows.chunks(ROWS_PER_STATEMENT) {
            let rows = candle::Entity::insert_many(chunk.to_vec())
                .on_conflict(candle_merge())
                .exec_with_returning(&transaction)
                .await?;
            written.candles.extend(rows);
        }
        // Which bars are closed is decided here, before the commit; see
        // the check after it.
        let decided_ns = (self.clock)();
        let series = written_series(&written.candles, decided_ns);
        written.settled = bump_revisions(&transaction, &series, applied_ns).await?;
        let quote_rows: Vec<quote::ActiveModel> =
            quotes.into_iter().map(|(symbol, state)| quote_row(symbol, state)).collect();
        for chunk in quote_rows.chunks(ROWS_PER_STATEMENT) {
            let rows = quote::Entity::insert_many(chunk.to_vec())
                .on_conflict(quote_merge())
                .exec_with_returning(&transaction)
                .await?;
            written.quotes.extend(rows);
        }
        transaction.commit().await?;
        // A commit slower than half the settle margin after the decision: a
        // bar judged open then may be settled, and cached by a reader from
        // before this commit, by now. Those series' settled revisions rise
        // again, before the write is acknowledged.
        let committed_ns = (self.clock)();
        if committed_ns - decided_ns > SETTLE_MARGIN_NS / 2 {
            let late: Vec<WrittenSeries<'_>> = written_series(&written.candles, committed_ns)
                .into_iter()
                .filter(|&(symbol, interval, closed)| {
                    closed
                        && !written
                            .settled
                            .iter()
                            .any(|settled| (settled.symbol.as_str(), settled.interval.as_str()) == (symbol, interval))
                })
                .collect();
            let raised = bump_revisions(&self.db, &late, committed_ns).await?;
            written.settled.extend(raised);
        }
        Ok(written)
    }

    /// Forgets the trade ids applied before `cutoff_ns`: a repeat of one of
    /// them is no longer recognised. Returns how many were forgotten.
    pub async fn forget_trade_ids(&self, cutoff_ns: i64) -> Result<u64, DbErr> {
        let transaction = self.db.begin().await?;
        let singles = trade_id::Entity::delete_many()
            .filter(trade_id::Column::AppliedNs.lt(cutoff_ns))
            .exec(&transaction)
            .await?
            .rows_affected;
        let in_runs: Option<i64> = trade_id_range::Entity::find()
            .select_only()
            .column_as(Expr::cust("CAST(SUM(last_id - first_id + 1) AS BIGINT)"), "ids")
            .filter(trade_id_range::Column::AppliedNs.lt(cutoff_ns))
            .into_tuple()
            .one(&transaction)
            .await?
            .flatten();
        trade_id_range::Entity::delete_many()
            .filter(trade_id_range::Column::AppliedNs.lt(cutoff_ns))
            .exec(&transaction)
            .await?;
        transaction.commit().await?;
        Ok(singles + in_runs.unwrap_or(0) as u64)
    }

    /// The revision and the settled revision of `symbol`'s bars at
    /// `interval` (0 before their first write): one primary-key read.
    pub async fn series_revisions(&self, symbol: &str, interval: Interval) -> Result<(i64, i64), DbErr> {
        let revisions = series_revision::Entity::find_by_id((symbol.to_owned(), code(interval).to_owned()))
            .select_only()
            .columns([series_revision::Column::Revision, series_revision::Column::SettledRevision])
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(revisions.unwrap_or((0, 0)))
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

    /// Stores imported bars (of one series), replacing any stored at the
    /// same open times, in one transaction. Returns how many replaced a
    /// stored bar, and the series' new settled revision.
    pub async fn import(&self, rows: &[candle::Model]) -> Result<(u64, Option<SettledRevision>), DbErr> {
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
        // An import may rewrite any bar: it always raises the settled revision.
        let settled = match rows.first() {
            Some(first) => {
                let series = [(first.symbol.as_str(), first.interval.as_str(), true)];
                bump_revisions(&transaction, &series, now_ns()).await?.pop()
            }
            None => None,
        };
        transaction.commit().await?;
        Ok((replaced, settled))
    }
}

/// Claims `keys` for this transaction and returns those it could not
/// claim: already applied (by an earlier write, or by another replica whose
/// transaction held them first). Each row is stamped with a random claim
/// token, so a statement that claimed fewer rows than it offered can tell
/// its own rows from those that were there: the common case, all new, needs
/// no answer per row. On PostgreSQL a key another transaction holds
/// uncommitted waits for it; SQLite serialises writers.
async fn claim_trade_ids(
    transaction: &DatabaseTransaction,
    keys: Vec<TradeKeyRef<'_>>,
    applied_ns: i64,
) -> Result<HashSet<TradeKey>, DbErr> {
    let token: i64 = rand::random();
    let mut taken = HashSet::new();
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let rows = chunk.iter().map(|(symbol, source, trade_id)| trade_id::ActiveModel {
            symbol: Set((*symbol).to_owned()),
            source: Set((*source).to_owned()),
            trade_id: Set((*trade_id).to_owned()),
            applied_ns: Set(applied_ns),
            claim: Set(token),
        });
        let claimed = match trade_id::Entity::insert_many(rows)
            .on_conflict_do_nothing()
            .exec_without_returning(transaction)
            .await?
        {
            TryInsertResult::Inserted(count) => count,
            TryInsertResult::Conflicted | TryInsertResult::Empty => 0,
        };
        if claimed == chunk.len() as u64 {
            continue;
        }
        let key = Expr::tuple([
            Expr::col(trade_id::Column::Symbol),
            Expr::col(trade_id::Column::Source),
            Expr::col(trade_id::Column::TradeId),
        ]);
        let offered = chunk.iter().map(|(symbol, source, trade_id)| {
            Expr::tuple([Expr::val(*symbol), Expr::val(*source), Expr::val(*trade_id)])
        });
        let held: Vec<TradeKey> = trade_id::Entity::find()
            .select_only()
            .columns([trade_id::Column::Symbol, trade_id::Column::Source, trade_id::Column::TradeId])
            .filter(key.is_in(offered))
            .filter(trade_id::Column::Claim.ne(token))
            .into_tuple()
            .all(transaction)
            .await?;
        taken.extend(held);
    }
    Ok(taken)
}

/// Claims the integer ids of each series, runs at a time, and returns,
/// per series, the stored runs that hold some of them. Each series' row is
/// locked first, so on PostgreSQL a second writer of the same series reads
/// its stored runs only after the first has committed or rolled back; the
/// runs stored are only the parts no stored run holds, so a series' runs
/// never overlap and the stored runs meeting `low..=high` are those
/// starting within it plus at most one starting before it.
async fn claim_id_runs(
    transaction: &DatabaseTransaction,
    series: &[SeriesRuns<'_>],
    applied_ns: i64,
) -> Result<Vec<((String, String), Vec<IdRun>)>, DbErr> {
    let lock = OnConflict::columns([trade_series::Column::Symbol, trade_series::Column::Source])
        .update_column(trade_series::Column::ClaimedNs)
        .to_owned();
    for chunk in series.chunks(ROWS_PER_STATEMENT) {
        let rows = chunk.iter().map(|series| trade_series::ActiveModel {
            symbol: Set(series.symbol.to_owned()),
            source: Set(series.source.to_owned()),
            claimed_ns: Set(applied_ns),
        });
        trade_series::Entity::insert_many(rows).on_conflict(lock.clone()).exec_without_returning(transaction).await?;
    }
    let mut held = Vec::new();
    let mut new_runs = Vec::new();
    for series in series {
        let (Some(&(low, _)), Some(&(_, high))) = (series.runs.first(), series.runs.last()) else { continue };
        let of_series = || {
            trade_id_range::Entity::find()
                .select_only()
                .columns([trade_id_range::Column::FirstId, trade_id_range::Column::LastId])
                .filter(trade_id_range::Column::Symbol.eq(series.symbol))
                .filter(trade_id_range::Column::Source.eq(series.source))
        };
        let before: Option<IdRun> = of_series()
            .filter(trade_id_range::Column::FirstId.lt(low))
            .order_by_desc(trade_id_range::Column::FirstId)
            .limit(1)
            .into_tuple()
            .one(transaction)
            .await?;
        let within: Vec<IdRun> = of_series()
            .filter(trade_id_range::Column::FirstId.between(low, high))
            .order_by_asc(trade_id_range::Column::FirstId)
            .into_tuple()
            .all(transaction)
            .await?;
        let stored: Vec<IdRun> = before.filter(|&(_, last)| last >= low).into_iter().chain(within).collect();
        new_runs.extend(runs_minus(&series.runs, &stored).into_iter().map(|(first_id, last_id)| {
            trade_id_range::ActiveModel {
                symbol: Set(series.symbol.to_owned()),
                source: Set(series.source.to_owned()),
                first_id: Set(first_id),
                last_id: Set(last_id),
                applied_ns: Set(applied_ns),
            }
        }));
        if !stored.is_empty() {
            held.push(((series.symbol.to_owned(), series.source.to_owned()), stored));
        }
    }
    for chunk in new_runs.chunks(ROWS_PER_STATEMENT) {
        trade_id_range::Entity::insert_many(chunk.to_vec()).exec_without_returning(transaction).await?;
    }
    Ok(held)
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

#[cfg(test)]
mod tests {
    use wizdata_common::testing::TestDatabase;

    use super::*;
    use crate::batch::TradeEvent;

    fn identified(trade_id: &str) -> Batch {
        let mut batch = Batch::default();
        let trade = TradeEvent {
            symbol: "BTC/USDT".into(),
            time_ns: 1_709_643_600_000_000_000,
            price: 10.0,
            size: 2.0,
            source: "binance".into(),
            trade_id: trade_id.into(),
        };
        batch.add_identified(7, trade);
        batch
    }

    /// On PostgreSQL when WIZDATA_TEST_DATABASE_URL is set, else SQLite.
    #[tokio::test]
    async fn a_trade_id_is_applied_once_until_the_window_forgets_it() {
        // An integer id is stored in a run, any other as itself.
        for trade_id in ["42", "x42"] {
            let database = TestDatabase::new().await;
            let db = wizdata_common::db::connect(&database.config).await.unwrap();
            wizdata_common::db::migrate::<crate::Migrator>(&db).await.unwrap();
            let store = Store::new(db);

            let written = store.write(&mut identified(trade_id), 1_000).await.unwrap();
            assert!(written.duplicates.is_empty());
            assert_eq!(written.candles.len(), 5, "one bar per interval");
            assert!(written.candles.iter().all(|bar| (bar.trade_count, bar.volume) == (1, 2.0)));

            let written = store.write(&mut identified(trade_id), 2_000).await.unwrap();
            assert_eq!(written.duplicates.iter().map(|(_, held)| held.index).collect::<Vec<_>>(), [7], "{trade_id}");
            assert!(written.candles.is_empty(), "a duplicate writes no bar");

            assert_eq!(store.forget_trade_ids(1_000).await.unwrap(), 0, "applied at the cutoff: still remembered");
            assert_eq!(store.forget_trade_ids(1_001).await.unwrap(), 1);
            let written = store.write(&mut identified(trade_id), 3_000).await.unwrap();
            assert!(written.duplicates.is_empty(), "forgotten, so applied again");
            assert!(written.candles.iter().all(|bar| (bar.trade_count, bar.volume) == (2, 4.0)));
        }
    }

    #[tokio::test]
    async fn runs_of_ids_are_claimed_around_what_is_stored_and_forgotten_by_the_id() {
        let database = TestDatabase::new().await;
        let db = wizdata_common::db::connect(&database.config).await.unwrap();
        wizdata_common::db::migrate::<crate::Migrator>(&db).await.unwrap();
        let store = Store::new(db);
        let batch_of = |ids: std::ops::RangeInclusive<u64>| {
            let mut batch = Batch::default();
            for id in ids {
                batch.absorb(identified(&id.to_string()));
            }
            batch
        };

        assert!(store.write(&mut batch_of(10..=19), 1_000).await.unwrap().duplicates.is_empty());
        assert!(store.write(&mut batch_of(30..=39), 2_000).await.unwrap().duplicates.is_empty());
        // 5..=44 meets both stored runs and the gaps around and between them.
        let written = store.write(&mut batch_of(5..=44), 3_000).await.unwrap();
        assert_eq!(written.duplicates.len(), 20, "10..=19 and 30..=39 were applied");
        let minute_bar = written.candles.iter().find(|bar| bar.interval == "1m").unwrap();
        assert_eq!(minute_bar.trade_count, 40, "20 earlier and the 20 new ones");
        // A replay of everything, in one batch, is all duplicates.
        assert_eq!(store.write(&mut batch_of(5..=44), 4_000).await.unwrap().duplicates.len(), 40);

        assert_eq!(store.forget_trade_ids(2_001).await.unwrap(), 20, "the first two runs' ids");
        assert_eq!(store.write(&mut batch_of(5..=44), 5_000).await.unwrap().duplicates.len(), 20);
    }

    /// A commit more than half the settle margin after the write judged its
    /// bars: a bar that was open then but has closed by the commit may
    /// already be settled, and cached, on a replica that read it before the
    /// commit. Its series' settled revision rises again before the write is
    /// acknowledged, so such a cached span is not used. A commit within the
    /// half margin leaves it to the next write.
    #[tokio::test]
    async fn a_slow_commit_raises_the_settled_revision_of_bars_that_closed_meanwhile() {
        const SECOND: i64 = 1_000_000_000;
        // A minute bar opening at `open`, written two seconds before it ends.
        let open = 1_709_643_600 * SECOND;
        let decided = open + 58 * SECOND;
        for (commit_after, raised_again) in [(6 * SECOND, true), (4 * SECOND, false)] {
            let database = TestDatabase::new().await;
            let db = wizdata_common::db::connect(&database.config).await.unwrap();
            wizdata_common::db::migrate::<crate::Migrator>(&db).await.unwrap();
            let readings = std::sync::Mutex::new(vec![decided + commit_after, decided]);
            let clock = move || readings.lock().unwrap().pop().expect("a write reads the clock twice");
            let store = Store { db, clock: Arc::new(clock) };

            let mut batch = Batch::default();
            let trade = TradeEvent {
                symbol: "BTC/USDT".into(),
                time_ns: open + 10 * SECOND,
                price: 10.0,
                size: 2.0,
                source: "binance".into(),
                trade_id: String::new(),
            };
            batch.add_trade(trade);
            let written = store.write(&mut batch, decided).await.unwrap();

            let minute_bar = written.candles.iter().find(|bar| bar.interval == "1m").unwrap();
            assert_eq!((minute_bar.open_time, minute_bar.trade_count), (open / SECOND, 1));
            let raised: Vec<&str> = written.settled.iter().map(|settled| settled.interval.as_str()).collect();
            let (_, settled_revision) = store.series_revisions("BTC/USDT", Interval::OneMinute).await.unwrap();
            if raised_again {
                assert_eq!(raised, ["1m"], "only the minute bar closed by the commit");
                assert_eq!(settled_revision, written.settled[0].settled_revision);
                assert!(settled_revision > 0, "the write itself judged the bar open and left it at 0");
            } else {
                assert!(raised.is_empty(), "within half the margin: {raised:?}");
                assert_eq!(settled_revision, 0);
            }
        }
    }
}

//! The market data service's tables, prefixed `market_` (in `serve all` every
//! service shares one embedded database and owns only its own tables).
//! Times are integers: bar open times in seconds and trade times in
//! nanoseconds since the Unix epoch, so merges compare them exactly on every
//! backend.

use sea_orm::FromQueryResult;

/// `i64::MIN` in a time column: no such event yet.
pub const NEVER: i64 = i64::MIN;

/// What a reader sees of a stored bar.
#[derive(Clone, Debug, PartialEq, FromQueryResult)]
pub struct BarRow {
    /// Seconds since the epoch.
    pub open_time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    pub trade_count: i64,
}

impl From<&candle::Model> for BarRow {
    fn from(row: &candle::Model) -> Self {
        Self {
            open_time: row.open_time,
            open: row.open,
            high: row.high,
            low: row.low,
            close: row.close,
            volume: row.volume,
            trade_count: row.trade_count,
        }
    }
}

pub mod candle {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "market_candle")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub symbol: String,
        /// Short code: 1m, 5m, 15m, 1h, 1d.
        #[sea_orm(primary_key, auto_increment = false)]
        pub interval: String,
        /// Seconds since the epoch, on a UTC boundary of the interval.
        #[sea_orm(primary_key, auto_increment = false)]
        pub open_time: i64,
        pub open: f64,
        pub high: f64,
        pub low: f64,
        pub close: f64,
        pub volume: f64,
        /// 0 for imported history.
        pub trade_count: i64,
        pub first_trade_ns: i64,
        pub last_trade_ns: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod quote {
    use sea_orm::entity::prelude::*;

    /// The parts of a quote that are not derived from daily bars.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "market_quote")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub symbol: String,
        pub last_price: f64,
        pub last_size: f64,
        /// `NEVER` until the first trade.
        pub last_trade_ns: i64,
        pub bid: f64,
        pub bid_size: f64,
        pub ask: f64,
        pub ask_size: f64,
        /// `NEVER` until the first bid/ask.
        pub book_ns: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod trade_id {
    use sea_orm::entity::prelude::*;

    /// A trade id applied within the dedupe window: its primary key is the
    /// claim that makes a repeat a duplicate, on every replica sharing the
    /// database.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "market_trade_id")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub symbol: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub source: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub trade_id: String,
        /// When it was applied (ns since the epoch): the window is pruned by it.
        pub applied_ns: i64,
        /// The random token of the transaction that applied it.
        pub claim: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod trade_id_range {
    use sea_orm::entity::prelude::*;

    /// A run of consecutive integer trade ids of one (symbol, source),
    /// applied together within the dedupe window. Exchanges number each
    /// symbol's trades consecutively, so a feed's batch of thousands of
    /// trades is one row here instead of one row per trade. The runs of a
    /// series never overlap: a writer stores only what no stored run holds.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "market_trade_id_range")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub symbol: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub source: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub first_id: i64,
        /// Inclusive.
        pub last_id: i64,
        /// When it was applied (ns since the epoch): the window is pruned by it.
        pub applied_ns: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod trade_series {
    use sea_orm::entity::prelude::*;

    /// One row per (symbol, source) with integer ids: a writer takes its
    /// row's lock before reading the series' stored runs, so two replicas
    /// on one PostgreSQL claiming overlapping runs take turns, and the
    /// second sees what the first stored.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "market_trade_series")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub symbol: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub source: String,
        /// When a writer last claimed ids of this series (ns since the epoch).
        pub claimed_ns: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod series_revision {
    use sea_orm::entity::prelude::*;

    /// The revision of a symbol's bars at one interval: set in the same
    /// transaction as every write to them, to the writer's clock in
    /// nanoseconds or one past the stored revision, whichever is larger. So
    /// it only grows, and a database started afresh does not hand out the
    /// revisions of an earlier one, which caches (Redis) may still hold.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "market_series_revision")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub symbol: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub interval: String,
        pub revision: i64,
        /// Raised by one with every write that touches a bar already
        /// closed when written (see `candle_cache`): what the cached spans
        /// of settled bars are checked against.
        pub settled_revision: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

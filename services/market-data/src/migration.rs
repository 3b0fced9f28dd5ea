//! The market data schema, recorded in the service's own migration table.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, double, string_len};

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateTables),
            Box::new(CreateTradeIds),
            Box::new(CreateTradeIdRanges),
            Box::new(CreateSeriesRevisions),
            Box::new(AddSettledRevisions),
        ]
    }

    fn migration_table_name() -> DynIden {
        "market_migrations".into_iden()
    }
}

#[derive(DeriveIden)]
enum MarketCandle {
    Table,
    Symbol,
    Interval,
    OpenTime,
    Open,
    High,
    Low,
    Close,
    Volume,
    TradeCount,
    FirstTradeNs,
    LastTradeNs,
}

#[derive(DeriveIden)]
enum MarketQuote {
    Table,
    Symbol,
    LastPrice,
    LastSize,
    LastTradeNs,
    Bid,
    BidSize,
    Ask,
    AskSize,
    BookNs,
}

struct CreateTables;

impl MigrationName for CreateTables {
    fn name(&self) -> &str {
        "m20261121_000001_create_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The primary key (symbol, interval, open_time) is also the index
        // every candle read walks.
        manager
            .create_table(
                Table::create()
                    .table(MarketCandle::Table)
                    .col(string_len(MarketCandle::Symbol, 32))
                    .col(string_len(MarketCandle::Interval, 8))
                    .col(big_integer(MarketCandle::OpenTime))
                    .col(double(MarketCandle::Open))
                    .col(double(MarketCandle::High))
                    .col(double(MarketCandle::Low))
                    .col(double(MarketCandle::Close))
                    .col(double(MarketCandle::Volume))
                    .col(big_integer(MarketCandle::TradeCount))
                    .col(big_integer(MarketCandle::FirstTradeNs))
                    .col(big_integer(MarketCandle::LastTradeNs))
                    .primary_key(
                        Index::create()
                            .col(MarketCandle::Symbol)
                            .col(MarketCandle::Interval)
                            .col(MarketCandle::OpenTime),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MarketQuote::Table)
                    .col(string_len(MarketQuote::Symbol, 32).primary_key())
                    .col(double(MarketQuote::LastPrice))
                    .col(double(MarketQuote::LastSize))
                    .col(big_integer(MarketQuote::LastTradeNs))
                    .col(double(MarketQuote::Bid))
                    .col(double(MarketQuote::BidSize))
                    .col(double(MarketQuote::Ask))
                    .col(double(MarketQuote::AskSize))
                    .col(big_integer(MarketQuote::BookNs))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(MarketQuote::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(MarketCandle::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum MarketTradeId {
    Table,
    Symbol,
    Source,
    TradeId,
    AppliedNs,
    Claim,
}

/// The trade ids applied within the dedupe window (see `entity::trade_id`).
struct CreateTradeIds;

impl MigrationName for CreateTradeIds {
    fn name(&self) -> &str {
        "m20261203_000001_create_trade_ids"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTradeIds {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The primary key is the claim a repeat collides with. On SQLite the
        // table is that key's B-tree itself (WITHOUT ROWID): one tree fewer
        // to write per trade.
        let mut table = Table::create();
        if manager.get_database_backend() == sea_orm::DbBackend::Sqlite {
            table.extra("WITHOUT ROWID");
        }
        manager
            .create_table(
                table
                    .table(MarketTradeId::Table)
                    .col(string_len(MarketTradeId::Symbol, 32))
                    .col(string_len(MarketTradeId::Source, 32))
                    .col(string_len(MarketTradeId::TradeId, 128))
                    .col(big_integer(MarketTradeId::AppliedNs))
                    .col(big_integer(MarketTradeId::Claim))
                    .primary_key(
                        Index::create()
                            .col(MarketTradeId::Symbol)
                            .col(MarketTradeId::Source)
                            .col(MarketTradeId::TradeId),
                    )
                    .to_owned(),
            )
            .await?;
        // Pruning the window walks this index instead of the whole table.
        manager
            .create_index(
                Index::create()
                    .name("market_trade_id_applied_ns")
                    .table(MarketTradeId::Table)
                    .col(MarketTradeId::AppliedNs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(MarketTradeId::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum MarketTradeIdRange {
    Table,
    Symbol,
    Source,
    FirstId,
    LastId,
    AppliedNs,
}

#[derive(DeriveIden)]
enum MarketTradeSeries {
    Table,
    Symbol,
    Source,
    ClaimedNs,
}

/// Runs of consecutive integer trade ids (see `entity::trade_id_range`) and
/// the per-series rows whose locks order their writers (see
/// `entity::trade_series`). Ids in canonical decimal form are stored here
/// from now on; other ids stay one row each in `market_trade_id`.
struct CreateTradeIdRanges;

impl MigrationName for CreateTradeIdRanges {
    fn name(&self) -> &str {
        "m20261204_000001_create_trade_id_ranges"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTradeIdRanges {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MarketTradeIdRange::Table)
                    .col(string_len(MarketTradeIdRange::Symbol, 32))
                    .col(string_len(MarketTradeIdRange::Source, 32))
                    .col(big_integer(MarketTradeIdRange::FirstId))
                    .col(big_integer(MarketTradeIdRange::LastId))
                    .col(big_integer(MarketTradeIdRange::AppliedNs))
                    .primary_key(
                        Index::create()
                            .col(MarketTradeIdRange::Symbol)
                            .col(MarketTradeIdRange::Source)
                            .col(MarketTradeIdRange::FirstId),
                    )
                    .to_owned(),
            )
            .await?;
        // Pruning the window walks this index instead of the whole table.
        manager
            .create_index(
                Index::create()
                    .name("market_trade_id_range_applied_ns")
                    .table(MarketTradeIdRange::Table)
                    .col(MarketTradeIdRange::AppliedNs)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MarketTradeSeries::Table)
                    .col(string_len(MarketTradeSeries::Symbol, 32))
                    .col(string_len(MarketTradeSeries::Source, 32))
                    .col(big_integer(MarketTradeSeries::ClaimedNs))
                    .primary_key(Index::create().col(MarketTradeSeries::Symbol).col(MarketTradeSeries::Source))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(MarketTradeSeries::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(MarketTradeIdRange::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum MarketSeriesRevision {
    Table,
    Symbol,
    Interval,
    Revision,
    SettledRevision,
}

/// The revision of each series of bars (see `entity::series_revision`).
struct CreateSeriesRevisions;

impl MigrationName for CreateSeriesRevisions {
    fn name(&self) -> &str {
        "m20261205_000001_create_series_revisions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateSeriesRevisions {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MarketSeriesRevision::Table)
                    .col(string_len(MarketSeriesRevision::Symbol, 32))
                    .col(string_len(MarketSeriesRevision::Interval, 8))
                    .col(big_integer(MarketSeriesRevision::Revision))
                    .primary_key(Index::create().col(MarketSeriesRevision::Symbol).col(MarketSeriesRevision::Interval))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(MarketSeriesRevision::Table).to_owned()).await
    }
}

/// Each series' settled revision (see `candle_cache`), beside its revision.
struct AddSettledRevisions;

impl MigrationName for AddSettledRevisions {
    fn name(&self) -> &str {
        "m20261205_000002_add_settled_revisions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddSettledRevisions {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(MarketSeriesRevision::Table)
                    .add_column(big_integer(MarketSeriesRevision::SettledRevision).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(MarketSeriesRevision::Table)
                    .drop_column(MarketSeriesRevision::SettledRevision)
                    .to_owned(),
            )
            .await
    }
}

//! The registry's schema and its first-start seed. Recorded in the
//! registry's own migration table, so each service migrates independently.

use chrono::Utc;
use sea_orm::{ActiveValue::Set, EntityTrait};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{boolean, string, string_len, timestamp_with_time_zone};

use crate::entity::{exchange, symbol};
use crate::seed;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateTables), Box::new(SeedCoverage)]
    }

    fn migration_table_name() -> DynIden {
        "registry_migrations".into_iden()
    }
}

#[derive(DeriveIden)]
enum RegistryExchange {
    Table,
    Code,
    Name,
    Mic,
    Country,
    TimeZone,
}

#[derive(DeriveIden)]
enum RegistrySymbol {
    Table,
    Ticker,
    Name,
    ExchangeCode,
    AssetClass,
    Currency,
    Streamable,
    CreateTime,
    UpdateTime,
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
        manager
            .create_table(
                Table::create()
                    .table(RegistryExchange::Table)
                    .col(string_len(RegistryExchange::Code, 16).primary_key())
                    .col(string(RegistryExchange::Name))
                    .col(string(RegistryExchange::Mic))
                    .col(string(RegistryExchange::Country))
                    .col(string(RegistryExchange::TimeZone))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RegistrySymbol::Table)
                    .col(string_len(RegistrySymbol::Ticker, 32).primary_key())
                    .col(string(RegistrySymbol::Name))
                    .col(string_len(RegistrySymbol::ExchangeCode, 16))
                    .col(string_len(RegistrySymbol::AssetClass, 32))
                    .col(string_len(RegistrySymbol::Currency, 16))
                    .col(boolean(RegistrySymbol::Streamable))
                    .col(timestamp_with_time_zone(RegistrySymbol::CreateTime))
                    .col(timestamp_with_time_zone(RegistrySymbol::UpdateTime))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RegistrySymbol::Table, RegistrySymbol::ExchangeCode)
                            .to(RegistryExchange::Table, RegistryExchange::Code),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("registry_symbol_exchange_code")
                    .table(RegistrySymbol::Table)
                    .col(RegistrySymbol::ExchangeCode)
                    .to_owned(),
            )
            .await
    }
}

/// Runs once, on first start: symbols deleted later stay deleted.
struct SeedCoverage;

impl MigrationName for SeedCoverage {
    fn name(&self) -> &str {
        "m20261121_000002_seed_coverage"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for SeedCoverage {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        exchange::Entity::insert_many(seed::EXCHANGES.iter().map(|e| exchange::ActiveModel {
            code: Set(e.code.to_owned()),
            name: Set(e.name.to_owned()),
            mic: Set(e.mic.to_owned()),
            country: Set(e.country.to_owned()),
            time_zone: Set(e.time_zone.to_owned()),
        }))
        .exec(db)
        .await?;
        let now = Utc::now();
        symbol::Entity::insert_many(seed::SYMBOLS.iter().map(|s| symbol::ActiveModel {
            ticker: Set(s.ticker.to_owned()),
            name: Set(s.name.to_owned()),
            exchange_code: Set(s.exchange.to_owned()),
            asset_class: Set(s.asset_class.as_str_name().to_owned()),
            currency: Set(s.currency.to_owned()),
            streamable: Set(s.streamable),
            create_time: Set(now),
            update_time: Set(now),
        }))
        .exec(db)
        .await?;
        Ok(())
    }
}

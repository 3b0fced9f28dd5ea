//! The auth service's schema, recorded in its own migration table.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    string, string_len, string_len_uniq, timestamp_with_time_zone, timestamp_with_time_zone_null,
};

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateTables)]
    }

    fn migration_table_name() -> DynIden {
        "auth_migrations".into_iden()
    }
}

#[derive(DeriveIden)]
enum AuthUser {
    Table,
    UserId,
    Username,
    PasswordHash,
    Scopes,
    Tier,
    CreateTime,
}

#[derive(DeriveIden)]
enum AuthApiKey {
    Table,
    KeyId,
    SecretHash,
    Name,
    Owner,
    Scopes,
    Tier,
    CreateTime,
    ExpireTime,
    RevokeTime,
}

#[derive(DeriveIden)]
enum AuthSigningKey {
    Table,
    Kid,
    PrivateKey,
    CreateTime,
    RetireTime,
}

struct CreateTables;

impl MigrationName for CreateTables {
    fn name(&self) -> &str {
        "m20261121_000001_create_auth_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuthUser::Table)
                    .col(string_len(AuthUser::UserId, 32).primary_key())
                    .col(string_len_uniq(AuthUser::Username, 64))
                    .col(string(AuthUser::PasswordHash))
                    .col(string_len(AuthUser::Scopes, 2048))
                    .col(string_len(AuthUser::Tier, 16))
                    .col(timestamp_with_time_zone(AuthUser::CreateTime))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuthApiKey::Table)
                    .col(string_len(AuthApiKey::KeyId, 32).primary_key())
                    .col(string_len_uniq(AuthApiKey::SecretHash, 64))
                    .col(string_len(AuthApiKey::Name, 128))
                    .col(string_len(AuthApiKey::Owner, 128))
                    .col(string_len(AuthApiKey::Scopes, 2048))
                    .col(string_len(AuthApiKey::Tier, 16))
                    .col(timestamp_with_time_zone(AuthApiKey::CreateTime))
                    .col(timestamp_with_time_zone_null(AuthApiKey::ExpireTime))
                    .col(timestamp_with_time_zone_null(AuthApiKey::RevokeTime))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("auth_api_key_owner").table(AuthApiKey::Table).col(AuthApiKey::Owner).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuthSigningKey::Table)
                    .col(string_len(AuthSigningKey::Kid, 32).primary_key())
                    .col(string_len(AuthSigningKey::PrivateKey, 64))
                    .col(timestamp_with_time_zone(AuthSigningKey::CreateTime))
                    .col(timestamp_with_time_zone_null(AuthSigningKey::RetireTime))
                    .to_owned(),
            )
            .await
    }
}

//! The auth service's tables, prefixed `auth_` (in `serve all` every service
//! shares one embedded database and owns only its own tables).

pub mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "auth_user")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(unique)]
        pub username: String,
        /// Argon2id PHC string; the password itself is never stored.
        pub password_hash: String,
        /// Space-separated.
        pub scopes: String,
        /// As tokens name it: anonymous, standard, premium or internal.
        pub tier: String,
        pub create_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod api_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "auth_api_key")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key_id: String,
        /// Hex SHA-256 of the secret. Secrets are 256 random bits, so a fast
        /// hash is enough; the secret itself is never stored.
        #[sea_orm(unique)]
        pub secret_hash: String,
        pub name: String,
        /// The subject the key acts as.
        pub owner: String,
        /// Space-separated.
        pub scopes: String,
        pub tier: String,
        pub create_time: DateTimeUtc,
        pub expire_time: Option<DateTimeUtc>,
        pub revoke_time: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod signing_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "auth_signing_key")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub kid: String,
        /// Hex Ed25519 seed. Every auth replica signs with it, so it lives
        /// where they all can read it.
        pub private_key: String,
        pub create_time: DateTimeUtc,
        /// When a newer key took over signing; the key keeps verifying until
        /// the last token it signed has expired.
        pub retire_time: Option<DateTimeUtc>,
    }

    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SigningKey")
                .field("kid", &self.kid)
                .field("private_key", &"[REDACTED]")
                .field("create_time", &self.create_time)
                .field("retire_time", &self.retire_time)
                .finish()
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

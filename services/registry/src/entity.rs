//! The registry's tables. Prefixed `registry_` because in `serve all` every
//! service shares one embedded database, and each owns only its own tables.

pub mod exchange {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "registry_exchange")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub code: String,
        pub name: String,
        pub mic: String,
        pub country: String,
        pub time_zone: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod symbol {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "registry_symbol")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub ticker: String,
        pub name: String,
        pub exchange_code: String,
        /// The proto enum value name, e.g. "ASSET_CLASS_EQUITY": stable and self-describing.
        pub asset_class: String,
        pub currency: String,
        pub streamable: bool,
        pub create_time: DateTimeUtc,
        pub update_time: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

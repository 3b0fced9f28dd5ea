//! The RegistryService RPCs.

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, SqlErr,
};
use tonic::{Request, Response, Status};
use wizdata::registry::v1::registry_service_server::RegistryService;
use wizdata::registry::v1::{
    CreateSymbolRequest, CreateSymbolResponse, DeleteSymbolRequest, DeleteSymbolResponse, GetSymbolRequest,
    GetSymbolResponse, ListExchangesRequest, ListExchangesResponse, ListSymbolsRequest, ListSymbolsResponse, Symbol,
    UpdateSymbolRequest, UpdateSymbolResponse,
};
use wizdata::r#type::v1::{AssetClass, Exchange};
use wizdata_common::pagination::{PageTokens, page_size};
use wizdata_common::time::to_timestamp;
use wizdata_common::{ApiError, FieldViolations};

use crate::entity::{exchange, symbol};
use crate::validate;

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The fields UpdateSymbol may change, as named in an update mask.
const UPDATABLE_FIELDS: [&str; 5] = ["name", "exchange", "asset_class", "currency", "streamable"];
const IMMUTABLE_FIELDS: [&str; 3] = ["ticker", "create_time", "update_time"];

#[derive(Clone)]
pub struct Registry {
    db: DatabaseConnection,
    page_tokens: PageTokens,
}

impl Registry {
    pub fn new(db: DatabaseConnection, page_tokens: PageTokens) -> Self {
        Self { db, page_tokens }
    }

    async fn list(&self, request: ListSymbolsRequest) -> Result<ListSymbolsResponse, ApiError> {
        let mut violations = FieldViolations::default();
        let page_size = violations.check("page_size", page_size(request.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE));
        let exchange = match request.exchange.as_str() {
            "" => Some(None),
            code => violations.check("exchange", validate::exchange_code(code)).map(Some),
        };
        let asset_class = violations.check("asset_class", validate::asset_class_filter(request.asset_class));
        let query = violations.check("query", validate::query(&request.query));
        if let Some(Some(code)) = &exchange {
            self.check_exchange_known(&mut violations, "exchange", code).await?;
        }
        let (Some(page_size), Some(exchange), Some(asset_class), Some(query)) =
            (page_size, exchange, asset_class, query)
        else {
            return Err(violations.into_error());
        };
        violations.into_result()?;

        let filters = format!("{exchange:?}|{asset_class:?}|{:?}|{query}", request.streamable);
        let cursor = self.page_tokens.decode(&request.page_token, filters.as_bytes())?;

        let mut select = symbol::Entity::find().order_by_asc(symbol::Column::Ticker).limit(u64::from(page_size) + 1);
        if let Some(code) = exchange {
            select = select.filter(symbol::Column::ExchangeCode.eq(code));
        }
        if let Some(class) = asset_class {
            select = select.filter(symbol::Column::AssetClass.eq(class.as_str_name()));
        }
        if let Some(streamable) = request.streamable {
            select = select.filter(symbol::Column::Streamable.eq(streamable));
        }
        if !query.is_empty() {
            // LOWER() on both sides: SQLite's LIKE ignores ASCII case but
            // PostgreSQL's does not, and results must not depend on the backend.
            let pattern = format!("%{}%", escape_like(&query));
            let contains = |column: symbol::Column| {
                Expr::expr(Func::lower(Expr::col(column))).like(LikeExpr::new(pattern.clone()).escape('\\'))
            };
            select = select
                .filter(Condition::any().add(contains(symbol::Column::Ticker)).add(contains(symbol::Column::Name)));
        }
        if let Some(after) = cursor {
            select = select.filter(symbol::Column::Ticker.gt(after));
        }

        let mut rows = select.all(&self.db).await?;
        let next_page_token = if rows.len() > page_size as usize {
            rows.truncate(page_size as usize);
            let last = rows.last().expect("a full page is not empty");
            self.page_tokens.encode(filters.as_bytes(), &last.ticker)
        } else {
            String::new()
        };
        Ok(ListSymbolsResponse { symbols: rows.into_iter().map(to_proto).collect(), next_page_token })
    }

    async fn get(&self, request: GetSymbolRequest) -> Result<GetSymbolResponse, ApiError> {
        let ticker = validate::ticker(&request.ticker).map_err(|why| ApiError::invalid_field("ticker", why))?;
        let found = symbol::Entity::find_by_id(ticker.clone()).one(&self.db).await?;
        let found = found.ok_or_else(|| ApiError::not_found("symbol", &ticker))?;
        Ok(GetSymbolResponse { symbol: Some(to_proto(found)) })
    }

    async fn create(&self, request: CreateSymbolRequest) -> Result<CreateSymbolResponse, ApiError> {
        let Some(new) = request.symbol else {
            return Err(ApiError::invalid_field("symbol", "is required"));
        };
        let mut violations = FieldViolations::default();
        let ticker = violations.check("symbol.ticker", validate::ticker(&new.ticker));
        let name = violations.check("symbol.name", validate::name(&new.name));
        let exchange = violations.check("symbol.exchange", validate::exchange_code(&new.exchange));
        let asset_class = violations.check("symbol.asset_class", validate::asset_class(new.asset_class));
        let currency = violations.check("symbol.currency", validate::currency(&new.currency));
        if let Some(code) = &exchange {
            self.check_exchange_known(&mut violations, "symbol.exchange", code).await?;
        }
        let (Some(ticker), Some(name), Some(exchange), Some(asset_class), Some(currency)) =
            (ticker, name, exchange, asset_class, currency)
        else {
            return Err(violations.into_error());
        };
        violations.into_result()?;

        let now = Utc::now();
        let row = symbol::ActiveModel {
            ticker: Set(ticker.clone()),
            name: Set(name),
            exchange_code: Set(exchange),
            asset_class: Set(asset_class.as_str_name().to_owned()),
            currency: Set(currency),
            streamable: Set(new.streamable),
            create_time: Set(now),
            update_time: Set(now),
        };
        let created =
            symbol::Entity::insert(row).exec_with_returning(&self.db).await.map_err(|error| match error.sql_err() {
                Some(SqlErr::UniqueConstraintViolation(_)) => ApiError::already_exists("symbol", &ticker),
                _ => ApiError::from(error),
            })?;
        tracing::info!(ticker = %created.ticker, "symbol created");
        Ok(CreateSymbolResponse { symbol: Some(to_proto(created)) })
    }

    async fn update(&self, request: UpdateSymbolRequest) -> Result<UpdateSymbolResponse, ApiError> {
        let Some(changes) = request.symbol else {
            return Err(ApiError::invalid_field("symbol", "is required"));
        };
        let ticker = validate::ticker(&changes.ticker).map_err(|why| ApiError::invalid_field("symbol.ticker", why))?;
        let paths = match request.update_mask {
            Some(mask) if !mask.paths.is_empty() => mask.paths,
            _ => UPDATABLE_FIELDS.iter().map(|field| (*field).to_owned()).collect(),
        };

        let mut violations = FieldViolations::default();
        for (index, path) in paths.iter().enumerate() {
            if IMMUTABLE_FIELDS.contains(&path.as_str()) {
                violations.add(format!("update_mask.paths[{index}]"), format!("{path:?} cannot be changed"));
            } else if !UPDATABLE_FIELDS.contains(&path.as_str()) {
                violations.add(
                    format!("update_mask.paths[{index}]"),
                    format!("{path:?} is not a field of Symbol; updatable fields are {}", UPDATABLE_FIELDS.join(", ")),
                );
            }
        }
        let wants = |field: &str| paths.iter().any(|path| path == field);
        let name = wants("name").then(|| violations.check("symbol.name", validate::name(&changes.name))).flatten();
        let exchange = wants("exchange")
            .then(|| violations.check("symbol.exchange", validate::exchange_code(&changes.exchange)))
            .flatten();
        let asset_class = wants("asset_class")
            .then(|| violations.check("symbol.asset_class", validate::asset_class(changes.asset_class)))
            .flatten();
        let currency = wants("currency")
            .then(|| violations.check("symbol.currency", validate::currency(&changes.currency)))
            .flatten();
        if let Some(code) = &exchange {
            self.check_exchange_known(&mut violations, "symbol.exchange", code).await?;
        }
        violations.into_result()?;

        let current = symbol::Entity::find_by_id(ticker.clone()).one(&self.db).await?;
        let mut row = current.ok_or_else(|| ApiError::not_found("symbol", &ticker))?.into_active_model();
        if let Some(name) = name {
            row.name = Set(name);
        }
        if let Some(code) = exchange {
            row.exchange_code = Set(code);
        }
        if let Some(class) = asset_class {
            row.asset_class = Set(class.as_str_name().to_owned());
        }
        if let Some(currency) = currency {
            row.currency = Set(currency);
        }
        if wants("streamable") {
            row.streamable = Set(changes.streamable);
        }
        row.update_time = Set(Utc::now());
        let updated = row.update(&self.db).await.map_err(|error| match error {
            // Deleted between the read and the write.
            DbErr::RecordNotUpdated => ApiError::not_found("symbol", &ticker),
            other => ApiError::from(other),
        })?;
        Ok(UpdateSymbolResponse { symbol: Some(to_proto(updated)) })
    }

    async fn delete(&self, request: DeleteSymbolRequest) -> Result<DeleteSymbolResponse, ApiError> {
        let ticker = validate::ticker(&request.ticker).map_err(|why| ApiError::invalid_field("ticker", why))?;
        let deleted = symbol::Entity::delete_by_id(ticker.clone()).exec(&self.db).await?;
        if deleted.rows_affected == 0 {
            return Err(ApiError::not_found("symbol", &ticker));
        }
        tracing::info!(%ticker, "symbol deleted");
        Ok(DeleteSymbolResponse {})
    }

    async fn exchanges(&self) -> Result<ListExchangesResponse, ApiError> {
        let rows = exchange::Entity::find().order_by_asc(exchange::Column::Code).all(&self.db).await?;
        let exchanges = rows
            .into_iter()
            .map(|row| Exchange {
                code: row.code,
                name: row.name,
                mic: row.mic,
                country: row.country,
                time_zone: row.time_zone,
            })
            .collect();
        Ok(ListExchangesResponse { exchanges })
    }

    /// Records `field` as bad unless the exchange exists, so an unknown
    /// exchange is reported beside every other bad field of the request.
    async fn check_exchange_known(
        &self,
        violations: &mut FieldViolations,
        field: &str,
        code: &str,
    ) -> Result<(), ApiError> {
        if exchange::Entity::find_by_id(code.to_owned()).one(&self.db).await?.is_none() {
            violations.add(field, format!("no exchange {code:?}; ListExchanges shows the known ones"));
        }
        Ok(())
    }
}

fn to_proto(row: symbol::Model) -> Symbol {
    Symbol {
        asset_class: AssetClass::from_str_name(&row.asset_class).unwrap_or(AssetClass::Unspecified) as i32,
        ticker: row.ticker,
        name: row.name,
        exchange: row.exchange_code,
        currency: row.currency,
        streamable: row.streamable,
        create_time: Some(to_timestamp(row.create_time)),
        update_time: Some(to_timestamp(row.update_time)),
    }
}

/// Escapes LIKE wildcards so a query matches literally.
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

#[tonic::async_trait]
impl RegistryService for Registry {
    async fn list_symbols(
        &self,
        request: Request<ListSymbolsRequest>,
    ) -> Result<Response<ListSymbolsResponse>, Status> {
        Ok(Response::new(self.list(request.into_inner()).await?))
    }

    async fn get_symbol(&self, request: Request<GetSymbolRequest>) -> Result<Response<GetSymbolResponse>, Status> {
        Ok(Response::new(self.get(request.into_inner()).await?))
    }

    async fn create_symbol(
        &self,
        request: Request<CreateSymbolRequest>,
    ) -> Result<Response<CreateSymbolResponse>, Status> {
        Ok(Response::new(self.create(request.into_inner()).await?))
    }

    async fn update_symbol(
        &self,
        request: Request<UpdateSymbolRequest>,
    ) -> Result<Response<UpdateSymbolResponse>, Status> {
        Ok(Response::new(self.update(request.into_inner()).await?))
    }

    async fn delete_symbol(
        &self,
        request: Request<DeleteSymbolRequest>,
    ) -> Result<Response<DeleteSymbolResponse>, Status> {
        Ok(Response::new(self.delete(request.into_inner()).await?))
    }

    async fn list_exchanges(
        &self,
        _request: Request<ListExchangesRequest>,
    ) -> Result<Response<ListExchangesResponse>, Status> {
        Ok(Response::new(self.exchanges().await?))
    }
}

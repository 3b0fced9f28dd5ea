//! The symbol registry end to end: seeded coverage, filters, stable
//! pagination, CRUD, and every bad input answered with its code and details.

use std::collections::BTreeSet;

use prost_types::FieldMask;
use tonic::Code;
use tonic_types::StatusExt;
use wizdata::registry::v1::registry_service_client::RegistryServiceClient;
use wizdata::registry::v1::*;
use wizdata::r#type::v1::AssetClass;
use wizdata_test_support::ClientChannel as Channel;
use wizdata_test_support::{TestMesh, violated_fields};

const SEEDED: [&str; 17] = [
    "AAPL", "AGL", "BHG", "BTC/USDT", "ETH/USDT", "EUR/USD", "FSR", "GBP/USD", "GOOGL", "MSFT", "MTN", "NPN", "PRX",
    "SBK", "SOL", "TSLA", "USD/ZAR",
];

type Client = RegistryServiceClient<Channel>;

async fn list(client: &mut Client, request: ListSymbolsRequest) -> Result<ListSymbolsResponse, tonic::Status> {
    client.list_symbols(request).await.map(|response| response.into_inner())
}

/// Every ticker matching `filter`, walking pages of `page_size`.
async fn walk(client: &mut Client, filter: ListSymbolsRequest, page_size: i32) -> Vec<String> {
    let mut tickers = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = list(client, ListSymbolsRequest { page_size, page_token, ..filter.clone() }).await.unwrap();
        assert!(page.symbols.len() <= page_size as usize);
        tickers.extend(page.symbols.into_iter().map(|s| s.ticker));
        if page.next_page_token.is_empty() {
            return tickers;
        }
        page_token = page.next_page_token;
    }
}

fn new_symbol(ticker: &str) -> Symbol {
    Symbol {
        ticker: ticker.into(),
        name: format!("{ticker} Holdings"),
        exchange: "NYSE".into(),
        asset_class: AssetClass::Equity as i32,
        currency: "USD".into(),
        streamable: true,
        ..Default::default()
    }
}

async fn create(client: &mut Client, symbol: Symbol) -> Result<Symbol, tonic::Status> {
    client.create_symbol(CreateSymbolRequest { symbol: Some(symbol) }).await.map(|r| r.into_inner().symbol.unwrap())
}

#[tokio::test]
async fn seeded_coverage_is_listed_with_its_attributes() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.registry().await;

    let all = list(&mut client, ListSymbolsRequest { page_size: 100, ..Default::default() }).await.unwrap();
    let tickers: Vec<_> = all.symbols.iter().map(|s| s.ticker.as_str()).collect();
    assert_eq!(tickers, SEEDED, "seeded symbols in ticker order");
    assert!(all.next_page_token.is_empty());

    let npn = all.symbols.iter().find(|s| s.ticker == "NPN").unwrap();
    assert_eq!((npn.name.as_str(), npn.exchange.as_str(), npn.currency.as_str()), ("Naspers Ltd", "JSE", "ZAR"));
    assert_eq!(npn.asset_class, AssetClass::Equity as i32);
    assert!(npn.streamable && npn.create_time.is_some());
    let btc = all.symbols.iter().find(|s| s.ticker == "BTC/USDT").unwrap();
    assert_eq!(
        (btc.exchange.as_str(), btc.asset_class, btc.currency.as_str()),
        ("BINANCE", AssetClass::Crypto as i32, "USDT")
    );

    let exchanges = client.list_exchanges(ListExchangesRequest {}).await.unwrap().into_inner().exchanges;
    let codes: Vec<_> = exchanges.iter().map(|e| e.code.as_str()).collect();
    assert_eq!(codes, ["BINANCE", "FX", "JSE", "NASDAQ", "NYSE"]);
    let jse = &exchanges[2];
    assert_eq!((jse.mic.as_str(), jse.country.as_str(), jse.time_zone.as_str()), ("XJSE", "ZA", "Africa/Johannesburg"));
}

#[tokio::test]
async fn filters_narrow_the_listing() {
    let mesh = TestMesh::all().await;
    let client = mesh.registry().await;
    let tickers = |request| {
        let mut client = client.clone();
        async move { walk(&mut client, request, 100).await }
    };

    let jse = tickers(ListSymbolsRequest { exchange: "JSE".into(), ..Default::default() }).await;
    assert_eq!(jse, ["AGL", "BHG", "FSR", "MTN", "NPN", "PRX", "SBK", "SOL"]);
    // Exchange codes are case-insensitive, like tickers.
    assert_eq!(tickers(ListSymbolsRequest { exchange: "jse".into(), ..Default::default() }).await, jse);

    let crypto = tickers(ListSymbolsRequest { asset_class: AssetClass::Crypto as i32, ..Default::default() }).await;
    assert_eq!(crypto, ["BTC/USDT", "ETH/USDT"]);

    let not_streamed = tickers(ListSymbolsRequest { streamable: Some(false), ..Default::default() }).await;
    assert_eq!(not_streamed, ["AGL", "BHG"]);

    // Free text is a case-insensitive substring over ticker and name.
    let usd = tickers(ListSymbolsRequest { query: "usd".into(), ..Default::default() }).await;
    assert_eq!(usd, ["BTC/USDT", "ETH/USDT", "EUR/USD", "GBP/USD", "USD/ZAR"]);
    let bank = tickers(ListSymbolsRequest { query: "BANK".into(), ..Default::default() }).await;
    assert_eq!(bank, ["SBK"]);
    // LIKE wildcards in the query are matched literally.
    assert!(tickers(ListSymbolsRequest { query: "%".into(), ..Default::default() }).await.is_empty());
    assert!(tickers(ListSymbolsRequest { query: "_".into(), ..Default::default() }).await.is_empty());

    let combined = tickers(ListSymbolsRequest {
        exchange: "FX".into(),
        asset_class: AssetClass::Fx as i32,
        streamable: Some(true),
        query: "dollar".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(combined, ["EUR/USD", "GBP/USD", "USD/ZAR"]);
}

#[tokio::test]
async fn every_page_walk_returns_each_symbol_exactly_once() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.registry().await;
    for page_size in [1, 2, 3, 5, 16, 17, 18] {
        let walked = walk(&mut client, ListSymbolsRequest::default(), page_size).await;
        assert_eq!(walked, SEEDED, "page size {page_size}");
    }
    // The default page size (50) holds every seeded symbol.
    let first = list(&mut client, ListSymbolsRequest::default()).await.unwrap();
    assert_eq!(first.symbols.len(), SEEDED.len());
}

#[tokio::test]
async fn page_walk_is_stable_while_symbols_are_added() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.registry().await;
    // Added between pages, on both sides of the cursor.
    let mut additions = ["AAA", "ZZZ", "MMM", "AB", "TT", "ZZ1"].into_iter();
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page =
            list(&mut client, ListSymbolsRequest { page_size: 3, page_token, ..Default::default() }).await.unwrap();
        seen.extend(page.symbols.into_iter().map(|s| s.ticker));
        if let Some(ticker) = additions.next() {
            create(&mut client, new_symbol(ticker)).await.unwrap();
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no symbol twice: {seen:?}");
    for ticker in SEEDED {
        assert!(unique.contains(ticker), "{ticker} missing from {seen:?}");
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "pages stay in ticker order");
}

#[tokio::test]
async fn symbols_are_created_updated_and_deleted() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.registry().await;

    let created = create(&mut client, Symbol { ticker: "brk.b".into(), ..new_symbol("x") }).await.unwrap();
    assert_eq!(created.ticker, "BRK.B", "tickers are stored upper-case");
    assert_eq!(created.exchange, "NYSE");
    let fetched =
        client.get_symbol(GetSymbolRequest { ticker: "BRK.B".into() }).await.unwrap().into_inner().symbol.unwrap();
    assert_eq!(fetched, created);

    let update = UpdateSymbolRequest {
        symbol: Some(Symbol {
            ticker: "BRK.B".into(),
            name: "Berkshire Hathaway Inc. Class B".into(),
            streamable: false,
            currency: "EUR".into(),
            ..Default::default()
        }),
        update_mask: Some(FieldMask { paths: vec!["name".into(), "streamable".into()] }),
    };
    let updated = client.update_symbol(update).await.unwrap().into_inner().symbol.unwrap();
    assert_eq!(updated.name, "Berkshire Hathaway Inc. Class B");
    assert!(!updated.streamable);
    assert_eq!(updated.currency, "USD", "fields outside the mask are untouched");
    assert_eq!(updated.create_time, created.create_time);
    let instant = |t: &Option<prost_types::Timestamp>| t.map(|t| (t.seconds, t.nanos));
    assert!(instant(&updated.update_time) >= instant(&created.update_time));

    client.delete_symbol(DeleteSymbolRequest { ticker: "BRK.B".into() }).await.unwrap();
    let gone = client.get_symbol(GetSymbolRequest { ticker: "BRK.B".into() }).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn seeding_happens_once_and_deleted_symbols_stay_deleted() {
    let mesh = TestMesh::all().await;
    let mut registry = mesh.registry().await;
    registry.delete_symbol(DeleteSymbolRequest { ticker: "TSLA".into() }).await.unwrap();
    let database = mesh.database().clone();
    mesh.stop().await.unwrap();

    let restarted = TestMesh::serve("all").database(&database).redis_from_env().start().await;
    let mut registry = restarted.registry().await;
    let tickers = walk(&mut registry, ListSymbolsRequest::default(), 100).await;
    let expected: Vec<_> = SEEDED.into_iter().filter(|t| *t != "TSLA").collect();
    assert_eq!(tickers, expected);
}

#[tokio::test]
async fn bad_tickers_and_unknown_symbols() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.registry().await;

    for bad in ["", "NP N", "NPN!", "A//B", &"X".repeat(40)] {
        let status = client.get_symbol(GetSymbolRequest { ticker: bad.into() }).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
        assert_eq!(violated_fields(&status), ["ticker"], "{bad:?}");
    }

    let missing = client.get_symbol(GetSymbolRequest { ticker: "XYZ".into() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let info = missing.get_details_resource_info().expect("NOT_FOUND names the resource");
    assert_eq!((info.resource_type.as_str(), info.resource_name.as_str()), ("symbol", "XYZ"));

    let status = client.delete_symbol(DeleteSymbolRequest { ticker: "XYZ".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .update_symbol(UpdateSymbolRequest { symbol: Some(new_symbol("XYZ")), update_mask: None })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn bad_creates_are_refused_whole() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.registry().await;

    let taken = create(&mut client, Symbol { ticker: "NPN".into(), exchange: "JSE".into(), ..new_symbol("NPN") })
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);
    assert_eq!(taken.get_details_resource_info().unwrap().resource_name, "NPN");

    let unknown_exchange =
        create(&mut client, Symbol { exchange: "NOPE".into(), ..new_symbol("NEW1") }).await.unwrap_err();
    assert_eq!(unknown_exchange.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&unknown_exchange), ["symbol.exchange"]);
    // An unknown exchange is named beside the other bad fields, in one answer.
    let several = create(&mut client, Symbol { exchange: "NOPE".into(), name: String::new(), ..new_symbol("NEW1") })
        .await
        .unwrap_err();
    assert_eq!(several.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&several);
    fields.sort();
    assert_eq!(fields, ["symbol.exchange", "symbol.name"]);

    for asset_class in [AssetClass::Unspecified as i32, 42] {
        let status = create(&mut client, Symbol { asset_class, ..new_symbol("NEW2") }).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["symbol.asset_class"], "asset class {asset_class}");
    }

    // Every bad field is reported in one answer.
    let many = create(
        &mut client,
        Symbol {
            ticker: "BAD TICKER".into(),
            name: "".into(),
            currency: "$".into(),
            asset_class: 99,
            ..new_symbol("x")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&many), ["symbol.ticker", "symbol.name", "symbol.asset_class", "symbol.currency"]);

    let absent = client.create_symbol(CreateSymbolRequest { symbol: None }).await.unwrap_err();
    assert_eq!(violated_fields(&absent), ["symbol"]);

    // Nothing of a refused create was written.
    for ticker in ["NEW1", "NEW2"] {
        let status = client.get_symbol(GetSymbolRequest { ticker: ticker.into() }).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{ticker}");
    }
    let npn = client.get_symbol(GetSymbolRequest { ticker: "NPN".into() }).await.unwrap().into_inner().symbol.unwrap();
    assert_eq!(npn.exchange, "JSE", "the existing symbol is untouched");
}

#[tokio::test]
async fn bad_updates_are_refused_whole() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.registry().await;
    let npn = |name: &str| Some(Symbol { ticker: "NPN".into(), name: name.into(), ..Default::default() });
    let mask = |paths: &[&str]| Some(FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() });

    let unknown = client
        .update_symbol(UpdateSymbolRequest { symbol: npn("New"), update_mask: mask(&["name", "colour"]) })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&unknown), ["update_mask.paths[1]"]);

    let immutable = client
        .update_symbol(UpdateSymbolRequest { symbol: npn("New"), update_mask: mask(&["ticker"]) })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&immutable), ["update_mask.paths[0]"]);

    let bad_value =
        client.update_symbol(UpdateSymbolRequest { symbol: npn(""), update_mask: mask(&["name"]) }).await.unwrap_err();
    assert_eq!(violated_fields(&bad_value), ["symbol.name"]);

    let bad_exchange = client
        .update_symbol(UpdateSymbolRequest {
            symbol: Some(Symbol { ticker: "NPN".into(), exchange: "NOWHERE".into(), ..Default::default() }),
            update_mask: mask(&["exchange"]),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad_exchange), ["symbol.exchange"]);

    let unchanged =
        client.get_symbol(GetSymbolRequest { ticker: "NPN".into() }).await.unwrap().into_inner().symbol.unwrap();
    assert_eq!((unchanged.name.as_str(), unchanged.exchange.as_str()), ("Naspers Ltd", "JSE"));
}

#[tokio::test]
async fn bad_listing_requests() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.registry().await;

    for page_size in [-1, 1001] {
        let status = list(&mut client, ListSymbolsRequest { page_size, ..Default::default() }).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["page_size"], "page size {page_size}");
    }
    let status =
        list(&mut client, ListSymbolsRequest { exchange: "ATLANTIS".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["exchange"]);
    let status = list(&mut client, ListSymbolsRequest { asset_class: 77, ..Default::default() }).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["asset_class"]);
    let status =
        list(&mut client, ListSymbolsRequest { query: "q".repeat(101), ..Default::default() }).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["query"]);

    let first = list(&mut client, ListSymbolsRequest { page_size: 2, exchange: "JSE".into(), ..Default::default() })
        .await
        .unwrap();
    let token = first.next_page_token;
    assert!(!token.is_empty());

    // A tampered token: flip one character.
    let mut tampered: Vec<char> = token.chars().collect();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    for bad_token in [tampered, "garbage!".to_string(), "AAAA".to_string()] {
        let status = list(
            &mut client,
            ListSymbolsRequest {
                page_size: 2,
                exchange: "JSE".into(),
                page_token: bad_token.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad_token}");
        assert_eq!(violated_fields(&status), ["page_token"]);
    }

    // A good token replayed with other filters.
    let status = list(
        &mut client,
        ListSymbolsRequest { page_size: 2, exchange: "NASDAQ".into(), page_token: token.clone(), ..Default::default() },
    )
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&status), ["page_token"]);
    assert!(status.message().contains("other filters"), "{}", status.message());

    // The genuine token still works.
    let second = list(
        &mut client,
        ListSymbolsRequest { page_size: 2, exchange: "JSE".into(), page_token: token, ..Default::default() },
    )
    .await
    .unwrap();
    assert_eq!(second.symbols.len(), 2);
}

#[tokio::test]
async fn requests_above_the_message_limit_are_refused() {
    let mesh = TestMesh::serve("all").flags(&["--max-message-bytes", "4096"]).start().await;
    let mut client = mesh.registry().await;

    let huge = Symbol { name: "n".repeat(8192), ..new_symbol("HUGE") };
    let status = create(&mut client, huge).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("message length too large"), "{}", status.message());

    let missing = client.get_symbol(GetSymbolRequest { ticker: "HUGE".into() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "nothing of the refused request was written");
    // Requests within the limit are still served.
    create(&mut client, new_symbol("SMALL")).await.unwrap();
}

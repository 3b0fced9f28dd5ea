//! The exchanges and instruments the platform covers out of the box.

use wizdata::r#type::v1::AssetClass;

pub struct SeedExchange {
    pub code: &'static str,
    pub name: &'static str,
    pub mic: &'static str,
    pub country: &'static str,
    pub time_zone: &'static str,
}

pub struct SeedSymbol {
    pub ticker: &'static str,
    pub name: &'static str,
    pub exchange: &'static str,
    pub asset_class: AssetClass,
    pub currency: &'static str,
    pub streamable: bool,
}

pub const EXCHANGES: &[SeedExchange] = &[
    SeedExchange { code: "BINANCE", name: "Binance", mic: "", country: "", time_zone: "UTC" },
    SeedExchange { code: "FX", name: "Interbank foreign exchange (OTC)", mic: "", country: "", time_zone: "UTC" },
    SeedExchange {
        code: "JSE",
        name: "Johannesburg Stock Exchange",
        mic: "XJSE",
        country: "ZA",
        time_zone: "Africa/Johannesburg",
    },
    SeedExchange {
        code: "NASDAQ",
        name: "Nasdaq Stock Market",
        mic: "XNAS",
        country: "US",
        time_zone: "America/New_York",
    },
    SeedExchange {
        code: "NYSE",
        name: "New York Stock Exchange",
        mic: "XNYS",
        country: "US",
        time_zone: "America/New_York",
    },
];

const fn equity(
    ticker: &'static str,
    name: &'static str,
    exchange: &'static str,
    currency: &'static str,
    streamable: bool,
) -> SeedSymbol {
    SeedSymbol { ticker, name, exchange, asset_class: AssetClass::Equity, currency, streamable }
}

const fn pair(
    ticker: &'static str,
    name: &'static str,
    exchange: &'static str,
    asset_class: AssetClass,
    currency: &'static str,
) -> SeedSymbol {
    SeedSymbol { ticker, name, exchange, asset_class, currency, streamable: true }
}

pub const SYMBOLS: &[SeedSymbol] = &[
    // JSE equities. BHP and Anglo American have their primary listings in
    // London, so the JSE lines are catalogued but not streamed.
    equity("NPN", "Naspers Ltd", "JSE", "ZAR", true),
    equity("PRX", "Prosus N.V.", "JSE", "ZAR", true),
    equity("BHG", "BHP Group Ltd", "JSE", "ZAR", false),
    equity("SOL", "Sasol Ltd", "JSE", "ZAR", true),
    equity("SBK", "Standard Bank Group Ltd", "JSE", "ZAR", true),
    equity("FSR", "FirstRand Ltd", "JSE", "ZAR", true),
    equity("AGL", "Anglo American plc", "JSE", "ZAR", false),
    equity("MTN", "MTN Group Ltd", "JSE", "ZAR", true),
    // US equities.
    equity("AAPL", "Apple Inc.", "NASDAQ", "USD", true),
    equity("GOOGL", "Alphabet Inc. Class A", "NASDAQ", "USD", true),
    equity("MSFT", "Microsoft Corporation", "NASDAQ", "USD", true),
    equity("TSLA", "Tesla, Inc.", "NASDAQ", "USD", true),
    // Crypto pairs, quoted in the second asset.
    pair("BTC/USDT", "Bitcoin / Tether", "BINANCE", AssetClass::Crypto, "USDT"),
    pair("ETH/USDT", "Ether / Tether", "BINANCE", AssetClass::Crypto, "USDT"),
    // FX pairs, quoted in the second currency.
    pair("USD/ZAR", "US Dollar / South African Rand", "FX", AssetClass::Fx, "ZAR"),
    pair("EUR/USD", "Euro / US Dollar", "FX", AssetClass::Fx, "USD"),
    pair("GBP/USD", "British Pound / US Dollar", "FX", AssetClass::Fx, "USD"),
];

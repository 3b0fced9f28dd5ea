//! Connect, REST/JSON and Server-Sent Events through the gateway: the same
//! answers as native gRPC, the same errors with their details, the same
//! identity and rate limits, and every bad input answered clearly.

use std::time::Duration;

use base64::Engine as _;
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use prost::Message;
use serde_json::json;
use tonic::Code;
use wizdata::auth::v1::auth_service_client::AuthServiceClient;
use wizdata::auth::v1::{WhoAmIRequest, WhoAmIResponse};
use wizdata::indicator::v1::indicator_service_client::IndicatorServiceClient;
use wizdata::indicator::v1::{ComputeIndicatorsRequest, ComputeIndicatorsResponse, IndicatorSpec};
use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::marketdata::v1::{GetCandlesRequest, GetCandlesResponse, GetQuotesRequest, GetQuotesResponse};
use wizdata::registry::v1::registry_service_client::RegistryServiceClient;
use wizdata::registry::v1::{GetSymbolRequest, GetSymbolResponse, ListSymbolsRequest, ListSymbolsResponse};
use wizdata::streaming::v1::streaming_service_client::StreamingServiceClient;
use wizdata::streaming::v1::{GetStreamStatsRequest, SubscribeResponse};
use wizdata::r#type::v1::Interval;
use wizdata_test_support::grpc_web::frame;
use wizdata_test_support::http::{HttpAnswer, HttpClient, from_json, to_json};
use wizdata_test_support::{TestMesh, ingest_accepted, trade_now};

use super::{Encoding, WAIT, bearer, web};

fn http(mesh: &TestMesh) -> HttpClient {
    HttpClient::new(mesh.gateway_port.expect("serve all runs the gateway"))
}

/// One unary RPC called every way the gateway speaks, each answer decoded.
struct Rpc<'a> {
    path: &'a str,
    request_type: &'a str,
    response_type: &'a str,
    /// The REST route: method, path and query, body.
    rest: (&'a str, String, Option<serde_json::Value>),
}

impl Rpc<'_> {
    async fn answers<M>(
        &self,
        mesh: &TestMesh,
        request: &impl Message,
        headers: &[(&str, &str)],
    ) -> Vec<(&'static str, M)>
    where
        M: Message + Default,
    {
        let client = http(mesh);
        let mut answers = Vec::new();
        let web_answer = web(mesh, Encoding::Binary).call(self.path, request, headers).await;
        answers.push(("grpc-web", web_answer.message::<M>()));

        let with = |content_type: &'static str| {
            let mut all = vec![("content-type", content_type), ("connect-protocol-version", "1")];
            all.extend_from_slice(headers);
            all
        };
        let proto = client.send("POST", self.path, &with("application/proto"), request.encode_to_vec()).await;
        assert_eq!(proto.status, 200, "Connect proto {}: {proto:?}", self.path);
        assert_eq!(proto.header("content-type"), Some("application/proto"));
        answers.push(("connect proto", M::decode(proto.body.clone()).unwrap()));

        let json_request = to_json(request, self.request_type).to_string();
        let connect_json = client.send("POST", self.path, &with("application/json"), json_request.clone()).await;
        assert_eq!(connect_json.status, 200, "Connect JSON {}: {connect_json:?}", self.path);
        answers.push(("connect json", from_json(&connect_json.body, self.response_type)));

        let encoded: String = form_urlencoded::byte_serialize(json_request.as_bytes()).collect();
        let get = client.get(&format!("{}?connect=v1&encoding=json&message={encoded}", self.path), headers).await;
        assert_eq!(get.status, 200, "Connect GET {}: {get:?}", self.path);
        answers.push(("connect get json", from_json(&get.body, self.response_type)));
        let proto64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(request.encode_to_vec());
        let get =
            client.get(&format!("{}?connect=v1&encoding=proto&base64=1&message={proto64}", self.path), headers).await;
        assert_eq!(get.status, 200, "Connect GET proto {}: {get:?}", self.path);
        answers.push(("connect get proto", M::decode(get.body.clone()).unwrap()));

        let (method, path, body) = &self.rest;
        let mut rest_headers = headers.to_vec();
        let body = match body {
            Some(body) => {
                rest_headers.push(("content-type", "application/json"));
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let rest = client.send(method, path, &rest_headers, body).await;
        assert_eq!(rest.status, 200, "REST {method} {path}: {rest:?}");
        assert_eq!(rest.header("content-type"), Some("application/json"));
        assert!(rest.header("ratelimit-limit").is_some(), "REST answers carry the rate-limit headers");
        answers.push(("rest", from_json(&rest.body, self.response_type)));
        answers
    }
}

fn assert_all_equal<M: PartialEq + std::fmt::Debug>(native: &M, answers: &[(&str, M)]) {
    for (protocol, answer) in answers {
        assert_eq!(answer, native, "over {protocol}");
    }
}

#[tokio::test]
async fn one_answer_in_every_protocol() {
    let mesh = TestMesh::all().await;
    ingest_accepted(&mesh, (0..30).map(|n| trade_now("AAPL", 150.0 + f64::from(n) / 10.0)).collect()).await;
    let through = mesh.gateway_channel_as(mesh.admin_credentials()).await;

    let list = ListSymbolsRequest { page_size: 5, exchange: "NASDAQ".into(), ..Default::default() };
    let native = RegistryServiceClient::new(through.clone()).list_symbols(list.clone()).await.unwrap().into_inner();
    assert!(!native.symbols.is_empty());
    let rpc = Rpc {
        path: "/wizdata.registry.v1.RegistryService/ListSymbols",
        request_type: "wizdata.registry.v1.ListSymbolsRequest",
        response_type: "wizdata.registry.v1.ListSymbolsResponse",
        rest: ("GET", "/v1/symbols?page_size=5&exchange=NASDAQ".into(), None),
    };
    assert_all_equal(&native, &rpc.answers::<ListSymbolsResponse>(&mesh, &list, &[]).await);

    let get = GetSymbolRequest { ticker: "BTC/USDT".into() };
    let native = RegistryServiceClient::new(through.clone()).get_symbol(get.clone()).await.unwrap().into_inner();
    let rpc = Rpc {
        path: "/wizdata.registry.v1.RegistryService/GetSymbol",
        request_type: "wizdata.registry.v1.GetSymbolRequest",
        response_type: "wizdata.registry.v1.GetSymbolResponse",
        rest: ("GET", "/v1/symbols/BTC%2FUSDT".into(), None),
    };
    assert_all_equal(&native, &rpc.answers::<GetSymbolResponse>(&mesh, &get, &[]).await);

    let quotes = GetQuotesRequest { symbols: vec!["AAPL".into(), "MSFT".into()] };
    let native = MarketDataServiceClient::new(through.clone()).get_quotes(quotes.clone()).await.unwrap().into_inner();
    assert_eq!(native.quotes[0].last_price, 152.9);
    let rpc = Rpc {
        path: "/wizdata.marketdata.v1.MarketDataService/GetQuotes",
        request_type: "wizdata.marketdata.v1.GetQuotesRequest",
        response_type: "wizdata.marketdata.v1.GetQuotesResponse",
        rest: ("GET", "/v1/quotes?symbols=AAPL&symbols=MSFT".into(), None),
    };
    assert_all_equal(&native, &rpc.answers::<GetQuotesResponse>(&mesh, &quotes, &[]).await);

    let start = chrono::Utc::now() - chrono::Duration::hours(1);
    let candles = GetCandlesRequest {
        symbol: "AAPL".into(),
        interval: Interval::OneMinute as i32,
        start_time: Some(prost_types::Timestamp { seconds: start.timestamp(), nanos: 0 }),
        ..Default::default()
    };
    let native = MarketDataServiceClient::new(through.clone()).get_candles(candles.clone()).await.unwrap().into_inner();
    assert!(!native.candles.is_empty());
    let rest_path = format!(
        "/v1/symbols/AAPL/candles?interval=INTERVAL_ONE_MINUTE&start_time={}",
        start.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let rpc = Rpc {
        path: "/wizdata.marketdata.v1.MarketDataService/GetCandles",
        request_type: "wizdata.marketdata.v1.GetCandlesRequest",
        response_type: "wizdata.marketdata.v1.GetCandlesResponse",
        rest: ("GET", rest_path, None),
    };
    assert_all_equal(&native, &rpc.answers::<GetCandlesResponse>(&mesh, &candles, &[]).await);

    let compute = ComputeIndicatorsRequest {
        symbol: "AAPL".into(),
        interval: Interval::OneMinute as i32,
        indicators: vec![IndicatorSpec { name: "sma".into(), parameters: [("time_period".to_owned(), 2.0)].into() }],
        ..Default::default()
    };
    let native =
        IndicatorServiceClient::new(through.clone()).compute_indicators(compute.clone()).await.unwrap().into_inner();
    let rpc = Rpc {
        path: "/wizdata.indicator.v1.IndicatorService/ComputeIndicators",
        request_type: "wizdata.indicator.v1.ComputeIndicatorsRequest",
        response_type: "wizdata.indicator.v1.ComputeIndicatorsResponse",
        rest: (
            "POST",
            "/v1/symbols/AAPL/indicators:compute".into(),
            Some(
                json!({"interval": "INTERVAL_ONE_MINUTE", "indicators": [{"name": "sma", "parameters": {"time_period": 2}}]}),
            ),
        ),
    };
    assert_all_equal(&native, &rpc.answers::<ComputeIndicatorsResponse>(&mesh, &compute, &[]).await);

    // With an API key, as x-api-key and as a bearer token.
    let key = mesh.admin_key.as_ref().unwrap();
    let authorization = bearer(key);
    let native = AuthServiceClient::new(through.clone()).who_am_i(WhoAmIRequest {}).await.unwrap().into_inner();
    assert!(!native.anonymous);
    let rpc = Rpc {
        path: "/wizdata.auth.v1.AuthService/WhoAmI",
        request_type: "wizdata.auth.v1.WhoAmIRequest",
        response_type: "wizdata.auth.v1.WhoAmIResponse",
        rest: ("GET", "/v1/whoami".into(), None),
    };
    for header in
        [("x-api-key", authorization.trim_start_matches("Bearer ")), ("authorization", authorization.as_str())]
    {
        for (protocol, who) in rpc.answers::<WhoAmIResponse>(&mesh, &WhoAmIRequest {}, &[header]).await {
            assert_eq!(
                (&who.subject, &who.scopes, who.anonymous),
                (&native.subject, &native.scopes, false),
                "{protocol}"
            );
        }
    }

    // REST answers spell out default values; Connect's omit them.
    let client = http(&mesh);
    let rest = client.get("/v1/symbols/AAPL/candles?interval=INTERVAL_ONE_MINUTE&page_size=1", &[]).await.json();
    assert!(rest["nextPageToken"].is_string(), "an empty page token is still there: {rest}");
    assert_eq!(rest["candles"][0]["closed"], false, "the open bar says so: {rest}");
    let stats = client.get("/v1/streams/stats", &[("x-api-key", authorization.trim_start_matches("Bearer "))]).await;
    assert_eq!(stats.json()["eventsDropped"], "0", "64-bit integers are strings in proto3 JSON");
    // response_body: GET /v1/quotes/{symbol} answers the quote itself.
    let quote = client.get("/v1/quotes/AAPL", &[]).await.json();
    assert_eq!((quote["symbol"].as_str(), quote["lastPrice"].as_f64()), (Some("AAPL"), Some(152.9)), "{quote}");
}

#[tokio::test]
async fn errors_keep_their_code_and_details_in_every_protocol() {
    let mesh = TestMesh::all().await;
    let client = http(&mesh);
    let connect_json = [("content-type", "application/json")];
    let get_symbol = "/wizdata.registry.v1.RegistryService/GetSymbol";

    // NOT_FOUND with ResourceInfo.
    let connect = client.send("POST", get_symbol, &connect_json, r#"{"ticker":"NOPE.XX"}"#).await;
    assert_eq!(connect.status, 404);
    let error = connect.json();
    assert_eq!(error["code"], "not_found");
    assert_eq!(error["details"][0]["type"], "google.rpc.ResourceInfo");
    assert_eq!(error["details"][0]["debug"]["resourceName"], "NOPE.XX");
    let value = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(error["details"][0]["value"].as_str().unwrap())
        .unwrap();
    assert_eq!(tonic_types::pb::ResourceInfo::decode(value.as_slice()).unwrap().resource_name, "NOPE.XX");
    let get = client.get(&format!("{get_symbol}?encoding=json&message=%7B%22ticker%22%3A%22NOPE.XX%22%7D"), &[]).await;
    assert_eq!((get.status.as_u16(), get.json()["code"].as_str()), (404, Some("not_found")));
    let rest = client.get("/v1/symbols/NOPE.XX", &[]).await;
    assert_eq!(rest.status, 404);
    let status = rest.json();
    assert_eq!(status["code"], Code::NotFound as i32);
    assert_eq!(status["details"][0]["@type"], "type.googleapis.com/google.rpc.ResourceInfo");
    assert_eq!(status["details"][0]["resourceName"], "NOPE.XX");

    // INVALID_ARGUMENT with a field violation per bad symbol.
    let get_quotes = "/wizdata.marketdata.v1.MarketDataService/GetQuotes";
    let connect = client.send("POST", get_quotes, &connect_json, r#"{"symbols":["AAPL","NOPE1","NOPE2"]}"#).await;
    assert_eq!((connect.status.as_u16(), connect.json()["code"].as_str()), (400, Some("invalid_argument")));
    let violations = &connect.json()["details"][0]["debug"]["fieldViolations"];
    assert_eq!(violations.as_array().map(Vec::len), Some(2), "{violations}");
    let rest = client.get("/v1/quotes?symbols=AAPL&symbols=NOPE1&symbols=NOPE2", &[]).await;
    assert_eq!(rest.status, 400);
    let details = &rest.json()["details"][0];
    assert_eq!(details["@type"], "type.googleapis.com/google.rpc.BadRequest");
    assert_eq!(details["fieldViolations"][1]["field"], "symbols[2]");

    // UNAUTHENTICATED: a bad key is refused, not treated as anonymous.
    let bad_key = [("x-api-key", "wzk_not-a-real-key"), ("content-type", "application/json")];
    let connect = client.send("POST", get_symbol, &bad_key, r#"{"ticker":"AAPL"}"#).await;
    assert_eq!((connect.status.as_u16(), connect.json()["code"].as_str()), (401, Some("unauthenticated")));
    let rest = client.get("/v1/symbols/AAPL", &bad_key[..1]).await;
    assert_eq!((rest.status.as_u16(), rest.json()["code"].as_i64()), (401, Some(Code::Unauthenticated as i64)));
    // A write without the scope: PERMISSION_DENIED, or UNAUTHENTICATED when anonymous.
    let create =
        client.send("POST", "/v1/symbols", &[("content-type", "application/json")], r#"{"ticker":"ZZZ"}"#).await;
    assert!(matches!(create.status.as_u16(), 401 | 403), "{create:?}");

    // The gateway counts translated calls as the gRPC calls they are.
    let metrics = client.get("/metrics", &[]).await;
    let text = String::from_utf8_lossy(&metrics.body);
    let not_found = text
        .lines()
        .find(|line| {
            line.starts_with("grpc_server_handled_total")
                && line.contains("method=\"GetSymbol\"")
                && line.contains("grpc_code=\"NotFound\"")
                && line.contains("component=\"gateway\"")
        })
        .unwrap_or_else(|| panic!("no gateway NotFound count for GetSymbol:\n{text}"));
    let counted: f64 = not_found.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(counted >= 3.0, "Connect POST, Connect GET and REST each counted: {not_found}");
}

#[tokio::test]
async fn refused_calls_are_told_when_to_retry_in_every_protocol() {
    let mesh = TestMesh::all_with(&["--rate-limit-anonymous", "2/1m"]).await;
    let client = http(&mesh);
    let get_symbol = "/wizdata.registry.v1.RegistryService/GetSymbol";
    let connect_json = [("content-type", "application/json")];
    for _ in 0..2 {
        assert_eq!(client.get("/v1/symbols/AAPL", &[]).await.status, 200);
    }
    let rest = client.get("/v1/symbols/AAPL", &[]).await;
    assert_eq!(rest.status, 429);
    assert!(rest.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!((rest.header("ratelimit-limit"), rest.header("ratelimit-remaining")), (Some("2"), Some("0")));
    let status = rest.json();
    assert_eq!(status["code"], Code::ResourceExhausted as i32);
    let retry = status["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|detail| detail["@type"] == "type.googleapis.com/google.rpc.RetryInfo");
    assert!(retry.is_some_and(|retry| retry["retryDelay"].as_str().unwrap().ends_with('s')), "{status}");

    let connect = client.send("POST", get_symbol, &connect_json, r#"{"ticker":"AAPL"}"#).await;
    assert_eq!(connect.status, 429);
    assert!(connect.header("retry-after").is_some());
    assert_eq!(connect.json()["code"], "resource_exhausted");
    let error = connect.json();
    let retry = error["details"].as_array().unwrap().iter().find(|detail| detail["type"] == "google.rpc.RetryInfo");
    assert!(retry.is_some_and(|retry| retry["debug"]["retryDelay"].is_string()), "{error}");

    // The limit is the caller's across protocols: gRPC-Web is refused too.
    let web_answer =
        web(&mesh, Encoding::Binary).call(get_symbol, &GetSymbolRequest { ticker: "AAPL".into() }, &[]).await;
    assert_eq!(web_answer.status().code(), Code::ResourceExhausted);

    // A server stream refused before it starts: an HTTP error, not an empty stream.
    let sse = client.get("/v1/subscribe?symbols=AAPL&channels=CHANNEL_TRADES", &[]).await;
    assert_eq!(sse.status, 429, "{sse:?}");
    // Over Connect streaming, in the end-of-stream message.
    let envelope = frame(0, br#"{"symbols":["AAPL"],"channels":["CHANNEL_TRADES"]}"#);
    let stream = client
        .send(
            "POST",
            "/wizdata.streaming.v1.StreamingService/Subscribe",
            &[("content-type", "application/connect+json")],
            envelope,
        )
        .await;
    assert_eq!(stream.status, 200);
    let envelopes = envelopes(stream.body.clone());
    assert_eq!(envelopes.len(), 1, "{envelopes:?}");
    assert_eq!(envelopes[0].0, 2, "the end-of-stream flag");
    let end: serde_json::Value = serde_json::from_slice(&envelopes[0].1).unwrap();
    assert_eq!(end["error"]["code"], "resource_exhausted");
}

/// The envelopes of a Connect streaming body: (flags, payload).
fn envelopes(mut body: Bytes) -> Vec<(u8, Bytes)> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let flags = body.get_u8();
        let length = body.get_u32() as usize;
        out.push((flags, body.split_to(length)));
    }
    assert!(body.is_empty(), "whole envelopes only");
    out
}

#[tokio::test]
async fn bad_input_gets_a_clear_status_in_every_http_protocol() {
    let mesh = TestMesh::all().await;
    let client = http(&mesh);
    let get_symbol = "/wizdata.registry.v1.RegistryService/GetSymbol";
    let json_type = [("content-type", "application/json")];
    let connect = |body: &'static str| client.send("POST", get_symbol, &json_type, body);
    let invalid = |answer: HttpAnswer, what: &str| -> serde_json::Value {
        assert_eq!(answer.status, 400, "{what}: {answer:?}");
        let error = answer.json();
        assert_eq!(error["code"], "invalid_argument", "{what}: {error}");
        error
    };

    invalid(connect(r#"{"ticker":"#).await, "malformed JSON");
    let unknown = invalid(connect(r#"{"ticker":"AAPL","colour":"red"}"#).await, "an unknown field");
    assert!(unknown["message"].as_str().unwrap().contains("colour"), "{unknown}");
    assert_eq!(unknown["details"][0]["debug"]["fieldViolations"][0]["field"], "colour");
    invalid(connect(r#"{"ticker":5}"#).await, "a number for a string");
    let candles = client
        .send(
            "POST",
            "/wizdata.marketdata.v1.MarketDataService/GetCandles",
            &json_type,
            r#"{"symbol":"AAPL","interval":"INTERVAL_2M"}"#,
        )
        .await;
    assert!(invalid(candles, "an unknown enum name")["message"].as_str().unwrap().contains("INTERVAL_2M"));
    let version = client.send("POST", get_symbol, &[json_type[0], ("connect-protocol-version", "2")], "{}").await;
    assert!(invalid(version, "a wrong protocol version")["message"].as_str().unwrap().contains("version"));
    let timeout = client.send("POST", get_symbol, &[json_type[0], ("connect-timeout-ms", "soon")], "{}").await;
    invalid(timeout, "a timeout that is not a number");

    // A server stream's one request envelope, malformed: the end-of-stream message says why.
    let subscribe = "/wizdata.streaming.v1.StreamingService/Subscribe";
    let message = br#"{"symbols":["AAPL"],"channels":["CHANNEL_TRADES"]}"#;
    let two = [frame(0, message), frame(0, message)].concat();
    let cases: [(Vec<u8>, &str); 4] = [
        (two, "exactly one request message"),
        (frame(1, message).to_vec(), "connect-content-encoding"),
        (frame(0x80, message).to_vec(), "bad envelope flag 0x80"),
        (frame(0, message)[..9].to_vec(), "missing or cut short"),
    ];
    for (body, says) in cases {
        let answer = client.send("POST", subscribe, &[("content-type", "application/connect+json")], body).await;
        assert_eq!(answer.status, 200, "Connect streams report errors in their end message");
        let parts = envelopes(answer.body.clone());
        let end: serde_json::Value = serde_json::from_slice(&parts.last().unwrap().1).unwrap();
        assert_eq!((parts.last().unwrap().0, end["error"]["code"].as_str()), (2, Some("invalid_argument")), "{says}");
        assert!(end["error"]["message"].as_str().unwrap().contains(says), "{end}");
    }

    // Content types: none, or one no protocol reads.
    for content_type in [None, Some("text/plain")] {
        let headers: Vec<(&str, &str)> = content_type.map(|value| ("content-type", value)).into_iter().collect();
        let answer = client.send("POST", get_symbol, &headers, r#"{"ticker":"AAPL"}"#).await;
        assert_eq!(answer.status, 415, "{content_type:?}");
    }
    for headers in [&[("content-type", "text/csv")][..], &[]] {
        let rest = client.send("POST", "/v1/symbols/AAPL/indicators:compute", headers, "a,b").await;
        assert_eq!(rest.status, 415, "a REST body that is not JSON: {rest:?}");
        assert_eq!(rest.json()["code"], Code::InvalidArgument as i32);
    }

    // GET on an RPC with side effects: 405, in Connect and REST.
    let get = client.get("/wizdata.registry.v1.RegistryService/CreateSymbol?encoding=json&message=%7B%7D", &[]).await;
    assert_eq!(get.status, 405);
    let rest = client.send("PUT", "/v1/symbols/AAPL", &[], "").await;
    assert_eq!(rest.status, 405);
    assert_eq!(rest.header("allow"), Some("GET, PATCH, DELETE"));

    // Unknown routes and odd paths.
    let missing = client.get("/v1/nothing/here", &[]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["code"], Code::NotFound as i32);
    let unicode = client.get("/v1/symbols/%C3%A9t%C3%A9", &[]).await;
    assert_eq!(unicode.status, 400, "the registry refuses a ticker of accented letters: {unicode:?}");
    let not_utf8 = client.get("/v1/symbols/%FF", &[]).await;
    assert_eq!(not_utf8.status, 400);
    let unknown_query = client.get("/v1/symbols?colour=red", &[]).await;
    assert_eq!(unknown_query.status, 400);
    assert_eq!(unknown_query.json()["details"][0]["fieldViolations"][0]["field"], "colour");
    let bad_bool = client.get("/v1/symbols?streamable=maybe", &[]).await;
    assert_eq!(bad_bool.status, 400);
    let bad_enum = client.get("/v1/symbols?asset_class=ASSET_CLASS_ART", &[]).await;
    assert_eq!(bad_enum.status, 400);
    let body_on_get = client.send("GET", "/v1/symbols/AAPL", &json_type, r#"{"ticker":"MSFT"}"#).await;
    assert_eq!(body_on_get.status, 400);
    let huge = client.get(&format!("/v1/symbols?query={}", "q".repeat(60_000)), &[]).await;
    assert!(matches!(huge.status.as_u16(), 414 | 431), "a huge query string: {:?}", huge.status);

    // A gzip bomb: refused once it passes the message limit (4 MiB).
    let bomb = {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(br#"{"ticker":""#).unwrap();
        encoder.write_all(&vec![b'A'; 64 << 20]).unwrap();
        encoder.finish().unwrap()
    };
    assert!(bomb.len() < 200_000);
    let answer = client.send("POST", get_symbol, &[json_type[0], ("content-encoding", "gzip")], bomb).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["code"], "out_of_range");
    let gzipped = {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(br#"{"ticker":"AAPL"}"#).unwrap();
        encoder.finish().unwrap()
    };
    let answer = client.send("POST", get_symbol, &[json_type[0], ("content-encoding", "gzip")], gzipped).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        from_json::<GetSymbolResponse>(&answer.body, "wizdata.registry.v1.GetSymbolResponse").symbol.unwrap().ticker,
        "AAPL"
    );

    // Large answers are compressed for callers that accept gzip.
    let listed = client.get("/v1/symbols?page_size=100", &[("accept-encoding", "gzip")]).await;
    assert_eq!(listed.header("content-encoding"), Some("gzip"));
    let inflated = {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&listed.body[..]).read_to_end(&mut out).unwrap();
        out
    };
    let page: ListSymbolsResponse = from_json(&inflated, "wizdata.registry.v1.ListSymbolsResponse");
    assert!(page.symbols.len() > 5);

    // gRPC-Web answers too, frames and trailers inside one gzip stream.
    let list = ListSymbolsRequest { page_size: 100, ..Default::default() };
    let response = web(&mesh, Encoding::Binary)
        .send(
            "POST",
            "/wizdata.registry.v1.RegistryService/ListSymbols",
            Encoding::Binary.content_type(),
            frame(0, &list.encode_to_vec()),
            &[("accept-encoding", "gzip")],
        )
        .await;
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let compressed = response.into_body().collect().await.unwrap().to_bytes();
    let mut inflated = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&compressed[..]), &mut inflated).unwrap();
    let frames = envelopes(Bytes::from(inflated));
    assert_eq!(frames.iter().map(|(flag, _)| *flag).collect::<Vec<_>>(), [0, 0x80], "a message, then the trailers");
    assert_eq!(ListSymbolsResponse::decode(frames[0].1.clone()).unwrap().symbols.len(), page.symbols.len());
    assert!(String::from_utf8_lossy(&frames[1].1).contains("grpc-status:0"));

    // The gateway still serves after all of that.
    assert_eq!(client.get("/v1/symbols/AAPL", &[]).await.status, 200);
}

/// Reads a streamed body until `done` says so over what has arrived.
async fn read_until(body: &mut hyper::body::Incoming, seen: &mut BytesMut, done: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(&String::from_utf8_lossy(seen)) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("not seen in time; so far: {}", String::from_utf8_lossy(seen)))
            .expect("the stream stays open")
            .expect("the stream reads");
        if let Ok(data) = frame.into_data() {
            seen.extend_from_slice(&data);
        }
    }
}

#[tokio::test]
async fn live_data_reaches_sse_ndjson_and_connect_streaming_clients() {
    let mesh = TestMesh::all().await;
    let client = http(&mesh);
    let subscribe = "/v1/subscribe?symbols=MSFT&channels=CHANNEL_TRADES";

    let sse = client.open("GET", subscribe, &[("accept", "text/event-stream")], Bytes::new()).await;
    assert_eq!(sse.status(), 200);
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    let mut sse_body = sse.into_body();
    let ndjson = client.open("GET", subscribe, &[("accept", "application/x-ndjson")], Bytes::new()).await;
    assert_eq!(ndjson.headers()["content-type"], "application/x-ndjson");
    let mut ndjson_body = ndjson.into_body();
    let envelope = frame(0, br#"{"symbols":["MSFT"],"channels":["CHANNEL_TRADES"]}"#);
    let connect = client
        .open(
            "POST",
            "/wizdata.streaming.v1.StreamingService/Subscribe",
            &[("content-type", "application/connect+json")],
            envelope,
        )
        .await;
    assert_eq!(connect.headers()["content-type"], "application/connect+json");
    let mut connect_body = connect.into_body();

    // Ingest until each stream has carried a trade (a subscription may start just after the first batch).
    let deadline = tokio::time::Instant::now() + WAIT;
    let (mut sse_seen, mut ndjson_seen, mut connect_seen) = (BytesMut::new(), BytesMut::new(), BytesMut::new());
    let traded = |text: &str| text.contains("\"trade\"");
    loop {
        ingest_accepted(&mesh, vec![trade_now("MSFT", 401.25)]).await;
        let read = async {
            read_until(&mut sse_body, &mut sse_seen, traded).await;
            read_until(&mut ndjson_body, &mut ndjson_seen, traded).await;
            read_until(&mut connect_body, &mut connect_seen, traded).await;
        };
        if tokio::time::timeout(Duration::from_millis(500), read).await.is_ok() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no trade reached every stream");
    }

    // SSE: `id:` is the event's sequence, `data:` one SubscribeResponse as JSON.
    let text = String::from_utf8_lossy(&sse_seen).into_owned();
    let event = text.split("\n\n").find(|event| event.contains("\"trade\"")).unwrap();
    let id: u64 = event.lines().find_map(|line| line.strip_prefix("id: ")).expect("an id").parse().unwrap();
    let data = event.lines().find_map(|line| line.strip_prefix("data: ")).unwrap();
    let message: SubscribeResponse = from_json(data.as_bytes(), "wizdata.streaming.v1.SubscribeResponse");
    let Some(wizdata::streaming::v1::subscribe_response::Payload::Event(event)) = message.payload else {
        panic!("{data}")
    };
    assert_eq!((event.symbol.as_str(), event.sequence), ("MSFT", id));
    assert_eq!(serde_json::from_str::<serde_json::Value>(data).unwrap()["event"]["trade"]["price"], 401.25);

    // NDJSON: one message per line.
    let text = String::from_utf8_lossy(&ndjson_seen).into_owned();
    let line = text.lines().find(|line| line.contains("\"trade\"")).unwrap();
    let message: SubscribeResponse = from_json(line.as_bytes(), "wizdata.streaming.v1.SubscribeResponse");
    assert!(message.payload.is_some());

    // Connect: envelopes of JSON messages.
    let parsed = envelopes_prefix(connect_seen.freeze());
    let trade = parsed.iter().find(|(_, payload)| payload.windows(7).any(|window| window == b"\"trade\"")).unwrap();
    assert_eq!(trade.0, 0);
    let message: SubscribeResponse = from_json(&trade.1, "wizdata.streaming.v1.SubscribeResponse");
    assert!(message.payload.is_some());
}

/// The whole envelopes at the start of a stream read so far.
fn envelopes_prefix(mut body: Bytes) -> Vec<(u8, Bytes)> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        if body.len() < 5 + length {
            break;
        }
        let flags = body.get_u8();
        body.advance(4);
        out.push((flags, body.split_to(length)));
    }
    out
}

#[tokio::test]
async fn an_sse_client_that_stops_reading_is_let_go_as_a_grpc_one_is() {
    // A queue that takes each batch whole, so the trades fill the pipes
    // (the gateway's reads, the sockets) until the subscriber is stuck.
    let mesh = TestMesh::all_with(&["--subscriber-queue", "4096", "--slow-subscriber-timeout", "1s"]).await;
    let client = http(&mesh);
    let stalled = client.open("GET", "/v1/subscribe?symbols=GOOGL&channels=CHANNEL_TRADES", &[], Bytes::new()).await;
    assert_eq!(stalled.status(), 200);
    let admin = mesh.gateway_channel_as(mesh.admin_credentials()).await;
    let stats = || {
        let mut streaming = StreamingServiceClient::new(admin.clone());
        async move { streaming.get_stream_stats(GetStreamStatsRequest {}).await.unwrap().into_inner() }
    };
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    let mut price = 100.0;
    loop {
        let batch: Vec<_> = (0..2000)
            .map(|_| {
                price += 0.01;
                trade_now("GOOGL", price)
            })
            .collect();
        ingest_accepted(&mesh, batch).await;
        if stats().await.subscriptions == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the stalled SSE reader was never let go");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The gateway keeps serving everyone else.
    assert_eq!(client.get("/v1/symbols/GOOGL", &[]).await.status, 200);
    // What was sent before the end is still there, then the reason it ended.
    let body =
        tokio::time::timeout(WAIT, stalled.into_body().collect()).await.expect("the stream ends").unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body);
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: error\ndata: "), "{last}");
    let status: serde_json::Value = serde_json::from_str(last.trim_start_matches("event: error\ndata: ")).unwrap();
    assert_eq!(status["code"], Code::ResourceExhausted as i32, "{status}");
}

#[tokio::test]
async fn a_stream_of_requests_over_connect_reaches_the_service_message_by_message() {
    let mesh = TestMesh::all().await;
    let client = http(&mesh);
    let key = mesh.admin_key.as_ref().unwrap();
    let authorization = bearer(key);
    let ingest = "/wizdata.marketdata.v1.MarketDataService/IngestTicks";
    let tick = |price: f64| {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        json!({"ticks": [{"symbol": "TSLA", "time": time, "trade": {"price": price, "size": 1.0}}]}).to_string()
    };
    // The first trade first: the quote keeps the latest.
    let first = tick(250.0);
    std::thread::sleep(Duration::from_millis(2));
    let compressed = {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(tick(251.5).as_bytes()).unwrap();
        encoder.finish().unwrap()
    };
    let mut body = BytesMut::new();
    body.extend_from_slice(&frame(0, first.as_bytes()));
    body.extend_from_slice(&frame(1, &compressed));
    let headers = [
        ("content-type", "application/connect+json"),
        ("connect-content-encoding", "gzip"),
        ("authorization", authorization.as_str()),
    ];
    let answer = client.send("POST", ingest, &headers, body.freeze()).await;
    assert_eq!(answer.status, 200);
    let parts = envelopes(answer.body.clone());
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&parts[0].1).unwrap()["accepted"], "2");
    assert_eq!((parts[1].0, &parts[1].1[..]), (2, &b"{}"[..]), "an end without error");
    let quote = client.get("/v1/quotes/TSLA", &[]).await.json();
    assert_eq!(quote["lastPrice"], 251.5);

    // A bad envelope ends the call with an error; what came before it is not double counted.
    let mut body = BytesMut::new();
    body.extend_from_slice(&frame(0, tick(252.0).as_bytes()));
    body.extend_from_slice(&frame(0, b"{\"ticks\": nope}"));
    let answer = client.send("POST", ingest, &headers, body.freeze()).await;
    let parts = envelopes(answer.body.clone());
    let end: serde_json::Value = serde_json::from_slice(&parts.last().unwrap().1).unwrap();
    assert_eq!(end["error"]["code"], "invalid_argument", "{end}");
    assert!(end["error"]["message"].as_str().unwrap().contains("not valid JSON"), "{end}");
}

#[tokio::test]
async fn browsers_get_the_same_cors_answers_for_connect_and_rest() {
    let mesh = TestMesh::all().await;
    let client = http(&mesh);
    let origin = format!("http://{}", client.addr);
    let preflight = client
        .send(
            "OPTIONS",
            "/wizdata.registry.v1.RegistryService/GetSymbol",
            &[
                ("origin", origin.as_str()),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "content-type,connect-protocol-version,connect-timeout-ms,x-api-key",
                ),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(preflight.status, 200, "{preflight:?}");
    assert_eq!(preflight.header("access-control-allow-origin"), Some(origin.as_str()));
    let allowed = preflight.header("access-control-allow-headers").unwrap();
    assert!(allowed.contains("connect-protocol-version") && allowed.contains("connect-timeout-ms"), "{allowed}");
    let rest_preflight = client
        .send(
            "OPTIONS",
            "/v1/symbols/AAPL",
            &[("origin", origin.as_str()), ("access-control-request-method", "PATCH")],
            Bytes::new(),
        )
        .await;
    let methods = rest_preflight.header("access-control-allow-methods").unwrap();
    assert!(["GET", "POST", "PATCH", "DELETE"].iter().all(|method| methods.contains(method)), "{methods}");

    let rest = client.get("/v1/symbols/AAPL", &[("origin", origin.as_str())]).await;
    assert_eq!(rest.status, 200);
    assert_eq!(rest.header("access-control-allow-origin"), Some(origin.as_str()));
    assert!(rest.header("access-control-expose-headers").unwrap().contains("ratelimit-remaining"));
    let connect = client
        .send(
            "POST",
            "/wizdata.registry.v1.RegistryService/GetSymbol",
            &[("origin", origin.as_str()), ("content-type", "application/json")],
            r#"{"ticker":"AAPL"}"#,
        )
        .await;
    assert_eq!((connect.status.as_u16(), connect.header("access-control-allow-origin")), (200, Some(origin.as_str())));

    // Another origin is refused, whatever the protocol.
    for path in ["/v1/symbols/AAPL", "/wizdata.registry.v1.RegistryService/GetSymbol?encoding=json&message=%7B%7D"] {
        let refused = client.get(path, &[("origin", "http://elsewhere.example")]).await;
        assert_eq!(refused.status, 403, "{path}");
    }
}

#[tokio::test]
async fn an_idle_event_stream_carries_heartbeats_as_comments() {
    let mesh = TestMesh::all_with(&["--heartbeat-interval", "200ms"]).await;
    let client = http(&mesh);
    let sse = client.open("GET", "/v1/subscribe?symbols=MTN&channels=CHANNEL_TRADES", &[], Bytes::new()).await;
    assert_eq!(sse.status(), 200);
    let mut body = sse.into_body();
    let mut seen = BytesMut::new();
    read_until(&mut body, &mut seen, |text| text.matches(": heartbeat\n\n").count() >= 2).await;
    let text = String::from_utf8_lossy(&seen);
    assert!(!text.contains("data: {\"heartbeat\""), "heartbeats are comments, not events: {text}");
    // NDJSON has no comments: a heartbeat is a line like any other message.
    let ndjson = client
        .open(
            "GET",
            "/v1/subscribe?symbols=MTN&channels=CHANNEL_TRADES",
            &[("accept", "application/x-ndjson")],
            Bytes::new(),
        )
        .await;
    let mut body = ndjson.into_body();
    let mut seen = BytesMut::new();
    read_until(&mut body, &mut seen, |text| text.contains("{\"heartbeat\":{\"time\":\"")).await;
}

//! HTTP/JSON routes from the contract's `google.api.http` annotations, read
//! from the descriptor set at start-up: path templates with nested fields,
//! query parameters for the fields the path and body leave, `body: "*"` or
//! one field, `response_body`. Answers spell out default values; errors are
//! google.rpc.Status JSON. A server-streaming route answers as Server-Sent
//! Events, or NDJSON when the caller accepts `application/x-ndjson`.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use percent_encoding::percent_decode_str;
use prost_reflect::{DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor, Value};
use tonic::body::Body;
use tonic::{Code, Status};

use super::compression;
use super::errors::{error_response, google_status_json};
use super::json::{self, Defaults, proto_from_value, value_from_proto};
use super::{BodyLimits, GrpcService, StreamAnswer, StreamItem, call_streaming, call_unary, grpc_request, media_type};
use crate::routes::{Method, Methods};

/// One REST route: an HTTP method and path template bound to an RPC.
#[derive(Debug)]
pub struct Route {
    pub http_method: http::Method,
    pub template: PathTemplate,
    pub method: &'static Method,
    pub body: BodyRule,
    /// The response field answered instead of the whole response.
    pub response_body: Option<String>,
}

/// Where the request body goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyRule {
    /// No body; every field not in the path comes from the query.
    None,
    /// The body is the request message (less the path's fields).
    Whole,
    /// The body is this field of the request.
    Field(String),
}

/// A `google.api.http` path template: `/v1/symbols/{symbol.ticker}`,
/// `/v1/apiKeys/{key_id}:revoke`, `/v1/{name=files/**}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTemplate {
    text: String,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
    verb: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// `**`: the rest of the path, possibly empty.
    Rest,
}

/// The path's values: each bound field (as its dotted path) and its text.
pub type PathValues = Vec<(Vec<String>, String)>;

/// A field bound to segments `start..end` (`end` None: to the end of the path).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Variable {
    field_path: Vec<String>,
    start: usize,
    end: Option<usize>,
}

impl PathTemplate {
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text.strip_prefix('/').ok_or_else(|| format!("{text:?} does not start with '/'"))?;
        // The verb follows the last ':' outside any variable.
        let (path, verb) = match rest.rfind(':') {
            Some(at) if !rest[at..].contains('}') && !rest[at..].contains('/') => {
                (&rest[..at], Some(rest[at + 1..].to_owned()))
            }
            _ => (rest, None),
        };
        let mut segments = Vec::new();
        let mut variables = Vec::new();
        let mut chars = path;
        while !chars.is_empty() {
            if let Some(inside) = chars.strip_prefix('{') {
                let close = inside.find('}').ok_or_else(|| format!("{text:?}: unclosed '{{'"))?;
                let (field, pattern) = match inside[..close].split_once('=') {
                    Some((field, pattern)) => (field, pattern),
                    None => (&inside[..close], "*"),
                };
                let start = segments.len();
                for part in pattern.split('/') {
                    segments.push(Self::segment(part, text)?);
                }
                let end = if segments.last() == Some(&Segment::Rest) { None } else { Some(segments.len()) };
                let field_path = field.split('.').map(str::to_owned).collect();
                variables.push(Variable { field_path, start, end });
                chars = inside[close + 1..].strip_prefix('/').unwrap_or(&inside[close + 1..]);
            } else {
                let (part, after) = chars.split_once('/').unwrap_or((chars, ""));
                segments.push(Self::segment(part, text)?);
                chars = after;
            }
        }
        if segments.iter().rev().skip(1).any(|segment| *segment == Segment::Rest) {
            return Err(format!("{text:?}: '**' may only end a template"));
        }
        Ok(Self { text: text.to_owned(), segments, variables, verb })
    }

    fn segment(part: &str, text: &str) -> Result<Segment, String> {
        match part {
            "*" => Ok(Segment::One),
            "**" => Ok(Segment::Rest),
            "" => Err(format!("{text:?}: empty segment")),
            literal if literal.contains(['{', '}', '=']) => Err(format!("{text:?}: bad segment {literal:?}")),
            literal => Ok(Segment::Literal(literal.to_owned())),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The fields the template binds, dotted (`symbol.ticker`).
    pub fn fields(&self) -> impl Iterator<Item = String> + '_ {
        self.variables.iter().map(|variable| variable.field_path.join("."))
    }

    /// The variables' values when `path` (still percent-encoded) matches.
    /// A single-segment variable decodes every escape, `%2F` included, so
    /// `BTC%2FUSDT` names the ticker `BTC/USDT`.
    pub fn matches(&self, path: &str) -> Option<Result<PathValues, String>> {
        let mut path = path.strip_prefix('/')?;
        if let Some(verb) = &self.verb {
            path = path.strip_suffix(verb.as_str())?.strip_suffix(':')?;
        }
        let segments = || path.split('/').filter(move |_| !path.is_empty());
        // Walked without allocating: most templates differ at once.
        let mut walked = segments();
        for segment in &self.segments {
            match segment {
                Segment::Literal(literal) if walked.next()? == literal => {}
                Segment::One if !walked.next()?.is_empty() => {}
                Segment::Rest => walked.by_ref().for_each(drop),
                _ => return None,
            }
        }
        if walked.next().is_some() {
            return None;
        }
        let parts: Vec<&str> = segments().collect();
        let values = self.variables.iter().map(|variable| {
            let end = variable.end.unwrap_or(parts.len());
            let raw = parts[variable.start..end].join("/");
            let value = percent_decode_str(&raw)
                .decode_utf8()
                .map_err(|_| format!("the path segment {raw:?} is not UTF-8 once decoded"))?;
            Ok((variable.field_path.clone(), value.into_owned()))
        });
        Some(values.collect())
    }
}

/// Every REST route of the contract.
#[derive(Debug)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// The routes the contract this binary was built with declares.
    pub fn contract() -> &'static Self {
        static ROUTES: std::sync::LazyLock<Routes> = std::sync::LazyLock::new(|| {
            Routes::from_methods(Methods::contract()).expect("the contract's google.api.http annotations are valid")
        });
        &ROUTES
    }

    fn from_methods(methods: &'static Methods) -> Result<Self, String> {
        let Some(http) = methods.pool().get_extension_by_name("google.api.http") else {
            return Ok(Self { routes: Vec::new() });
        };
        let mut routes = Vec::new();
        for method in methods.iter() {
            for rule in http_rules(&http, method) {
                routes.push(Self::route(&rule, method)?);
            }
        }
        // Literal segments before variables, so `/v1/a/b` wins over `/v1/a/{x}`.
        routes.sort_by_key(|route| {
            let literals = route.template.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
            (std::cmp::Reverse(literals), route.template.text.clone())
        });
        Ok(Self { routes })
    }

    fn route(rule: &DynamicMessage, method: &'static Method) -> Result<Route, String> {
        let text = |name: &str| match rule.get_field_by_name(name).as_deref() {
            Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
            _ => None,
        };
        let (http_method, template) = [
            ("get", http::Method::GET),
            ("post", http::Method::POST),
            ("put", http::Method::PUT),
            ("delete", http::Method::DELETE),
            ("patch", http::Method::PATCH),
        ]
        .into_iter()
        .find_map(|(name, http_method)| text(name).map(|template| (http_method, template)))
        .ok_or_else(|| format!("{}: a google.api.http rule without a method", method.path))?;
        let template = PathTemplate::parse(&template)?;
        let input = method.descriptor.input();
        for field in template.fields() {
            field_at(&input, &field.split('.').map(str::to_owned).collect::<Vec<_>>())
                .map_err(|error| format!("{}: {error}", method.path))?;
        }
        let body = match text("body").as_deref() {
            None => BodyRule::None,
            Some("*") => BodyRule::Whole,
            Some(field) => {
                input.get_field_by_name(field).ok_or_else(|| format!("{}: no body field {field:?}", method.path))?;
                BodyRule::Field(field.to_owned())
            }
        };
        Ok(Route { http_method, template, method, body, response_body: text("response_body") })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// The route for `method` and `path`, or why there is none: no route
    /// has the path (404), or none with this method (405, naming those that do).
    pub fn find(&self, method: &http::Method, path: &str) -> Result<(&Route, PathValues), RouteMiss> {
        let mut allowed = Vec::new();
        for route in &self.routes {
            let Some(values) = route.template.matches(path) else { continue };
            if route.http_method != *method {
                allowed.push(route.http_method.clone());
                continue;
            }
            return values.map(|values| (route, values)).map_err(RouteMiss::BadPath);
        }
        // In one order, whichever order the routes were found in.
        let order =
            [http::Method::GET, http::Method::POST, http::Method::PUT, http::Method::PATCH, http::Method::DELETE];
        allowed.sort_by_key(|method| order.iter().position(|known| known == method));
        Err(if allowed.is_empty() { RouteMiss::NoRoute } else { RouteMiss::WrongMethod(allowed) })
    }
}

/// A request's REST route, found once as the request arrives: its span is
/// named by the route's RPC, and the same lookup answers it.
#[derive(Clone, Debug)]
pub struct RouteLookup(pub Result<(&'static Route, PathValues), RouteMiss>);

impl RouteLookup {
    /// Looks up and keeps the route of a request that names no RPC.
    pub fn attach<B>(mut request: Request<B>) -> Request<B> {
        let path = request.uri().path();
        if Methods::contract().get(path).is_none() && Methods::own().get(path).is_none() {
            let found = Routes::contract().find(request.method(), path);
            request.extensions_mut().insert(RouteLookup(found));
        }
        request
    }

    /// The RPC path of the route found, if one was.
    pub fn rpc_path<B>(request: &Request<B>) -> Option<&'static str> {
        match request.extensions().get::<RouteLookup>() {
            Some(RouteLookup(Ok((route, _)))) => Some(route.method.path),
            _ => None,
        }
    }
}

/// Why a request has no route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteMiss {
    NoRoute,
    WrongMethod(Vec<http::Method>),
    BadPath(String),
}

/// A method's `google.api.http` rule and its additional bindings.
fn http_rules(http: &ExtensionDescriptor, method: &Method) -> Vec<DynamicMessage> {
    let options = method.descriptor.options();
    if !options.has_extension(http) {
        return Vec::new();
    }
    let Value::Message(rule) = options.get_extension(http).into_owned() else { return Vec::new() };
    let mut rules = vec![rule.clone()];
    if let Some(Value::List(more)) = rule.get_field_by_name("additional_bindings").as_deref() {
        rules.extend(more.iter().filter_map(|value| value.as_message().cloned()));
    }
    rules
}

/// The field a dotted path names, walking through singular messages.
fn field_at(message: &MessageDescriptor, path: &[String]) -> Result<FieldDescriptor, String> {
    let (first, rest) = path.split_first().ok_or("an empty field path")?;
    let field = message
        .get_field_by_name(first)
        .or_else(|| message.get_field_by_json_name(first))
        .ok_or_else(|| format!("{} has no field {first:?}", message.full_name()))?;
    if rest.is_empty() {
        return Ok(field);
    }
    match field.kind() {
        Kind::Message(inner) if !field.is_list() && !field.is_map() => field_at(&inner, rest),
        _ => Err(format!("{}.{first} has no fields inside", message.full_name())),
    }
}

/// A value given as text (a path segment or query parameter) as the JSON
/// value proto3 JSON reads for `field`: numbers and enum numbers as written,
/// booleans parsed, timestamps, durations and field masks in their JSON text.
fn json_of_text(field: &FieldDescriptor, text: &str) -> Result<serde_json::Value, String> {
    let name = field.full_name();
    Ok(match field.kind() {
        Kind::Bool => match text {
            "true" | "1" => true.into(),
            "false" | "0" => false.into(),
            _ => return Err(format!("{name} is a boolean: true or false, not {text:?}")),
        },
        Kind::Enum(_) if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) => {
            serde_json::Value::Number(text.parse::<i64>().map_err(|error| error.to_string())?.into())
        }
        Kind::Message(message) if !is_scalar_in_json(&message) => {
            return Err(format!("{name} is a message ({}); set its fields one by one", message.full_name()));
        }
        _ => text.into(),
    })
}

/// Well-known types whose JSON form is one string or number.
fn is_scalar_in_json(message: &MessageDescriptor) -> bool {
    matches!(
        message.full_name(),
        "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.FieldMask"
            | "google.protobuf.StringValue"
            | "google.protobuf.BoolValue"
            | "google.protobuf.Int32Value"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.FloatValue"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.BytesValue"
    )
}

/// Sets `value` at `path` in `object`, creating the messages on the way.
/// Repeated fields gather every value given.
fn set_at(
    object: &mut serde_json::Map<String, serde_json::Value>,
    path: &[String],
    value: serde_json::Value,
    repeated: bool,
) {
    let (first, rest) = path.split_first().expect("a field path is never empty");
    if rest.is_empty() {
        match (repeated, object.get_mut(first)) {
            (true, Some(serde_json::Value::Array(values))) => values.push(value),
            (true, _) => {
                object.insert(first.clone(), vec![value].into());
            }
            (false, _) => {
                object.insert(first.clone(), value);
            }
        }
        return;
    }
    let inner = object.entry(first.clone()).or_insert_with(|| serde_json::Value::Object(Default::default()));
    if !inner.is_object() {
        *inner = serde_json::Value::Object(Default::default());
    }
    set_at(inner.as_object_mut().expect("made an object above"), rest, value, repeated);
}

/// Answers REST calls through the gRPC pipeline.
#[derive(Clone)]
pub struct Rest {
    pub grpc: GrpcService,
    pub limits: BodyLimits,
    pub routes: &'static Routes,
}

/// How a server stream is written for an HTTP caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StreamFormat {
    EventStream,
    Ndjson,
}

impl Rest {
    pub async fn handle(&self, mut request: Request<Body>) -> Response<Body> {
        let lookup = match request.extensions_mut().remove::<RouteLookup>() {
            Some(RouteLookup(found)) => found,
            None => self.routes.find(request.method(), request.uri().path()),
        };
        let (route, values) = match lookup {
            Ok(found) => found,
            Err(RouteMiss::NoRoute) => {
                let path = request.uri().path();
                let status = Status::not_found(format!(
                    "no route for {} {path}; GET /openapi.json lists every route, and gRPC and Connect calls name /package.Service/Method",
                    request.method()
                ));
                return google_error(&status, StatusCode::NOT_FOUND, HeaderMap::new());
            }
            Err(RouteMiss::WrongMethod(allowed)) => {
                let allow = allowed.iter().map(http::Method::as_str).collect::<Vec<_>>().join(", ");
                let status = Status::unimplemented(format!(
                    "{} {} is not a route; this path takes {allow}",
                    request.method(),
                    request.uri().path()
                ));
                let mut headers = HeaderMap::new();
                headers
                    .insert(header::ALLOW, HeaderValue::try_from(allow).expect("method names are valid header text"));
                return google_error(&status, StatusCode::METHOD_NOT_ALLOWED, headers);
            }
            Err(RouteMiss::BadPath(problem)) => {
                let status = Status::invalid_argument(problem);
                return google_error(&status, StatusCode::BAD_REQUEST, HeaderMap::new());
            }
        };
        let method = route.method;
        let stream_format = match request.headers().get(header::ACCEPT).and_then(|accept| accept.to_str().ok()) {
            Some(accept) if accept.contains("application/x-ndjson") => StreamFormat::Ndjson,
            _ => StreamFormat::EventStream,
        };
        // A body this route reads must be JSON; one it does not read is refused below.
        let has_body = http_body::Body::size_hint(request.body()).exact() != Some(0);
        let media = media_type(request.headers());
        if route.body != BodyRule::None && has_body && media.as_deref() != Some("application/json") {
            let status = Status::invalid_argument(format!(
                "the request body is {}; this route reads application/json",
                media.map_or("sent without a content-type".to_owned(), |media| format!("{media:?}"))
            ));
            return google_error(&status, StatusCode::UNSUPPORTED_MEDIA_TYPE, HeaderMap::new());
        }
        let (parts, body) = request.into_parts();
        let message = match self.request_message(route, values, &parts, body).await {
            Ok(message) => message,
            Err(status) => {
                let http_status = wizdata_common::error::http_status_of(status.code());
                return google_error(&status, http_status, HeaderMap::new());
            }
        };
        let grpc = grpc_request(&parts, method, super::single_message(&message), None);
        if method.server_streaming {
            return self.stream(grpc, method, stream_format).await;
        }
        let answer = call_unary(&self.grpc, grpc).await;
        let mut headers = answer.headers;
        headers.extend(answer.trailers.into_iter().filter_map(|(name, value)| name.map(|name| (name, value))));
        let message = match answer.outcome {
            Ok(message) => message,
            Err(status) => return google_error(&status, wizdata_common::error::http_status_of(status.code()), headers),
        };
        let body = match self.response_json(route, &message) {
            Ok(body) => body,
            Err(status) => return google_error(&status, StatusCode::INTERNAL_SERVER_ERROR, headers),
        };
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let body = compression::answer_body(body, parts.headers.get(header::ACCEPT_ENCODING), &mut headers);
        let mut response = Response::new(Body::new(http_body_util::Full::new(body)));
        *response.headers_mut() = headers;
        response
    }

    /// The request message: the body (all of it or one field), then the
    /// path's fields, then the query's, as one JSON object read by the
    /// request type, so every field is read by proto3 JSON's rules.
    async fn request_message(
        &self,
        route: &Route,
        values: PathValues,
        parts: &http::request::Parts,
        body: Body,
    ) -> Result<Bytes, Status> {
        let input = route.method.descriptor.input();
        let body = super::read_body(body, self.limits).await?;
        let body = compression::Encoding::of(parts.headers.get(header::CONTENT_ENCODING))?
            .decode(body, self.limits.max_message_bytes)?;
        let mut object = serde_json::Map::new();
        match &route.body {
            BodyRule::None if !body.is_empty() => {
                return Err(Status::invalid_argument(format!(
                    "{} {} takes no request body; its fields go in the path and the query",
                    route.http_method,
                    route.template.text()
                )));
            }
            BodyRule::None => {}
            rule => {
                let value: serde_json::Value = if body.is_empty() {
                    serde_json::Value::Object(Default::default())
                } else {
                    serde_json::from_slice(&body).map_err(|error| {
                        wizdata_common::error::ApiError::invalid_field(
                            "body",
                            format!("the request body is not valid JSON: {error}"),
                        )
                    })?
                };
                match rule {
                    BodyRule::Whole => match value {
                        serde_json::Value::Object(fields) => object = fields,
                        _ => return Err(Status::invalid_argument("the request body must be a JSON object")),
                    },
                    BodyRule::Field(field) => {
                        object.insert(field.clone(), value);
                    }
                    BodyRule::None => unreachable!("handled above"),
                }
            }
        }
        for (path, text) in values {
            let field = field_at(&input, &path).map_err(Status::internal)?;
            let value = json_of_text(&field, &text).map_err(|problem| bad_field(&path.join("."), problem))?;
            set_at(&mut object, &path, value, false);
        }
        let bound: Vec<String> = route.template.fields().collect();
        for (name, text) in form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()) {
            if route.body == BodyRule::Whole {
                return Err(bad_field(
                    &name,
                    format!(
                        "{} {} takes its fields in the body, not the query",
                        route.http_method,
                        route.template.text()
                    ),
                ));
            }
            let path: Vec<String> = name.split('.').map(str::to_owned).collect();
            let field = field_at(&input, &path)
                .map_err(|problem| bad_field(&name, format!("unknown query parameter: {problem}")))?;
            if bound.contains(&name.to_string()) || matches!(&route.body, BodyRule::Field(body) if *body == path[0]) {
                return Err(bad_field(
                    &name,
                    format!("{name} is set by the path or the body; the query may not set it again"),
                ));
            }
            let value = json_of_text(&field, &text).map_err(|problem| bad_field(&name, problem))?;
            set_at(&mut object, &path, value, field.is_list());
        }
        proto_from_value(input, serde_json::Value::Object(object))
    }

    /// The answer as JSON with default values spelled out: the whole
    /// response, or its `response_body` field.
    fn response_json(&self, route: &Route, proto: &[u8]) -> Result<Bytes, Status> {
        let output = route.method.descriptor.output();
        let Some(field) = &route.response_body else {
            return json::json_from_proto(output, proto, Defaults::Included).map(Bytes::from);
        };
        let message = json::decode(output.clone(), proto)?;
        let capacity = proto.len() * 2 + 16;
        if let Some(Value::Message(inner)) = message.get_field_by_name(field).as_deref() {
            return json::write_json(inner, Defaults::Included, capacity).map(Bytes::from);
        }
        // A field that is not a message: picked out of the whole answer.
        let json_name = output.get_field_by_name(field).map(|field| field.json_name().to_owned());
        let value = value_from_proto(output, proto, Defaults::Included)?;
        let picked = json_name.and_then(|name| value.get(&name).cloned()).unwrap_or(serde_json::Value::Null);
        Ok(Bytes::from(picked.to_string()))
    }

    /// A server stream as Server-Sent Events (`id:` the event's sequence,
    /// heartbeats as comments, a failure as an `error` event) or NDJSON.
    async fn stream(&self, request: Request<Body>, method: &'static Method, format: StreamFormat) -> Response<Body> {
        let (mut headers, items) = match call_streaming(&self.grpc, request).await {
            StreamAnswer::Refused(headers, status) => {
                return google_error(&status, wizdata_common::error::http_status_of(status.code()), headers);
            }
            StreamAnswer::Streaming(headers, items) => (headers, items),
        };
        let output = method.descriptor.output();
        let shape = Arc::new(EventShape::of(&output));
        let chunks = items.map(move |item| {
            let chunk = match item {
                StreamItem::Message(message) => match DynamicMessage::decode(output.clone(), &message[..]) {
                    Ok(message) => shape.write(&message, format),
                    Err(error) => {
                        failure(&Status::internal(format!("the backend's message did not decode: {error}")), format)
                    }
                },
                StreamItem::End(status, _) if status.code() == Code::Ok => Bytes::new(),
                StreamItem::End(status, _) => failure(&status, format),
            };
            Ok::<_, Status>(http_body::Frame::data(chunk))
        });
        let content_type = match format {
            StreamFormat::EventStream => "text/event-stream",
            StreamFormat::Ndjson => "application/x-ndjson",
        };
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        // Proxies between here and the caller must pass each event on at once.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        let mut response = Response::new(Body::new(http_body_util::StreamBody::new(chunks)));
        *response.headers_mut() = headers;
        response
    }
}

/// What a streamed message's fields mean for an event stream: the oneof
/// member that is a heartbeat, and where an event's sequence is.
struct EventShape {
    heartbeat: Option<FieldDescriptor>,
    sequence: Option<(FieldDescriptor, FieldDescriptor)>,
}

impl EventShape {
    fn of(output: &MessageDescriptor) -> Self {
        let heartbeat = output
            .fields()
            .find(|field| matches!(field.kind(), Kind::Message(message) if message.name() == "Heartbeat"));
        let sequence = output.fields().find_map(|field| match field.kind() {
            Kind::Message(message) => message.get_field_by_name("sequence").map(|sequence| (field.clone(), sequence)),
            _ => None,
        });
        Self { heartbeat, sequence }
    }

    fn write(&self, message: &DynamicMessage, format: StreamFormat) -> Bytes {
        if format == StreamFormat::EventStream
            && let Some(heartbeat) = &self.heartbeat
            && message.has_field(heartbeat)
        {
            return Bytes::from_static(b": heartbeat\n\n");
        }
        let json = match json::write_json(message, Defaults::Included, 256) {
            Ok(json) => json,
            Err(status) => return failure(&status, format),
        };
        let json = String::from_utf8(json).expect("serde_json writes UTF-8");
        if format == StreamFormat::Ndjson {
            return Bytes::from(format!("{json}\n"));
        }
        let id = self.sequence.as_ref().and_then(|(holder, sequence)| {
            if !message.has_field(holder) {
                return None;
            }
            message.get_field(holder).as_message()?.get_field(sequence).as_u64()
        });
        match id {
            Some(id) => Bytes::from(format!("id: {id}\ndata: {json}\n\n")),
            None => Bytes::from(format!("data: {json}\n\n")),
        }
    }
}

/// A stream's failure, as its last event (SSE) or line (NDJSON).
fn failure(status: &Status, format: StreamFormat) -> Bytes {
    let error = google_status_json(status);
    match format {
        StreamFormat::EventStream => Bytes::from(format!("event: error\ndata: {error}\n\n")),
        StreamFormat::Ndjson => Bytes::from(format!("{}\n", serde_json::json!({ "error": error }))),
    }
}

fn google_error(status: &Status, http_status: StatusCode, headers: HeaderMap) -> Response<Body> {
    let mut response = error_response(status.code(), &google_status_json(status), headers);
    *response.status_mut() = http_status;
    response
}

fn bad_field(field: &str, problem: impl Into<String>) -> Status {
    wizdata_common::error::ApiError::invalid_field(field, problem).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(template: &str, path: &str) -> Option<Vec<(String, String)>> {
        let template = PathTemplate::parse(template).unwrap();
        template
            .matches(path)
            .map(|values| values.unwrap().into_iter().map(|(path, value)| (path.join("."), value)).collect())
    }

    #[test]
    fn templates_bind_their_variables() {
        assert_eq!(values("/v1/symbols/{ticker}", "/v1/symbols/NPN"), Some(vec![("ticker".into(), "NPN".into())]));
        assert_eq!(
            values("/v1/symbols/{ticker}", "/v1/symbols/BTC%2FUSDT"),
            Some(vec![("ticker".into(), "BTC/USDT".into())])
        );
        assert_eq!(values("/v1/symbols/{ticker}", "/v1/symbols/BTC/USDT"), None, "a raw slash is two segments");
        assert_eq!(values("/v1/symbols/{ticker}", "/v1/symbols/%C3%A9"), Some(vec![("ticker".into(), "é".into())]));
        assert_eq!(
            values("/v1/symbols/{symbol.ticker}", "/v1/symbols/X"),
            Some(vec![("symbol.ticker".into(), "X".into())])
        );
        assert_eq!(
            values("/v1/symbols/{symbol}/candles", "/v1/symbols/NPN/candles"),
            Some(vec![("symbol".into(), "NPN".into())])
        );
        assert_eq!(
            values("/v1/symbols/{symbol}/candles", "/v1/symbols//candles"),
            None,
            "an empty segment binds nothing"
        );
        assert_eq!(
            values("/v1/apiKeys/{key_id}:revoke", "/v1/apiKeys/k1:revoke"),
            Some(vec![("key_id".into(), "k1".into())])
        );
        assert_eq!(values("/v1/apiKeys/{key_id}:revoke", "/v1/apiKeys/k1"), None);
        assert_eq!(values("/v1/auth:login", "/v1/auth:login"), Some(vec![]));
        assert_eq!(values("/v1/{name=files/**}", "/v1/files/a/b"), Some(vec![("name".into(), "files/a/b".into())]));
        assert_eq!(values("/v1/exchanges", "/v1/exchanges/x"), None);
        let template = PathTemplate::parse("/v1/symbols/{ticker}").unwrap();
        assert!(template.matches("/v1/symbols/%FF").unwrap().is_err(), "invalid UTF-8 is refused, not mangled");
        assert!(PathTemplate::parse("v1/x").is_err());
        assert!(PathTemplate::parse("/v1/{x").is_err());
        assert!(PathTemplate::parse("/v1/**/x").is_err());
    }

    #[test]
    fn the_contract_has_a_route_for_every_rpc_with_a_natural_one() {
        let routes = Routes::contract();
        let find = |method: http::Method, path: &str| {
            routes.find(&method, path).map(|(route, _)| route.method.path).map_err(|miss| format!("{miss:?}"))
        };
        assert_eq!(find(http::Method::GET, "/v1/symbols"), Ok("/wizdata.registry.v1.RegistryService/ListSymbols"));
        assert_eq!(find(http::Method::GET, "/v1/symbols/NPN"), Ok("/wizdata.registry.v1.RegistryService/GetSymbol"));
        assert_eq!(
            find(http::Method::PATCH, "/v1/symbols/NPN"),
            Ok("/wizdata.registry.v1.RegistryService/UpdateSymbol")
        );
        assert_eq!(
            find(http::Method::GET, "/v1/symbols/NPN/candles"),
            Ok("/wizdata.marketdata.v1.MarketDataService/GetCandles")
        );
        assert_eq!(
            find(http::Method::POST, "/v1/symbols/NPN/indicators:compute"),
            Ok("/wizdata.indicator.v1.IndicatorService/ComputeIndicators")
        );
        assert_eq!(find(http::Method::POST, "/v1/auth:login"), Ok("/wizdata.auth.v1.AuthService/Login"));
        assert_eq!(find(http::Method::GET, "/v1/subscribe"), Ok("/wizdata.streaming.v1.StreamingService/Subscribe"));
        assert_eq!(find(http::Method::GET, "/v1/nope"), Err("NoRoute".into()));
        let Err(RouteMiss::WrongMethod(allowed)) = routes.find(&http::Method::PUT, "/v1/symbols/NPN") else { panic!() };
        assert_eq!(allowed.len(), 3, "GET, PATCH and DELETE: {allowed:?}");
    }

    #[test]
    fn query_text_becomes_the_json_each_field_reads() {
        let input = Methods::contract().pool().get_message_by_name("wizdata.registry.v1.ListSymbolsRequest").unwrap();
        let field = |name: &str| input.get_field_by_name(name).unwrap();
        assert_eq!(json_of_text(&field("streamable"), "true"), Ok(true.into()));
        assert!(json_of_text(&field("streamable"), "yes").is_err());
        assert_eq!(json_of_text(&field("asset_class"), "ASSET_CLASS_EQUITY"), Ok("ASSET_CLASS_EQUITY".into()));
        assert_eq!(json_of_text(&field("asset_class"), "1"), Ok(1.into()));
        assert_eq!(json_of_text(&field("page_size"), "20"), Ok("20".into()));
        let mut object = serde_json::Map::new();
        set_at(&mut object, &["symbol".into(), "ticker".into()], "X".into(), false);
        set_at(&mut object, &["symbols".into()], "A".into(), true);
        set_at(&mut object, &["symbols".into()], "B".into(), true);
        assert_eq!(
            serde_json::Value::Object(object),
            serde_json::json!({"symbol": {"ticker": "X"}, "symbols": ["A", "B"]})
        );
    }
}

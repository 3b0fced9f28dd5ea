//! The OpenAPI 3.1 document of the REST routes, generated at start-up from
//! the same descriptors and annotations the routes are read from: proto
//! comments as descriptions, each RPC's scope as a security requirement,
//! google.rpc.Status as every error's schema.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use bytes::Bytes;
use prost_reflect::{DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor, Value};
use serde_json::{Map, Value as Json, json};

use super::rest::{BodyRule, Route, Routes};
use crate::routes::{Method, Methods};

/// The document, written once.
pub fn document() -> &'static Bytes {
    static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
        let document = build(Routes::contract(), Methods::contract().pool());
        Bytes::from(serde_json::to_vec_pretty(&document).expect("a JSON value serializes"))
    });
    &DOCUMENT
}

fn build(routes: &Routes, pool: &DescriptorPool) -> Json {
    let comments = Comments::of(pool);
    let mut schemas = Schemas { comments: &comments, written: BTreeMap::new() };
    let mut paths: BTreeMap<String, Map<String, Json>> = BTreeMap::new();
    for route in routes.iter() {
        let operation = operation(route, &mut schemas, &comments);
        let path = openapi_path(route);
        paths.entry(path).or_default().insert(route.http_method.as_str().to_ascii_lowercase(), operation);
    }
    let status = pool.get_message_by_name("google.rpc.Status").expect("google.rpc.Status is in the pool");
    schemas.message(&status);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "WizData mesh",
            "version": "v1",
            "description": "Market data over REST/JSON, read from the same contract as the gRPC and Connect APIs at this gateway. \
                Credentials: an API key in `x-api-key`, or a bearer token from `POST /v1/auth:login`; without either a call is \
                anonymous, held to the anonymous rate limit. Errors are google.rpc.Status JSON with the matching HTTP status.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas.written,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    })
}

/// The route's path with each variable named by its last field
/// (`{symbol.ticker}` is `{ticker}`, `{name=files/**}` is `{name}`), so
/// routes on one path share one path item, as OpenAPI requires of paths
/// that differ only in their variables' names.
fn openapi_path(route: &Route) -> String {
    let mut path = String::new();
    let mut rest = route.template.text();
    while let Some(open) = rest.find('{') {
        path.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |at| open + at);
        let inside = &rest[open + 1..close];
        path.push('{');
        path.push_str(parameter_name(inside.split('=').next().unwrap_or(inside)));
        path.push('}');
        rest = &rest[(close + 1).min(rest.len())..];
    }
    path.push_str(rest);
    path
}

fn parameter_name(field_path: &str) -> &str {
    field_path.rsplit('.').next().unwrap_or(field_path)
}

fn operation(route: &Route, schemas: &mut Schemas, comments: &Comments) -> Json {
    let method = route.method;
    let descriptor = &method.descriptor;
    let input = descriptor.input();
    let mut parameters = Vec::new();
    let bound: Vec<String> = route.template.fields().collect();
    for field_path in &bound {
        let field = field_by_path(&input, field_path);
        let comment = field.as_ref().map(|field| comments.of_field(field)).unwrap_or_default();
        parameters.push(json!({
            "name": parameter_name(field_path),
            "in": "path",
            "required": true,
            "description": format!("{field_path}: {comment}").trim_end_matches([' ', ':']).to_owned(),
            "schema": {"type": "string"},
        }));
    }
    if route.body != BodyRule::Whole {
        for field in input.fields() {
            let in_body = matches!(&route.body, BodyRule::Field(body) if *body == field.name());
            if in_body || bound.iter().any(|bound| bound == field.name()) {
                continue;
            }
            query_parameters(&field, field.name().to_owned(), schemas, &bound, &mut parameters);
        }
    }
    let mut operation = json!({
        "operationId": format!("{}_{}", descriptor.parent_service().name(), descriptor.name()),
        "tags": [descriptor.parent_service().name()],
        "summary": comments.of_method(descriptor).lines().next().unwrap_or(descriptor.name()),
        "description": comments.of_method(descriptor),
        "parameters": parameters,
        "security": security(method),
        "responses": {
            "200": {
                "description": "OK",
                "content": response_content(route, schemas),
            },
            "default": {
                "description": "An error: google.rpc.Status with its details, and the HTTP status its code maps to.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/google.rpc.Status"}}},
            },
        },
    });
    let body_schema = match &route.body {
        BodyRule::None => None,
        BodyRule::Whole => Some(schemas.message(&input)),
        BodyRule::Field(field) => input.get_field_by_name(field).map(|field| schemas.field(&field)),
    };
    if let Some(schema) = body_schema {
        operation["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema}}});
    }
    operation
}

fn response_content(route: &Route, schemas: &mut Schemas) -> Json {
    let output = route.method.descriptor.output();
    let schema = match &route.response_body {
        Some(field) => output.get_field_by_name(field).map_or(json!({}), |field| schemas.field(&field)),
        None => schemas.message(&output),
    };
    if route.method.server_streaming {
        let event = json!({"type": "string", "description": format!("Server-Sent Events, one {} as JSON per `data:` line", output.name())});
        return json!({
            "text/event-stream": {"schema": event},
            "application/x-ndjson": {"schema": schema},
        });
    }
    json!({"application/json": {"schema": schema}})
}

/// Query parameters for a field: scalars, enums and repeated scalars by
/// name; singular messages as their fields, dotted (`symbol.name`).
fn query_parameters(
    field: &FieldDescriptor,
    name: String,
    schemas: &mut Schemas,
    bound: &[String],
    out: &mut Vec<Json>,
) {
    if bound.contains(&name) || field.is_map() {
        return;
    }
    match field.kind() {
        Kind::Message(message) if !is_scalar_in_json(&message) => {
            if field.is_list() || name.matches('.').count() > 3 {
                return;
            }
            for inner in message.fields() {
                query_parameters(&inner, format!("{name}.{}", inner.name()), schemas, bound, out);
            }
        }
        _ => {
            let schema = schemas.field(field);
            let mut parameter = json!({
                "name": name,
                "in": "query",
                "description": schemas.comments.of_field(field),
                "schema": schema,
            });
            if field.is_list() {
                parameter["explode"] = true.into();
                parameter["style"] = "form".into();
            }
            out.push(parameter);
        }
    }
}

fn field_by_path(message: &MessageDescriptor, path: &str) -> Option<FieldDescriptor> {
    let mut message = message.clone();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let field = message.get_field_by_name(part)?;
        if parts.peek().is_none() {
            return Some(field);
        }
        message = match field.kind() {
            Kind::Message(inner) => inner,
            _ => return None,
        };
    }
    None
}

/// The RPC's scope, as a requirement either credential satisfies; a public
/// RPC needs none.
fn security(method: &Method) -> Json {
    let options = method.descriptor.options();
    let access = options
        .extensions()
        .find(|(extension, _)| extension.full_name() == "wizdata.auth.v1.access")
        .and_then(|(_, value)| value.as_message().cloned());
    let field =
        |name: &str| access.as_ref().and_then(|access| access.get_field_by_name(name).map(|value| value.into_owned()));
    if matches!(field("public"), Some(Value::Bool(true))) {
        return json!([{}]);
    }
    let scope = match field("scope") {
        Some(Value::String(scope)) => scope,
        _ => String::new(),
    };
    json!([{"bearer": [scope]}, {"apiKey": [scope]}])
}

fn is_scalar_in_json(message: &MessageDescriptor) -> bool {
    message.full_name().starts_with("google.protobuf.") && scalar_wkt(message).is_some()
}

/// The JSON schema of a well-known type written as one JSON value.
fn scalar_wkt(message: &MessageDescriptor) -> Option<Json> {
    Some(match message.full_name() {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$"}),
        "google.protobuf.FieldMask" => {
            json!({"type": "string", "description": "Comma-separated field paths, in lowerCamelCase."})
        }
        "google.protobuf.StringValue" => json!({"type": ["string", "null"]}),
        "google.protobuf.BoolValue" => json!({"type": ["boolean", "null"]}),
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => json!({"type": ["integer", "null"]}),
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => json!({"type": ["string", "integer", "null"]}),
        "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => json!({"type": ["number", "string", "null"]}),
        "google.protobuf.BytesValue" => json!({"type": ["string", "null"], "contentEncoding": "base64"}),
        _ => return None,
    })
}

/// The schemas written so far, by full message or enum name.
struct Schemas<'a> {
    comments: &'a Comments,
    written: BTreeMap<String, Json>,
}

impl Schemas<'_> {
    /// A reference to the message's schema, writing it (and what it
    /// refers to) the first time.
    fn message(&mut self, message: &MessageDescriptor) -> Json {
        if let Some(schema) = scalar_wkt(message) {
            return schema;
        }
        match message.full_name() {
            "google.protobuf.Any" => {
                return json!({"type": "object", "properties": {"@type": {"type": "string"}}, "required": ["@type"], "additionalProperties": true});
            }
            "google.protobuf.Struct" | "google.protobuf.Value" | "google.protobuf.ListValue" => return json!({}),
            _ => {}
        }
        let name = message.full_name().to_owned();
        if !self.written.contains_key(&name) {
            // Written before its fields, so a message that contains itself refers to itself.
            self.written.insert(name.clone(), json!({}));
            let properties: Map<String, Json> = message
                .fields()
                .map(|field| {
                    let mut schema = self.field(&field);
                    let description = self.comments.of_field(&field);
                    if !description.is_empty() {
                        schema = json!({"allOf": [schema], "description": description});
                        if let Some(example) =
                            example_in(&description).filter(|_| field.kind() == Kind::String && !field.is_list())
                        {
                            schema["examples"] = json!([example]);
                        }
                    }
                    (field.json_name().to_owned(), schema)
                })
                .collect();
            let schema = json!({
                "type": "object",
                "description": self.comments.of_message(message),
                "properties": properties,
            });
            self.written.insert(name.clone(), schema);
        }
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    fn field(&mut self, field: &FieldDescriptor) -> Json {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else { unreachable!("a map field's kind is its entry message") };
            let value = entry.map_entry_value_field();
            return json!({"type": "object", "additionalProperties": self.single(&value.kind())});
        }
        let single = self.single(&field.kind());
        if field.is_list() { json!({"type": "array", "items": single}) } else { single }
    }

    fn single(&mut self, kind: &Kind) -> Json {
        match kind {
            Kind::Double | Kind::Float => {
                json!({"type": ["number", "string"], "description": "A number, or \"NaN\", \"Infinity\" or \"-Infinity\"."})
            }
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({"type": "integer", "format": "int32"}),
            Kind::Uint32 | Kind::Fixed32 => json!({"type": "integer", "format": "int32", "minimum": 0}),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({"type": ["string", "integer"], "format": "int64"}),
            Kind::Uint64 | Kind::Fixed64 => json!({"type": ["string", "integer"], "format": "uint64"}),
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
            Kind::Message(message) => self.message(message),
            Kind::Enum(enumeration) => self.enumeration(enumeration),
        }
    }

    fn enumeration(&mut self, enumeration: &EnumDescriptor) -> Json {
        let name = enumeration.full_name().to_owned();
        if !self.written.contains_key(&name) {
            let names: Vec<String> = enumeration.values().map(|value| value.name().to_owned()).collect();
            let schema = json!({
                "description": self.comments.of_enum(enumeration),
                "oneOf": [{"type": "string", "enum": names}, {"type": "integer", "format": "int32"}],
            });
            self.written.insert(name.clone(), schema);
        }
        json!({"$ref": format!("#/components/schemas/{name}")})
    }
}

/// The first example a comment gives, as the protos write them: `e.g. "NPN"`.
fn example_in(comment: &str) -> Option<&str> {
    let after = &comment[comment.find("e.g. \"")? + "e.g. \"".len()..];
    after.split('"').next().filter(|example| !example.is_empty())
}

/// The leading comments of the contract's declarations, by file and
/// source path, as protox kept them in the descriptor set.
struct Comments {
    by_path: HashMap<(String, Vec<i32>), String>,
}

impl Comments {
    fn of(pool: &DescriptorPool) -> Self {
        let mut by_path = HashMap::new();
        for file in pool.files() {
            let proto = file.file_descriptor_proto();
            let Some(info) = &proto.source_code_info else { continue };
            for location in &info.location {
                if let Some(comment) = &location.leading_comments {
                    let text = comment.lines().map(str::trim).collect::<Vec<_>>().join("\n").trim().to_owned();
                    by_path.insert((file.name().to_owned(), location.path.clone()), text);
                }
            }
        }
        Self { by_path }
    }

    fn find(&self, file: &str, path: &[i32]) -> String {
        self.by_path.get(&(file.to_owned(), path.to_vec())).cloned().unwrap_or_default()
    }

    fn of_method(&self, method: &prost_reflect::MethodDescriptor) -> String {
        self.find(method.parent_file().name(), method.path())
    }

    fn of_message(&self, message: &MessageDescriptor) -> String {
        self.find(message.parent_file().name(), message.path())
    }

    fn of_field(&self, field: &FieldDescriptor) -> String {
        self.find(field.parent_file().name(), field.path())
    }

    fn of_enum(&self, enumeration: &EnumDescriptor) -> String {
        self.find(enumeration.parent_file().name(), enumeration.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_its_parameters_scope_and_errors() {
        let document: Json = serde_json::from_slice(document()).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        let get_symbol = &document["paths"]["/v1/symbols/{ticker}"]["get"];
        assert_eq!(get_symbol["operationId"], "RegistryService_GetSymbol");
        assert_eq!(get_symbol["summary"], "Gets one symbol by ticker.");
        assert_eq!(get_symbol["parameters"][0]["in"], "path");
        assert_eq!(get_symbol["security"][0]["bearer"][0], "registry:read");
        assert_eq!(
            get_symbol["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/google.rpc.Status"
        );
        let candles = &document["paths"]["/v1/symbols/{symbol}/candles"]["get"];
        let names: Vec<&str> =
            candles["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["symbol", "interval", "start_time", "end_time", "page_size", "page_token"]);
        let update = &document["paths"]["/v1/symbols/{ticker}"]["patch"];
        assert!(update["parameters"][0]["description"].as_str().unwrap().starts_with("symbol.ticker"));
        assert_eq!(
            update["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/wizdata.registry.v1.Symbol"
        );
        assert_eq!(document["paths"]["/v1/auth:login"]["post"]["security"], json!([{}]), "Login is public");
        let symbol = &document["components"]["schemas"]["wizdata.registry.v1.Symbol"];
        assert!(symbol["properties"]["ticker"]["description"].as_str().unwrap().contains("Unique identifier"));
        assert!(document["components"]["schemas"]["google.rpc.Status"].is_object());
        assert_eq!(symbol["properties"]["name"]["examples"], json!(["Naspers Ltd"]), "examples from the comments");
        assert_eq!(example_in(r#"Code of the exchange, e.g. "JSE"."#), Some("JSE"));
        assert_eq!(example_in("no example here"), None);
    }
}

// The gateway as a TypeScript/JavaScript program sees it: @connectrpc/connect-node
// over its Connect (JSON and binary) and gRPC-Web transports, with the
// services' descriptors read at run time from the contract's descriptor set
// (`buf build`), so nothing generated is needed.
//
// Usage: node connect_clients.mjs <gateway base URL> <descriptor set> <API key>
// Prints one JSON object of what each transport saw; the Python suite checks it.

import { readFileSync } from "node:fs";

import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";

const [baseUrl, descriptorSet, apiKey] = process.argv.slice(2);
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(descriptorSet)));
const service = (name) => {
  const found = registry.getService(name);
  if (!found) throw new Error(`${name} is not in the descriptor set`);
  return found;
};
const RegistryService = service("wizdata.registry.v1.RegistryService");
const MarketDataService = service("wizdata.marketdata.v1.MarketDataService");
const AuthService = service("wizdata.auth.v1.AuthService");
const StreamingService = service("wizdata.streaming.v1.StreamingService");
const CHANNEL_TRADES = 2;
const keyed = { headers: { "x-api-key": apiKey } };

const transports = {
  connect_json: createConnectTransport({ baseUrl, httpVersion: "1.1" }),
  connect_binary: createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
  grpc_web: createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
};
// A stream of requests needs HTTP/2 in connect-node: ingest over Connect on h2c.
const ingester = createClient(MarketDataService, createConnectTransport({ baseUrl, httpVersion: "2" }));

async function ingestTrade(symbol, price) {
  async function* batches() {
    yield { ticks: [{ symbol, time: timestampNow(), kind: { case: "trade", value: { price, size: 1 } } }] };
  }
  return ingester.ingestTicks(batches(), keyed);
}

async function failure(call) {
  try {
    await call();
  } catch (error) {
    const connectError = ConnectError.from(error);
    return {
      code: Code[connectError.code],
      message: connectError.rawMessage,
      details: connectError.details.map((detail) => ("type" in detail ? detail.type : detail.desc.typeName)),
    };
  }
  return null;
}

/** The first trade the stream carries, ingesting one every 200 ms until it comes. */
async function firstTrade(streaming, symbol, price) {
  const abort = new AbortController();
  const stream = streaming.subscribe({ symbols: [symbol], channels: [CHANNEL_TRADES] }, { signal: abort.signal });
  const ingesting = setInterval(() => ingestTrade(symbol, price).catch((error) => console.error(error)), 200);
  const giveUp = setTimeout(() => abort.abort(), 20000);
  try {
    for await (const message of stream) {
      const event = message.payload.case === "event" ? message.payload.value : null;
      if (event?.payload.case === "trade") {
        return { symbol: event.symbol, sequence: String(event.sequence), price: event.payload.value.price };
      }
    }
    return null;
  } finally {
    clearInterval(ingesting);
    clearTimeout(giveUp);
    abort.abort();
  }
}

const seen = {};
for (const [name, transport] of Object.entries(transports)) {
  const registryClient = createClient(RegistryService, transport);
  const got = await registryClient.getSymbol({ ticker: "AAPL" });
  const page = await registryClient.listSymbols({ pageSize: 3 });
  const who = await createClient(AuthService, transport).whoAmI({}, keyed);
  seen[name] = {
    symbol: got.symbol.ticker,
    exchange: got.symbol.exchange,
    listed: page.symbols.length,
    who: { subject: who.subject, anonymous: who.anonymous, tier: who.tier },
    not_found: await failure(() => registryClient.getSymbol({ ticker: "NOPE.XX" })),
    invalid: await failure(() =>
      createClient(MarketDataService, transport).getQuotes({ symbols: ["AAPL", "NOPE1"] }),
    ),
    trade: await firstTrade(createClient(StreamingService, transport), "TSLA", 610.25),
  };
}
console.log(JSON.stringify(seen));

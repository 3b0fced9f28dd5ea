// The TypeScript client (@wizdata/client, clients/ts) from Node, as an
// application uses it: connect-web's gRPC-Web and Connect transports (what a
// browser uses, over Node's fetch) and connect-node's native gRPC over HTTP/2.
//
// Usage: node wizdata_client.mjs <gateway base URL> <admin API key>
// Prints one JSON object of what each transport saw; the Python suite checks it.

import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  createWizdataClient,
  createWizdataClientOn,
  errorDetails,
  streaming,
} from "@wizdata/client";

const [baseUrl, adminKey] = process.argv.slice(2);

async function failure(call) {
  try {
    await call();
  } catch (error) {
    const found = errorDetails(error);
    return { ...found, code: undefined };
  }
  return null;
}

async function transportSees(client) {
  const symbol = await client.registry.getSymbol({ ticker: "AAPL" });
  const notFound = await failure(() => client.registry.getSymbol({ ticker: "NOPE.XX" }));
  const invalid = await failure(() => client.registry.listSymbols({ pageSize: -1 }));
  const page = await client.registry.listSymbols({ query: "bank", pageSize: 10 });

  // The live stream as an async iterable: the first two quotes, then stop.
  const quotes = [];
  const stop = new AbortController();
  const events = client.streaming.subscribe(
    { symbols: ["BTC/USDT"], channels: [streaming.Channel.QUOTES] },
    { signal: stop.signal },
  );
  for await (const answer of events) {
    if (answer.payload.case === "event" && answer.payload.value.payload.case === "quote") {
      quotes.push(answer.payload.value.payload.value.symbol);
      if (quotes.length === 2) break;
    }
  }
  stop.abort();
  return { ticker: symbol.symbol?.ticker, notFound, invalid, search: page.symbols.map((s) => s.ticker), quotes };
}

const seen = {};
seen.grpc_web = await transportSees(createWizdataClient(baseUrl, { apiKey: adminKey }));
seen.connect = await transportSees(createWizdataClient(baseUrl, { transport: "connect", apiKey: adminKey }));
seen.grpc = await transportSees(
  createWizdataClientOn((interceptors) => createGrpcTransport({ baseUrl, interceptors }), adminKey),
);

const wrongKey = createWizdataClient(baseUrl, { apiKey: "wiz_not_a_key" });
seen.wrong_key = await failure(() => wrongKey.registry.getSymbol({ ticker: "AAPL" }));
// The same client, the key taken away: anonymous calls until refused.
wrongKey.apiKey = undefined;
seen.anonymous = [];
for (let call = 0; call < 3; call += 1) {
  seen.anonymous.push(await failure(() => wrongKey.registry.getSymbol({ ticker: "AAPL" })));
}
seen.rate_limit = wrongKey.rateLimit;
console.log(JSON.stringify(seen));

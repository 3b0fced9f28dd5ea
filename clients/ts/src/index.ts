// The WizData mesh from TypeScript: one client per service over gRPC-Web or
// Connect (browsers and Node), the caller's API key on every call, the
// gateway's rate-limit allowance as last seen, errors decoded with their
// details, and the live streams as async iterables.

import { type Client, type Interceptor, type Transport, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { AuthService } from "./gen/wizdata/auth/v1/auth_service_pb.js";
import { IndicatorService } from "./gen/wizdata/indicator/v1/indicator_service_pb.js";
import { MarketDataService } from "./gen/wizdata/marketdata/v1/market_data_service_pb.js";
import { RegistryService } from "./gen/wizdata/registry/v1/registry_service_pb.js";
import { StreamingService } from "./gen/wizdata/streaming/v1/streaming_service_pb.js";

export * from "./errors.js";
export * as auth from "./gen/wizdata/auth/v1/auth_service_pb.js";
export * as access from "./gen/wizdata/auth/v1/access_pb.js";
export * as indicator from "./gen/wizdata/indicator/v1/indicator_service_pb.js";
export * as marketdata from "./gen/wizdata/marketdata/v1/market_data_service_pb.js";
export * as registry from "./gen/wizdata/registry/v1/registry_service_pb.js";
export * as streaming from "./gen/wizdata/streaming/v1/streaming_service_pb.js";
export * as market from "./gen/wizdata/type/v1/market_pb.js";
export { AuthService, IndicatorService, MarketDataService, RegistryService, StreamingService };

export interface WizdataClientOptions {
  /** gRPC-Web (the default; what every gRPC-Web proxy speaks) or Connect. */
  transport?: "grpc-web" | "connect";
  /** Sent as `authorization: Bearer <key>`; without one the caller is anonymous. */
  apiKey?: string;
  /** The fetch to call with (a test's, or one with credentials settings). */
  fetch?: typeof globalThis.fetch;
}

/** The gateway's `ratelimit-*` headers of the last answer that carried them. */
export interface RateLimit {
  limit: number;
  remaining: number;
  /** Seconds until the allowance is whole again. */
  resetSeconds: number;
}

export interface WizdataClient {
  registry: Client<typeof RegistryService>;
  marketData: Client<typeof MarketDataService>;
  indicators: Client<typeof IndicatorService>;
  streaming: Client<typeof StreamingService>;
  auth: Client<typeof AuthService>;
  /** The key later calls carry; undefined makes them anonymous. */
  apiKey: string | undefined;
  readonly rateLimit: RateLimit | undefined;
}

/** A client of the mesh at `baseUrl` (the gateway, e.g. "http://127.0.0.1:8080",
 * or "" for the page's own origin) over connect-web's fetch transports. */
export function createWizdataClient(baseUrl: string, options: WizdataClientOptions = {}): WizdataClient {
  return createWizdataClientOn(
    (interceptors) =>
      options.transport === "connect"
        ? createConnectTransport({ baseUrl, interceptors, useBinaryFormat: true, fetch: options.fetch })
        : createGrpcWebTransport({ baseUrl, interceptors, fetch: options.fetch }),
    options.apiKey,
  );
}

/** A client over a transport of the caller's making (connect-node's gRPC or
 * Connect transports in Node), given the interceptors that carry the key
 * and read the rate-limit headers. */
export function createWizdataClientOn(
  makeTransport: (interceptors: Interceptor[]) => Transport,
  apiKey?: string,
): WizdataClient {
  let rateLimit: RateLimit | undefined;
  const caller = {
    apiKey,
    get rateLimit() {
      return rateLimit;
    },
  };
  const remember = (headers: Headers) => {
    const seen = readRateLimit(headers);
    if (seen) rateLimit = seen;
  };
  const callerInterceptor: Interceptor = (next) => async (request) => {
    if (caller.apiKey) request.header.set("authorization", `Bearer ${caller.apiKey}`);
    try {
      const response = await next(request);
      remember(response.header);
      return response;
    } catch (error) {
      // A refusal carries the allowance in its headers (gRPC-Web, Connect
      // unary) or trailers; ConnectError merges both into its metadata.
      if (error instanceof Error && "metadata" in error && error.metadata instanceof Headers) remember(error.metadata);
      throw error;
    }
  };
  const transport = makeTransport([callerInterceptor]);
  return Object.assign(caller, {
    registry: createClient(RegistryService, transport),
    marketData: createClient(MarketDataService, transport),
    indicators: createClient(IndicatorService, transport),
    streaming: createClient(StreamingService, transport),
    auth: createClient(AuthService, transport),
  });
}

function readRateLimit(headers: Headers): RateLimit | undefined {
  const limit = headers.get("ratelimit-limit");
  const remaining = headers.get("ratelimit-remaining");
  const reset = headers.get("ratelimit-reset");
  if (limit === null || remaining === null) return undefined;
  return { limit: Number(limit), remaining: Number(remaining), resetSeconds: Number(reset ?? 0) };
}

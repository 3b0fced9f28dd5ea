# The one image every role runs: `wizdata serve <role>` (see helm/wizdata).
#
# Build stage: the release binary. protox compiles the protos, so no protoc
# is needed.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY src src
COPY services services
COPY gateway gateway
# A workspace member (the tests' harness): cargo needs its manifest.
COPY tests/support tests/support
RUN cargo build --release --locked -p wizdata-mesh --bin wizdata \
    && strip target/release/wizdata

# Dashboard stage: the TypeScript client and the page the gateway serves at /.
FROM node:20-bookworm-slim AS web
WORKDIR /src
COPY package.json package-lock.json ./
COPY clients/ts clients/ts
COPY web web
RUN npm ci --no-audit --no-fund --ignore-scripts \
    && npm run -s build -w @wizdata/client \
    && npm run -s build -w @wizdata/dashboard

# Run stage: the binary and CA certificates, as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/wizdata --create-home wizdata
COPY --from=build /src/target/release/wizdata /usr/local/bin/wizdata
COPY --from=web /src/web/dist /usr/share/wizdata/web
USER 10001
WORKDIR /var/lib/wizdata
ENV WIZDATA_DATA_DIR=/var/lib/wizdata \
    WIZDATA_DASHBOARD_DIR=/usr/share/wizdata/web
# The binary binds loopback by default; in a container every port is for others.
ENV WIZDATA_GRPC_ADDR=0.0.0.0:50051 \
    WIZDATA_GATEWAY_ADDR=0.0.0.0:8080 \
    WIZDATA_METRICS_ADDR=0.0.0.0:9464
# gRPC, the gateway, metrics.
EXPOSE 50051 8080 9464
ENTRYPOINT ["wizdata"]
CMD ["serve", "all"]

# Multi-stage build of the agentstream server.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p agentstream

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 agentstream \
 && mkdir -p /app/data && chown agentstream /app/data
WORKDIR /app
COPY --from=build /src/target/release/agentstream /usr/local/bin/agentstream
COPY config ./config
ENV AGENTSTREAM_ENVIRONMENT=production
USER agentstream
VOLUME ["/app/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/3000"]
CMD ["agentstream", "serve"]

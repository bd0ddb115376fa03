# Multi-stage build of the agentstream server and its web app.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# The web tools first (wasm32 target, trunk, wasm-bindgen-cli of Cargo.lock's wasm-bindgen): a layer that
# only changes with the lock file or Trunk.toml.
COPY scripts/install-tools scripts/
COPY Cargo.lock ./
COPY frontend-yew/Trunk.toml frontend-yew/
RUN ./scripts/install-tools web
COPY . .
# The app (trunk, offline) into frontend-yew/dist/, then the server.
RUN ./scripts/build-web --force \
 && cargo build --release --locked -p agentstream

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 agentstream \
 && mkdir -p /app/data && chown agentstream /app/data
WORKDIR /app
COPY --from=build /src/target/release/agentstream /usr/local/bin/agentstream
COPY --from=build /src/frontend-yew/dist /app/web
COPY config ./config
ENV AGENTSTREAM_ENVIRONMENT=production
ENV AGENTSTREAM__SERVER__STATIC_DIR=/app/web
# production listens on 0.0.0.0, which needs an API token: the server refuses to start without one. Pass
# it at run time (-e AGENTSTREAM__AUTH__TOKEN=…, or AGENTSTREAM__AUTH__TOKEN_FILE=/run/secrets/…); never
# bake it into the image.
USER agentstream
VOLUME ["/app/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/3000"]
CMD ["agentstream", "serve"]

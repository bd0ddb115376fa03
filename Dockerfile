# The agentstream server, its web app and the agent CLIs its agents run (Claude Code, Gemini CLI, Codex),
# in one image.
#
#   docker build -t agentstream .
#   docker run --rm -p 127.0.0.1:3000:3000 -v agentstream-data:/app/data \
#     -e AGENTSTREAM__AUTH__TOKEN="$(openssl rand -hex 32)" agentstream
#
# The base images are build arguments, so that the image can be built from local ones where no registry is
# reachable (scripts/docker-check does that): BUILD_IMAGE needs a Rust toolchain (cargo, rustc 1.95 or
# newer) with the wasm32-unknown-unknown target or rustup to add it, a C compiler and pkg-config;
# RUNTIME_IMAGE is a Debian bookworm (apt) on which the server's glibc binary runs. Works with the classic
# builder and with BuildKit.
ARG BUILD_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# The workspace's manifests, lock file and stub sources (scripts/cargo-skeleton): the next stage compiles
# every dependency from them alone, in a layer that only changes when they do. This stage reruns on every
# change, but its output is the same unless a manifest or the lock changed, so the layers after the
# COPY --from below stay cached.
FROM ${BUILD_IMAGE} AS planner
WORKDIR /src
COPY . .
RUN ./scripts/cargo-skeleton /skeleton

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
# The wasm32 target (a no-op when the image has it).
COPY scripts/install-tools scripts/
RUN ./scripts/install-tools web
# The dependencies: the server, the app's builder (xtask) and the app (wasm32), compiled on stubs.
COPY --from=planner /skeleton/ ./
RUN cargo build --release --locked -p agentstream -p xtask \
 && cargo build --release --locked --target wasm32-unknown-unknown -p agentstream-web
# The code. Its files may be older than the stubs' build: touched, so that cargo rebuilds every member.
COPY . .
RUN find . -name '*.rs' -not -path './target/*' -exec touch {} + \
 && cargo build --release --locked -p agentstream -p xtask \
 && target/release/xtask build-web \
 && cp target/release/agentstream /usr/local/bin/agentstream

# The agent CLIs of scripts/install-tools' pinned versions, installed with npm (the runtime needs only
# Node.js, not npm and its hundreds of packages).
FROM ${RUNTIME_IMAGE} AS clis
# npm trusts the system's certificate authorities (Node.js has its own list otherwise).
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/agentstream
COPY scripts/install-tools scripts/
RUN ./scripts/install-tools claude && ./scripts/install-tools gemini && ./scripts/install-tools codex

FROM ${RUNTIME_IMAGE}
# Node.js and git for what agents run; bash for the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates nodejs git bash \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 agentstream \
 && mkdir -p /app/data && chown agentstream /app/data
WORKDIR /app
COPY --from=clis /opt/agentstream/.tools/claude /opt/claude
COPY --from=clis /opt/agentstream/.tools/gemini /opt/gemini
COPY --from=clis /opt/agentstream/.tools/codex /opt/codex
RUN ln -s /opt/claude/node_modules/.bin/claude /usr/local/bin/claude && claude --version \
 && ln -s /opt/gemini/node_modules/.bin/gemini /usr/local/bin/gemini && gemini --version \
 && ln -s /opt/codex/node_modules/.bin/codex /usr/local/bin/codex && codex --version
COPY --from=build /usr/local/bin/agentstream /usr/local/bin/agentstream
COPY --from=build /src/frontend-yew/dist /app/web
COPY config ./config
ENV AGENTSTREAM_ENVIRONMENT=production
ENV AGENTSTREAM__SERVER__STATIC_DIR=/app/web
# claude-code agents run this CLI (setting claude.cli_path); its credentials come from the environment
# (ANTHROPIC_API_KEY) or a `claude login` kept in the user's home (mount a volume on /home/agentstream).
ENV AGENTSTREAM__CLAUDE__CLI_PATH=/opt/claude/node_modules/.bin/claude
# gemini-cli and codex agents likewise (GEMINI_API_KEY, OPENAI_API_KEY or ~/.codex/config.toml, …).
ENV AGENTSTREAM__GEMINI__CLI_PATH=/opt/gemini/node_modules/.bin/gemini
ENV AGENTSTREAM__CODEX__CLI_PATH=/opt/codex/node_modules/.bin/codex
# production listens on 0.0.0.0, which needs an API token: the server refuses to start without one. Pass
# it at run time (-e AGENTSTREAM__AUTH__TOKEN=…, or AGENTSTREAM__AUTH__TOKEN_FILE=/run/secrets/…); never
# bake it into the image.
USER agentstream
VOLUME ["/app/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s \
  CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${AGENTSTREAM__SERVER__PORT:-3000}"]
CMD ["agentstream", "serve"]

# syntax=docker/dockerfile:1
# livechat: a release build on Debian, run on Debian slim as an unprivileged
# user. Not built on the development machine (it cannot pull images); see
# docs/OPERATIONS.md, Container image.

# ---- build ------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
# The whole tree: migrations and the committed web UI (ui/dist) are embedded
# into the binary at compile time, so the runtime image needs no files beside it.
COPY . .
# Cache mounts keep the registry and build outputs between builds; the binary
# is copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p livechat --bin livechat \
    && install -D -m 0755 target/release/livechat /out/livechat

# ---- run --------------------------------------------------------------------
FROM debian:bookworm-slim
# No OpenSSL or CA bundle needed: webhooks use rustls with built-in roots.
# sqlite3 is there for online backups (`VACUUM INTO`, `.backup`) of the volume.
RUN apt-get update \
    && apt-get install -y --no-install-recommends sqlite3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 livechat \
    && useradd --system --uid 10001 --gid livechat --home-dir /var/lib/livechat --shell /usr/sbin/nologin livechat \
    && install -d -o livechat -g livechat -m 0750 /var/lib/livechat
COPY --from=builder /out/livechat /usr/local/bin/livechat

# Every setting is a LIVECHAT_* variable (docs/OPERATIONS.md). A token key
# (LIVECHAT_JWT_SECRET, or a PEM / JWKS file) must be supplied at run time;
# without one the server refuses to start. For several nodes, set
# LIVECHAT_DATABASE_URL to a postgres:// URL instead of the SQLite file.
ENV LIVECHAT_BIND=0.0.0.0:8080 \
    LIVECHAT_DATABASE_URL=sqlite:///var/lib/livechat/livechat.db \
    LIVECHAT_LOG_FORMAT=json

USER livechat:livechat
WORKDIR /var/lib/livechat
VOLUME ["/var/lib/livechat"]
EXPOSE 8080
# No HEALTHCHECK: orchestrators probe GET /healthz (liveness) and GET /readyz
# (readiness) over HTTP, and the slim image carries no HTTP client to do it.
# SIGTERM drains in-flight requests for LIVECHAT_SHUTDOWN_TIMEOUT (10 s).
STOPSIGNAL SIGTERM
# `docker run IMAGE migrate` runs the migrations alone with the same settings.
ENTRYPOINT ["/usr/local/bin/livechat"]
CMD ["serve"]

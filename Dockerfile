# hookguard container image.
#
#   docker build -t hookguard:0.1.0 .
#   docker run --rm -v "$PWD/config.toml:/etc/hookguard/config.toml:ro" \
#       -p 8000:8000 hookguard:0.1.0
#
# Ports: 8000 is the webhook listener (server.listen), 9901 the admin
# endpoints /healthz /readyz /metrics (server.admin_listen; hookguard binds it
# to 127.0.0.1 unless the config says otherwise, as the Helm chart's does).
# Config: /etc/hookguard/config.toml, mounted read-only; none is baked in.
# Runs as UID/GID 65532 (distroless "nonroot") with no shell in the image.

# Build stage: the same toolchain as CI, dependencies from the committed
# Cargo.lock only. config.example.toml is compiled in (`hookguard demo`).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock config.example.toml ./
COPY src ./src
RUN cargo build --release --locked --bin hookguard

# Runtime stage: glibc, libgcc and CA certificates, nothing else. hookguard
# is pure Rust and links no OpenSSL: it needs libc, libm and libgcc_s only.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/hookguard /usr/local/bin/hookguard
USER 65532:65532
EXPOSE 8000 9901
ENTRYPOINT ["/usr/local/bin/hookguard"]
CMD ["serve", "--config", "/etc/hookguard/config.toml"]

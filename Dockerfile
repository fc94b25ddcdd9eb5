# StreamForge's image: one binary, `streamforge`, and the bundled recordings for `--offline`.
#   docker build -t registry.example.com/streamforge/streamforge:0.1.0 .        (docs/operations.md)
# Stage 1 builds the release binary with the cluster's features; stage 2 is a distroless runtime —
# glibc, libgcc, libstdc++, OpenSSL and CA certificates, no shell, no package manager — running as the
# numeric non-root user 10001 that the manifests' securityContext names.

FROM rust:1.95-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# librdkafka is compiled from source (cmake, a C++ compiler) against the system's OpenSSL and zlib.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY assets ./assets
RUN cargo build --release --locked --features kafka,postgres,kubernetes,trainer \
    && strip target/release/streamforge \
    && mkdir -p /out/lib \
    && cp target/release/streamforge /out/ \
    && cp "$(dpkg -L zlib1g | grep '/libz.so.1$')" /out/lib/

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
# zlib is the one library the binary needs that distroless/cc does not carry.
COPY --from=build /out/lib/libz.so.1 /usr/lib/x86_64-linux-gnu/libz.so.1
COPY --from=build /out/streamforge /usr/local/bin/streamforge
# The recordings `node --offline`, `run --offline`, `graph --offline` and `train --offline` read
# (data/sample/PROVENANCE.md, data/markets/PROVENANCE.md), at the paths the configs name.
COPY data/sample /opt/streamforge/data/sample
COPY data/markets /opt/streamforge/data/markets
WORKDIR /opt/streamforge
USER 10001:10001
EXPOSE 9400
ENTRYPOINT ["/usr/local/bin/streamforge"]
CMD ["node", "--offline"]

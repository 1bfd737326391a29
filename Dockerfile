# batchgate container image.
#
#   docker build -t batchgate:0.1.0 .
#
# Build stage: the Rust toolchain builds the release binary (protoc is
# vendored by a build dependency, so nothing else is needed).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY proto ./proto
COPY crates ./crates
COPY examples ./examples
RUN cargo build --release --locked --bin batchgate \
 && cp target/release/batchgate /batchgate

# Run stage: glibc, CA certificates and a non-root user, nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /batchgate /usr/local/bin/batchgate
USER nonroot:nonroot
# The embedded config keeps its job store under the working directory
# (batchgate-data/): the user's home is writable. The chart mounts a
# volume at /var/lib/batchgate for it instead (jobs.enabled).
WORKDIR /home/nonroot
# glibc: two arenas, and large buffers (a 4 MiB message) mapped and given
# back instead of kept, so RSS falls back after a burst (README, "Limits").
ENV MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072
# gRPC, metrics, control, plaintext health.
EXPOSE 50051 9464 50053 50054
ENTRYPOINT ["/usr/local/bin/batchgate"]
CMD ["serve", "--grpc-addr", "0.0.0.0:50051", "--metrics-addr", "0.0.0.0:9464"]

# cosmovisor as PID 1 (it reaps zombies itself when it is PID 1). Put the daemon binaries in the
# home volume (`cosmovisor init <path>` in an init step), e.g.:
#   docker build -t cosmovisor .
#   docker run -v panacea:/home/panacea/.panacea -e DAEMON_NAME=panacead cosmovisor
# The daemon must run on this image's libc (glibc, Debian 12); put shared libraries such as
# libwasmvm.so in upgrades/<name>/lib/ (cosmovisor adds it to LD_LIBRARY_PATH).

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin cosmovisor

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /src/target/release/cosmovisor /usr/local/bin/cosmovisor
ENV DAEMON_HOME=/home/panacea/.panacea \
    DAEMON_NAME=panacead \
    DAEMON_SHUTDOWN_GRACE=30s \
    COSMOVISOR_LOG_FORMAT=json \
    COSMOVISOR_COLOR_LOGS=false
VOLUME ["/home/panacea/.panacea"]
# P2P, RPC, gRPC of the node; cosmovisor's metrics when COSMOVISOR_METRICS_ADDR=0.0.0.0:9102.
EXPOSE 26656 26657 9090 9102
# docker stop sends SIGTERM; give it more than DAEMON_SHUTDOWN_GRACE: `docker stop -t 60`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cosmovisor"]
CMD ["run", "start"]

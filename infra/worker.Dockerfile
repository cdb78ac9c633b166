# The always-on worker (wa-worker) of the AWS deployment: holds the WhatsApp sessions, reads
# commands from the SQS FIFO commands queue, writes state to DynamoDB. Session keys live under
# WA_DATA_DIR, the EFS volume the task mounts at /data (see template.yaml).
#
#   docker buildx build --platform linux/arm64 -f infra/worker.Dockerfile -t wa-worker .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p wa-worker \
 && cp target/release/wa-worker /wa-worker

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home wa
COPY --from=build /wa-worker /usr/local/bin/wa-worker
USER 10001
ENV WA_DATA_DIR=/data RUST_LOG=info
# SIGTERM (ECS stopping the task) drains: in-flight commands finish or come back to the queue.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/wa-worker"]

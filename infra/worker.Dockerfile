# The always-on worker (wa-worker) of the AWS deployment: holds the WhatsApp sessions, reads
# commands from the SQS FIFO commands queue, writes state to DynamoDB. Session keys live under
# WA_DATA_DIR, the EFS volume the task mounts at /data (see template.yaml).
#
#   scripts/worker-image --stack <stack>     # builds for linux/arm64 and pushes to the stack's ECR
#   docker buildx build --platform linux/arm64 -f infra/worker.Dockerfile -t wa-worker .
#
# .dockerignore keeps target/, .venv, data/ and secrets out of the build context.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p wa-worker \
 && cp target/release/wa-worker /wa-worker

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home wa \
 && mkdir -p /run/wa-worker \
 && chown 10001:10001 /run/wa-worker
COPY --from=build /wa-worker /usr/local/bin/wa-worker
USER 10001
ENV WA_DATA_DIR=/data RUST_LOG=info
# The heartbeat's directory: ECS mounts the task's `run` volume here, with this ownership.
VOLUME ["/run/wa-worker"]
# SIGTERM (ECS stopping the task) drains: in-flight commands finish or come back to the queue.
STOPSIGNAL SIGTERM
# The container's health check runs `wa-worker health` (template.yaml, HealthCheck).
ENTRYPOINT ["/usr/local/bin/wa-worker"]

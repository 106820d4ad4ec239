# The clb-direct relay image (infra/k8s/base/relay.yaml runs `clb-direct relay ...`).
# Build from the repository root:  docker build -f infra/docker/relay.Dockerfile -t <registry>/clb-direct-relay:<tag> .
# Dependencies come from uv.lock (runtime only, no dev or demo extras); the process runs as 65532, read-only root.
FROM python:3.11-slim-bookworm AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/app/venv
RUN pip install --no-cache-dir "uv>=0.4,<1"
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY shared ./shared
COPY relay ./relay
COPY cli ./cli
COPY functions ./functions
COPY emulators ./emulators
COPY demo ./demo
COPY limited_http ./limited_http
COPY wire_time ./wire_time
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim-bookworm
COPY --from=build /app/venv /app/venv
ENV PATH=/app/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["clb-direct"]
CMD ["relay", "--sources", "watch,audit", "--host", "0.0.0.0", "--port", "8443"]

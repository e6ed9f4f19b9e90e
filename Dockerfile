# weightinit gRPC server image.
#   CPU (default, slim):  docker build -t weightinit .
#   CUDA + CuPy:          docker build --target cuda -t weightinit:cuda .
#   run:                  docker run --rm -p 50051:50051 weightinit
# Both images serve on 0.0.0.0:50051, stop gracefully on SIGTERM (health NOT_SERVING, in-flight
# streams drained) and report health through grpc.health.v1 (`weightinit health`).

ARG PYTHON_VERSION=3.12
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-runtime-ubuntu24.04

# -- build the wheel once, for both images -----------------------------------
FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY weightinit ./weightinit
COPY server ./server
COPY client ./client
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# -- CUDA image: the same server with the CuPy backend ------------------------
FROM ${CUDA_IMAGE} AS cuda
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/weightinit
ENV PATH=/opt/weightinit/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir "$(ls /wheels/weightinit-*.whl)[gpu,bf16]" \
 && rm -rf /wheels \
 && useradd --system --uid 10001 weightinit
USER weightinit
EXPOSE 50051
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 \
  CMD ["weightinit", "health", "--server", "127.0.0.1:50051"]
ENTRYPOINT ["weightinit", "serve", "--host", "0.0.0.0", "--port", "50051"]
CMD ["--backend", "cupy"]

# -- CPU image (default target: last stage) ----------------------------------
FROM python:${PYTHON_VERSION}-slim AS cpu
ENV PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/opt/weightinit/numba-cache
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir "$(ls /wheels/weightinit-*.whl)[bf16]" \
 && rm -rf /wheels \
 && useradd --system --uid 10001 weightinit
# Compile the JIT kernels at build time (the ~30 s the server otherwise spends on its first start) into
# NUMBA_CACHE_DIR, owned by the server's user: Numba only uses a cache directory it can write. Numba keys
# the cache by CPU model; on a host whose CPU differs from the build machine's, the first start in each
# container compiles again (and says so in its log).
RUN mkdir -p "$NUMBA_CACHE_DIR" \
 && python -c "from weightinit.backends import get_backend; get_backend('numba').warmup()" \
 && chown -R weightinit "$NUMBA_CACHE_DIR"
USER weightinit
EXPOSE 50051
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=10s --start-period=30s --retries=3 \
  CMD ["weightinit", "health", "--server", "127.0.0.1:50051"]
ENTRYPOINT ["weightinit", "serve", "--host", "0.0.0.0", "--port", "50051"]
CMD ["--backend", "auto"]

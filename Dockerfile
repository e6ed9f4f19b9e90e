# weightinit gRPC server image.
#   CPU (default, slim):  docker build -t weightinit .
#   CUDA + CuPy:          docker build --target cuda -t weightinit:cuda .
#   run (TLS + tokens):   docker run --rm -p 50051:50051 -v $PWD/secrets:/secrets:ro \
#                           -e WEIGHTINIT_TLS_CERT=/secrets/tls.crt -e WEIGHTINIT_TLS_KEY=/secrets/tls.key \
#                           -e WEIGHTINIT_AUTH_TOKENS=/secrets/tokens weightinit
#   run (trusted network, plaintext, no auth: an explicit choice):
#                         docker run --rm -p 50051:50051 -e WEIGHTINIT_INSECURE_BIND_ALL=1 weightinit
# Both images bind 0.0.0.0:50051 and refuse to start plaintext without tokens there unless
# WEIGHTINIT_INSECURE_BIND_ALL=1 (see README "Run it on a network"). grpc.health.v1 is also served
# alone, plaintext, on 8081 (probes), metrics on 9090. They stop gracefully on SIGTERM (health
# NOT_SERVING, in-flight streams drained). BLAS runs single-threaded: the cost limits are
# measured that way (threaded BLAS spinning on a busy host made QR 5-20x slower).

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
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    OPENBLAS_NUM_THREADS=1 \
    WEIGHTINIT_HOST=0.0.0.0 \
    WEIGHTINIT_HEALTH_PORT=8081 \
    WEIGHTINIT_METRICS_PORT=9090
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir "$(ls /wheels/weightinit-*.whl)[gpu,bf16]" \
 && rm -rf /wheels \
 && useradd --system --uid 10001 weightinit
USER weightinit
EXPOSE 50051 8081 9090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 \
  CMD ["weightinit", "health", "--server", "127.0.0.1:8081"]
ENTRYPOINT ["weightinit", "serve", "--port", "50051"]
CMD ["--backend", "cupy"]

# -- CPU image (default target: last stage) ----------------------------------
FROM python:${PYTHON_VERSION}-slim AS cpu
ENV PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/opt/weightinit/numba-cache \
    OPENBLAS_NUM_THREADS=1 \
    WEIGHTINIT_HOST=0.0.0.0 \
    WEIGHTINIT_HEALTH_PORT=8081 \
    WEIGHTINIT_METRICS_PORT=9090
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
EXPOSE 50051 8081 9090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=10s --start-period=30s --retries=3 \
  CMD ["weightinit", "health", "--server", "127.0.0.1:8081"]
ENTRYPOINT ["weightinit", "serve", "--port", "50051"]
CMD ["--backend", "auto"]

# syntax=docker/dockerfile:1
# Every MPR service's image, chosen by one build argument. From the repository root:
#   docker build --build-arg SERVICE=catalog -t mpr-catalog .
# SERVICE is api, catalog, scanner or transcoder; the image runs its console script, mpr-<SERVICE>.
ARG SERVICE=api

FROM python:3.11-slim-bookworm AS build
ARG SERVICE
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir uv==0.13.9
COPY pyproject.toml uv.lock ./
COPY libs libs
COPY services services
RUN uv sync --frozen --no-dev --no-editable --package "mpr-${SERVICE}" \
 && test -x "/app/.venv/bin/mpr-${SERVICE}" \
 && ln -s "mpr-${SERVICE}" /app/.venv/bin/mpr-service

FROM python:3.11-slim-bookworm
ARG SERVICE

# ffmpeg/ffprobe from Debian (the same package the embedded default uses), where they run: the catalog
# probes sources, the transcoders encode (and draw text watermarks in DejaVu Sans).
RUN case "${SERVICE}" in \
      catalog|transcoder) apt-get update \
        && apt-get install -y --no-install-recommends ffmpeg fonts-dejavu-core \
        && rm -rf /var/lib/apt/lists/* ;; \
    esac

RUN groupadd --system --gid 10001 mpr \
 && useradd --system --uid 10001 --gid mpr --home-dir /app --shell /usr/sbin/nologin mpr
WORKDIR /app
COPY --from=build --chown=root:root /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 LOG_FORMAT=json MPR_SERVICE=${SERVICE}
# 9090: /metrics and /health/* (METRICS_PORT) in every service, for the cluster only; 8000: the API,
# what proxies publish. The settings of one service are ignored by the others.
EXPOSE 8000 9090
ENV METRICS_PORT=9090 API_HOST=0.0.0.0 API_PORT=8000 TRANSCODER_WORKDIR=/tmp/mpr-transcoder
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen(\"http://127.0.0.1:9090/health/ready\", timeout=2).status != 200)"]
USER 10001:10001
ENTRYPOINT ["mpr-service"]

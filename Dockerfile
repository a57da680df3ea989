# CityGrid Command image for real deployments (docker-compose.yml). The local stack
# (`make demo`) runs the same code without Docker.
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY command/web/package.json command/web/package-lock.json ./
COPY scripts/vendor-web.sh ./
RUN npm ci --no-audit --no-fund --loglevel=error && ./vendor-web.sh node_modules /vendor

FROM python:3.11-slim-bookworm
# chromium prints the after-action report's PDF (command.pdf); fonts-noto-cjk so its Chinese shows.
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg curl chromium fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml requirements.lock ./
COPY command command
COPY gis gis
COPY video video
COPY devices devices
COPY workflows workflows
COPY --from=web /vendor command/web/static/vendor
RUN pip install --no-cache-dir -c requirements.lock . \
 && useradd --system --home /app citygrid && mkdir -p /data && chown citygrid /data
USER citygrid
ENV CITYGRID_DATA_DIR=/data CITYGRID_HTTP_HOST=0.0.0.0
EXPOSE 8000
CMD ["citygrid", "serve"]

# One image for the three services: `docker run IMAGE detect --config /etc/iotwatch/detector.yaml`.
# Build: docker build -t iotwatch .   (docker compose builds it for you)

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY iotwatch iotwatch
COPY publisher publisher
COPY detector detector
COPY alerting alerting
# Wheels for the project and every dependency, so the runtime stage needs no compiler or cache.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    # The healthcheck asks the service's own liveness (/health/live: threads running; an
    # outage only fails /health/ready); compose puts every service's HTTP server on this
    # port (IOTWATCH__HTTP__HOST/PORT), override when you change it.
    IOTWATCH_HEALTH_URL=http://127.0.0.1:8080/health/live
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/iotwatch iotwatch
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
# Sample configuration (no secrets: they come from the environment or *_file keys).
COPY config /etc/iotwatch
USER iotwatch
# Spools, checkpoints and outboxes live here; mount a volume to keep them across restarts.
WORKDIR /var/lib/iotwatch
VOLUME ["/var/lib/iotwatch"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['IOTWATCH_HEALTH_URL'], timeout=4)"]
ENTRYPOINT ["iotwatch"]
CMD ["--help"]

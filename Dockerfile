# retailflow worker and API (docker-compose.temporal.yml builds it; `retailflow worker` / `retailflow api`).
# Configuration only through RETAILFLOW_* environment variables (retailflow/settings.py).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY canonical ./canonical
COPY adapters ./adapters
COPY activities ./activities
COPY workflows ./workflows
COPY runtime ./runtime
COPY starters ./starters
COPY api ./api
COPY retailflow ./retailflow
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin retailflow \
    && rm -rf /app/build

USER retailflow
EXPOSE 8000
# exec form: the process is PID 1 and gets SIGTERM itself (the worker then shuts down gracefully)
CMD ["retailflow", "api"]

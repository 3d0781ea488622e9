# lsready: the Slack bot and CLI, without the embedded engines of the demo/test extras.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY checks ./checks
COPY runbooks ./runbooks
COPY storage ./storage
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
# MALLOC_ARENA_MAX: probes and refreshes run on short-lived threads; glibc's per-thread arenas
# would otherwise fragment and let RSS creep (bench/README.md, memory).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    LSREADY_DATA_DIR=/data
RUN useradd --create-home --uid 10001 --user-group lsready \
    && mkdir /data && chown 10001:10001 /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001:10001
WORKDIR /home/lsready
VOLUME ["/data"]
EXPOSE 3000 9100
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9100/healthz', timeout=2)"]
ENTRYPOINT ["lsready"]
CMD ["serve"]

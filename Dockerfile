# The alert receiver. Build: docker build -t alert-receiver .
# Run (tokens are required on 0.0.0.0; see README.md "Deploying beside Prometheus..."):
#   docker run -p 9095:9095 -e RECEIVER_WEBHOOK_TOKEN=... -e RECEIVER_API_TOKEN=... alert-receiver
# or give files instead: RECEIVER_WEBHOOK_TOKEN_FILE=/run/secrets/..., any RECEIVER_*_FILE.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/receiver
WORKDIR /src
COPY pyproject.toml README.md ./
COPY receiver ./receiver
RUN /opt/receiver/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN groupadd --system --gid 10001 receiver \
 && useradd --system --uid 10001 --gid receiver --no-create-home --home-dir /var/lib/receiver \
      --shell /usr/sbin/nologin receiver \
 && install -d -o receiver -g receiver -m 0750 /var/lib/receiver
COPY --from=build /opt/receiver /opt/receiver
COPY routing_rules.yaml /etc/receiver/routing_rules.yaml
COPY docker/entrypoint.sh /usr/local/bin/receiver-entrypoint
ENV PATH=/opt/receiver/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RECEIVER_HOST=0.0.0.0 \
    RECEIVER_PORT=9095 \
    RECEIVER_RULES=/etc/receiver/routing_rules.yaml \
    RECEIVER_DATABASE_URL=sqlite:////var/lib/receiver/receiver.db \
    RECEIVER_LOG_FORMAT=json
USER 10001:10001
WORKDIR /var/lib/receiver
EXPOSE 9095
# The slim image has no curl: ask /healthz with the standard library.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('RECEIVER_PORT', '9095') + '/healthz', timeout=4)"]
ENTRYPOINT ["/bin/sh", "/usr/local/bin/receiver-entrypoint"]
CMD ["receiver", "serve"]

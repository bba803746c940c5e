# Prometheus from Debian 12's own package, for hosts that cannot pull prom/prometheus (no
# registry): docker-compose.yml takes it through PROMETHEUS_IMAGE (docs/deploy.md).
#   podman build -f docker/prometheus.Dockerfile -t localhost/sae-prometheus docker
FROM debian:12
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus && chown prometheus:prometheus /prometheus
USER prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]

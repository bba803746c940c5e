# The runtime stage of docker/Dockerfile around binaries built on the host (Debian 12, the same
# libraries), for tests that must not spend a full build inside the image. The context is a
# folder holding bin/{saectl,sae-controller,sae-activation-server,sae-trainer},
# gpt2-tokenizer/ and docker/{runtime-packages.txt,healthcheck.sh}; scripts/compose-test.sh
# makes it.
FROM debian:12-slim
ENV DEBIAN_FRONTEND=noninteractive SAE_CACHE_DIR=/opt/sae/cache \
    GRPC_DNS_RESOLVER=native
COPY docker/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update -qq \
    && grep -v '^#' /tmp/runtime-packages.txt | xargs apt-get install -y -qq --no-install-recommends \
    && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
    && useradd --uid 10001 --user-group --no-log-init --home-dir /var/lib/sae --create-home --shell /usr/sbin/nologin sae
COPY bin/ /usr/local/bin/
COPY gpt2-tokenizer/ /opt/sae/cache/gpt2-tokenizer/
COPY docker/healthcheck.sh /usr/local/bin/sae-healthcheck
# Last, so that a new revision does not invalidate the apt layer above.
ARG SAE_VERSION=0.1.0
ARG SAE_REVISION=unknown
# The release, readable in a container. It also makes the LABEL below follow a new SAE_REVISION
# under podman: buildah reuses a cached LABEL step whatever the build argument, a RUN step not.
RUN printf 'sae-service %s (revision %s)\n' "$SAE_VERSION" "$SAE_REVISION" > /etc/sae-service-release
LABEL org.opencontainers.image.title="sae-service" \
      org.opencontainers.image.version="${SAE_VERSION}" \
      org.opencontainers.image.revision="${SAE_REVISION}" \
      org.opencontainers.image.base.name="debian:12-slim"
USER sae
WORKDIR /var/lib/sae
EXPOSE 7070 50051 29500 9400 9401 9402
HEALTHCHECK --interval=15s --timeout=6s --start-period=60s --retries=3 CMD ["sae-healthcheck"]
ENTRYPOINT []
CMD ["saectl", "--help"]

#!/bin/bash
# The container's HEALTHCHECK: GET /healthz on this process's metrics port
# ($SAE_METRICS_PORT, 9400 by default), healthy on HTTP 200. /healthz answers 503 when the
# process is not healthy (docs/operations.md), so this checks more than a listening socket.
# Bash's /dev/tcp keeps curl out of the image.
set -u
port="${SAE_METRICS_PORT:-9400}"
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
IFS= read -r -t 5 status <&3 || exit 1
case "$status" in
  *" 200 "*) exit 0 ;;
  *) echo "healthz: $status"; exit 1 ;;
esac

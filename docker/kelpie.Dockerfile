# The kelpie agent image, assembled FROM scratch out of a context that scripts/build-image.sh prepares:
#   kelpie                 statically linked binary (glibc, +crt-static)
#   ca-certificates.crt    the build host's CA bundle
#   passwd, group          a non-root user, uid/gid 10001
#   nsswitch.conf          "hosts: files dns" for glibc's resolver
#   run-datadog/           an empty directory, becomes /var/run/datadog owned by 10001
# Nothing is pulled. The published image is built by the multi-stage ../Dockerfile instead; keep the two alike.
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY passwd group nsswitch.conf /etc/
# A /tmp for the user (pprof keeps CPU samples in a temporary file); mount a tmpfs there with --read-only.
COPY --chown=10001:10001 tmp/ /tmp/
COPY kelpie /usr/bin/kelpie
# Owned by the agent's user so it can create its socket there (a named volume inherits this ownership).
COPY --chown=10001:10001 run-datadog/ /var/run/datadog/

# Datadog Agent defaults for running in a container (SPEC.md §2, §8).
ENV HOST_PROC=/host/proc \
    HOST_SYS=/host/sys \
    DD_DOGSTATSD_NON_LOCAL_TRAFFIC=true \
    DD_APM_NON_LOCAL_TRAFFIC=true \
    DD_DOGSTATSD_SOCKET=/var/run/datadog/dsd.socket \
    KELPIE_STATUS_ADDR=127.0.0.1:5002 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

# Documented mounts (see docs/deploy.md):
#   -v /var/run/docker.sock:/var/run/docker.sock:ro        Docker metrics and events (with --group-add <socket gid>)
#   -v /proc/:/host/proc/:ro                               host metrics
#   -v /sys/fs/cgroup/:/host/sys/fs/cgroup:ro              container metrics (cgroup v1 and v2)
#   -v /var/run/datadog/:/var/run/datadog/                 DogStatsD Unix socket shared with services
VOLUME ["/var/run/datadog"]
# DogStatsD (UDP), profiles (the trace agent's port). The status server stays on 127.0.0.1:5002 inside the
# container: the HEALTHCHECK and `docker exec kelpie kelpie status` reach it there.
EXPOSE 8125/udp 8126/tcp

USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/bin/kelpie", "status", "--health"]
ENTRYPOINT ["/usr/bin/kelpie"]
CMD ["agent"]

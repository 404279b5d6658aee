# The example service (examples/service), FROM scratch. It sends DogStatsD over the agent's Unix socket when
# /var/run/datadog is shared with the agent (DD_DOGSTATSD_URL=unix:///var/run/datadog/dsd.socket), else over UDP
# to DD_AGENT_HOST. Context prepared by scripts/build-image.sh.
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY passwd group nsswitch.conf /etc/
# A /tmp for the user (pprof keeps CPU samples in a temporary file); mount a tmpfs there with --read-only.
COPY --chown=10001:10001 tmp/ /tmp/
COPY example-service /usr/bin/example-service
# A writable /tmp: the CPU profiler (pprof) creates a temporary file when it starts, and FROM scratch has no /tmp.
COPY --chown=10001:10001 run-datadog/ /tmp/
ENV DD_SERVICE=example-service \
    DD_PROFILING_ENABLED=true
USER 10001:10001
ENTRYPOINT ["/usr/bin/example-service"]

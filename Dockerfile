# The published kelpie agent image: built from public base images, final image FROM scratch.
#   docker build -t kelpie .
# On a machine that cannot pull images use scripts/build-image.sh, which builds the same final image from a
# binary built on the host (docker/kelpie.Dockerfile). Keep the final stages of the two alike.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Static glibc binary: a scratch image has no loader. (--target keeps RUSTFLAGS off build scripts.)
RUN RUSTFLAGS="-C target-feature=+crt-static" \
      cargo build --release --locked --target x86_64-unknown-linux-gnu --bin kelpie \
 && cp target/x86_64-unknown-linux-gnu/release/kelpie /kelpie \
 && strip --strip-debug /kelpie \
 && mkdir -p /rootfs/var/run/datadog /rootfs/tmp

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY docker/passwd docker/group docker/nsswitch.conf /etc/
COPY --from=build /kelpie /usr/bin/kelpie
COPY --from=build --chown=10001:10001 /rootfs/var/run/datadog/ /var/run/datadog/
# A /tmp for the user (pprof keeps CPU samples in a temporary file); mount a tmpfs there with --read-only.
COPY --from=build --chown=10001:10001 /rootfs/tmp/ /tmp/

ENV HOST_PROC=/host/proc \
    HOST_SYS=/host/sys \
    DD_DOGSTATSD_NON_LOCAL_TRAFFIC=true \
    DD_APM_NON_LOCAL_TRAFFIC=true \
    DD_DOGSTATSD_SOCKET=/var/run/datadog/dsd.socket \
    KELPIE_STATUS_ADDR=127.0.0.1:5002 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

# Mounts: /var/run/docker.sock (ro), /proc → /host/proc (ro), /sys/fs/cgroup → /host/sys/fs/cgroup (ro),
# /var/run/datadog (the DogStatsD socket shared with services). See docs/deploy.md.
VOLUME ["/var/run/datadog"]
EXPOSE 8125/udp 8126/tcp

USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/bin/kelpie", "status", "--health"]
ENTRYPOINT ["/usr/bin/kelpie"]
CMD ["agent"]

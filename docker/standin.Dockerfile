# The Datadog API stand-in (kelpie-standin) used by the end-to-end tests, FROM scratch like the agent image.
# Context prepared by scripts/build-image.sh: kelpie-standin (static), ca-certificates.crt, passwd, group, nsswitch.conf.
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY passwd group nsswitch.conf /etc/
# A /tmp for the user (pprof keeps CPU samples in a temporary file); mount a tmpfs there with --read-only.
COPY --chown=10001:10001 tmp/ /tmp/
COPY kelpie-standin /usr/bin/kelpie-standin
EXPOSE 8080/tcp
USER 10001:10001
ENTRYPOINT ["/usr/bin/kelpie-standin"]
CMD ["--listen", "0.0.0.0:8080"]

#!/usr/bin/env bash
# End-to-end load run: a release `kelpie agent` (local mode, or forwarding to an intake stand-in with
# INTAKE=1) receives DogStatsD over UDP loopback from `kelpie-loadgen`, which reports what it sent, what the
# agent counted (loss), the agent's CPU per metric and its peak RSS. Bounded by --seconds.
#
#   benches/load.sh [loadgen args...]        e.g. benches/load.sh --rate 300000 --contexts 100000 --seconds 10
#   benches/load.sh --kind mix --rate 2000000 --contexts 100000            the realistic mix (c/g/h/d/s)
#   benches/load.sh --kind c --once --contexts 40000 --burst 40            a deploy's burst of new contexts
#
# The agent runs with its DEFAULT settings (receive buffer, memory limit, workers, no core pinning) unless one
# of these says otherwise (label such runs as tuned):
# RCVBUF=N sets dogstatsd_so_rcvbuf; MEMORY_LIMIT=…; PIPELINES=N sets dogstatsd_pipeline_count;
# AGENT_CPU=0 / LOADGEN_CPU=1 pin the two processes to cores (taskset).
# Environment: INTAKE=1 forwards to a local kelpie-standin (encode + compress + send included in the CPU);
# IDLE_SECONDS=N measures the
# idle RSS first; CONTAINER_FIELD=1 starts a container (kelpie-test/tool, testimages/build.sh), turns on
# container collection and client origin detection, and has every line name that container (`|c:ci-<id>`);
# UDS=1 sends over the agent's Unix datagram socket instead, from a container (kelpie-test/tool image, host pid
# namespace so the agent's pid is visible), with origin detection on: every datagram is tagged by its sender.
set -euo pipefail
cd "$(dirname "$0")/.."
# The agent and stand-in are the static release binaries scripts/build-image.sh builds (same cargo invocation, so
# the two share one build); the load generator is an ordinary release build.
if [ "${NO_BUILD:-0}" != 1 ]; then
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target x86_64-unknown-linux-gnu \
    -p kelpie --bin kelpie -p kelpie-standin --bin kelpie-standin -p kelpie-example-service --bin example-service \
    -p kelpie-benches --bin kelpie-loadgen
fi
bin=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release
# Static too, so that it also runs in a FROM-scratch container (UDS=1).
loadgen=$bin/kelpie-loadgen
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
status=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pids=()
pids_ctr=
sock_dir=
cleanup() {
  # Last started first, each waited for: the agent's last flush reaches the stand-in before it stops.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  if [ -n "$pids_ctr" ]; then docker rm -f "$pids_ctr" >/dev/null 2>&1 || true; fi
  if [ -n "$sock_dir" ]; then rm -rf "$sock_dir"; fi
}
trap cleanup EXIT
env_extra=()
loadgen_extra=()
if [ "${CONTAINER_FIELD:-0}" = 1 ]; then
  testimages/build.sh
  ctr=$(docker run -d --rm --label kelpie-test=1 kelpie-test/tool:latest sleep)
  pids_ctr=$ctr
  env_extra+=(DD_CONTAINER_COLLECTION=true DD_DOGSTATSD_ORIGIN_DETECTION_CLIENT=true)
  loadgen_extra=(--container-field "ci-$ctr")
fi
if [ "${UDS:-0}" = 1 ]; then
  testimages/build.sh
  sock_dir=$(mktemp -d)
  chmod 0755 "$sock_dir"
  env_extra+=(DD_DOGSTATSD_SOCKET="$sock_dir/dsd.socket" DD_DOGSTATSD_ORIGIN_DETECTION=true DD_CONTAINER_COLLECTION=true)
fi
if [ "${INTAKE:-0}" = 1 ]; then
  iport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$bin/kelpie-standin" --listen "127.0.0.1:$iport" >/dev/null 2>&1 &
  pids+=($!)
  env_extra+=(DD_API_KEY=bench DD_DD_URL="http://127.0.0.1:$iport")
fi
[ -n "${RCVBUF:-}" ] && env_extra+=(DD_DOGSTATSD_SO_RCVBUF="$RCVBUF")
[ -n "${MEMORY_LIMIT:-}" ] && env_extra+=(DD_MEMORY_LIMIT="$MEMORY_LIMIT")
[ -n "${PIPELINES:-}" ] && env_extra+=(DD_DOGSTATSD_PIPELINE_COUNT="$PIPELINES")
agent_pin=()
[ -n "${AGENT_CPU:-}" ] && agent_pin=(taskset -c "$AGENT_CPU")
loadgen_pin=()
[ -n "${LOADGEN_CPU:-}" ] && loadgen_pin=(taskset -c "$LOADGEN_CPU")
env -i PATH="$PATH" HOME="$HOME" DD_HOSTNAME=bench DD_CONTAINER_COLLECTION=false DOCKER_HOST="${DOCKER_HOST:-}" \
  DD_DOGSTATSD_PORT="$port" KELPIE_STATUS_ADDR="127.0.0.1:$status" KELPIE_PROFILES_ADDR=off RUST_LOG=warn \
  "${env_extra[@]}" "${agent_pin[@]}" "$bin/kelpie" agent --config /dev/null &
agent=$!
pids+=($agent)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$status/health" >/dev/null 2>&1 && break
  sleep 0.1
done
if [ -n "${IDLE_SECONDS:-}" ]; then
  sleep "$IDLE_SECONDS"
  echo "idle RSS after ${IDLE_SECONDS}s: $(grep VmRSS /proc/$agent/status | awk '{print $2}') KiB (peak $(grep VmHWM /proc/$agent/status | awk '{print $2}') KiB)"
fi
if [ "${UDS:-0}" = 1 ]; then
  docker run --rm --label kelpie-test=1 --network host --pid host ${LOADGEN_CPU:+--cpuset-cpus "$LOADGEN_CPU"} \
    -v "$sock_dir:/sock" -v "$(realpath "$loadgen"):/loadgen:ro" --entrypoint /loadgen kelpie-test/tool:latest \
    --target unix:///sock/dsd.socket --status "127.0.0.1:$status" --pid "$agent" "${loadgen_extra[@]}" "$@"
else
  "${loadgen_pin[@]}" "$loadgen" --target "127.0.0.1:$port" --status "127.0.0.1:$status" --pid "$agent" "${loadgen_extra[@]}" "$@"
fi

#!/usr/bin/env bash
# A long intake outage against the real agent, for the figures in docs/reliability.md (not run by CI: it takes
# OUTAGE_SECS). The intake stand-in fails the way FAILURE says (a /_standin/failure body) for OUTAGE_SECS while a
# client sends 10 increments a second; then the intake recovers and the script reports what arrived, how many
# requests the failing intake got, the agent's drops and its peak RSS.
#   OUTAGE_SECS=600 FAILURE='{"kind":"status","status":503}' scripts/outage.sh
# FAILURE=refused stops the stand-in listening (connections refused) for OUTAGE_SECS + 8 s; it cannot count
# refused connections, so the attempts are the agent's own `forwarder.transactions.retried`.
# Uses target/debug/{kelpie,kelpie-standin} unless KELPIE_BIN / STANDIN_BIN say otherwise (cargo build first).
set -euo pipefail
cd "$(dirname "$0")/.."
OUTAGE_SECS=${OUTAGE_SECS:-600}
FAILURE=${FAILURE:-'{"kind":"status","status":503}'}
KELPIE_BIN=${KELPIE_BIN:-target/debug/kelpie}
STANDIN_BIN=${STANDIN_BIN:-target/debug/kelpie-standin}
STORAGE=${STORAGE:-1}
REFUSED=0
if [ "$FAILURE" = refused ]; then
  REFUSED=1
  FAILURE="{\"kind\":\"down\",\"for_ms\":$(( (OUTAGE_SECS + 8) * 1000 ))}"
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
IN_PORT=$(free_port); ST_PORT=$(free_port); UDP_PORT=$(free_port)
work=$(mktemp -d)
"$STANDIN_BIN" --listen "127.0.0.1:$IN_PORT" >"$work/standin.log" 2>&1 &
standin=$!
agent=
cleanup() { [ -n "$agent" ] && kill "$agent" 2>/dev/null; kill "$standin" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
sleep 0.5
curl -fsS -X POST -H 'content-type: application/json' -d "$FAILURE" "http://127.0.0.1:$IN_PORT/_standin/failure" >/dev/null
storage_env=()
if [ "$STORAGE" = 1 ]; then
  storage_env=(DD_FORWARDER_STORAGE_PATH="$work/queue" DD_FORWARDER_STORAGE_MAX_SIZE_IN_BYTES=100000000)
fi
env -i PATH="$PATH" DD_API_KEY=outage-test DD_DD_URL="http://127.0.0.1:$IN_PORT" DD_HOSTNAME=outage \
  DD_DOGSTATSD_PORT="$UDP_PORT" KELPIE_STATUS_ADDR="127.0.0.1:$ST_PORT" KELPIE_PROFILES_ADDR=off \
  DD_CONTAINER_COLLECTION=false "${storage_env[@]}" "$KELPIE_BIN" agent --config /dev/null >"$work/agent.log" 2>&1 &
agent=$!
sleep 1
sent=0
start=$(date +%s)
while [ $(( $(date +%s) - start )) -lt "$OUTAGE_SECS" ]; do
  for _ in 1 2 3 4 5 6 7 8 9 10; do printf 'outage.count:1|c' >"/dev/udp/127.0.0.1/$UDP_PORT"; done
  sent=$((sent + 10))
  sleep 1
done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$agent/status")
status_during=$(curl -fsS "http://127.0.0.1:$ST_PORT/status")
if [ "$REFUSED" = 1 ]; then
  requests_during="none reached the stand-in (refused); the agent's attempts are 'retried' below"
  for _ in $(seq 1 30); do
    curl -fsS "http://127.0.0.1:$IN_PORT/_standin/received" >/dev/null 2>&1 && break
    sleep 1
  done
else
  requests_during=$(curl -fsS "http://127.0.0.1:$IN_PORT/_standin/received" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["requests"]))')
fi
curl -fsS -X DELETE "http://127.0.0.1:$IN_PORT/_standin/failure" >/dev/null
received=0
for _ in $(seq 1 240); do
  received=$(curl -fsS "http://127.0.0.1:$IN_PORT/_standin/received" | python3 -c '
import json,sys
d=json.load(sys.stdin)
print(int(sum(p[1]*max(s["interval"],1) for s in d["series"] if s["name"]=="outage.count" for p in s["points"])))')
  [ "$received" -ge "$sent" ] && break
  sleep 1
done
sleep 5
received=$(curl -fsS "http://127.0.0.1:$IN_PORT/_standin/received" | python3 -c '
import json,sys
d=json.load(sys.stdin)
print(int(sum(p[1]*max(s["interval"],1) for s in d["series"] if s["name"]=="outage.count" for p in s["points"])))')
status_after=$(curl -fsS "http://127.0.0.1:$ST_PORT/status")
echo "failure: $FAILURE for ${OUTAGE_SECS}s, storage: $STORAGE"
echo "samples sent: $sent, received after recovery: $received"
echo "requests to the failing intake: $requests_during"
echo "peak RSS (VmHWM): ${hwm} kB"
python3 - "$status_during" "$status_after" <<'PY'
import json,sys
d=json.loads(sys.argv[1]); a=json.loads(sys.argv[2])
f=d["forwarder"]
print("during: delivering", f.get("delivering"), "held", f["queued_transactions"], "payloads,", f["queued_bytes"], "B memory,", f["queued_on_disk_bytes"], "B disk; retried", f["transactions"]["retried"])
print("after: dropped", a["forwarder"]["transactions"]["dropped"], "dogstatsd dropped", a["dogstatsd"]["dropped"])
PY
echo "log lines about the intake:"
grep -E "intake|dropping" "$work/agent.log" | sed 's/^/  /' | head -20

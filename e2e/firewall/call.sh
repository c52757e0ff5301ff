#!/usr/bin/env bash
# A browser call from a firewalled network: headless Chromium runs in a network namespace
# of its own whose iptables leave it only the paths a hospital network might, and must
# still decode video through a media node on this machine.
#
#   e2e/firewall/call.sh tcp    UDP refused: media over the node's ICE-TCP candidate
#   e2e/firewall/call.sh turn   UDP and TCP to the node's media ports refused: media through
#                               coturn (TURN over TCP), started here with a shared secret
#                               the node mints credentials from
#
# Env: SANCTUM_MEDIA_NODE_BIN (the built node), CHROMIUM (default /usr/bin/chromium),
# TURNSERVER (default: turnserver on PATH). Needs root (ip netns, iptables). The namespace,
# its link, coturn and the node are removed at the end, whatever the outcome.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODE="${1:?usage: call.sh tcp|turn}"
case "$MODE" in tcp | turn) ;; *) echo "usage: call.sh tcp|turn" >&2; exit 2 ;; esac
: "${SANCTUM_MEDIA_NODE_BIN:?SANCTUM_MEDIA_NODE_BIN is not set}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
TURNSERVER="${TURNSERVER:-$(command -v turnserver || true)}"
log() { printf '[firewall] %s\n' "$*" >&2; }

# A /30 of 10.251.0.0/16 nobody on this machine uses: the machine end serves the node, the
# page and TURN; the namespace end is the browser.
NET=""
for n in $(seq 1 250); do
  if ! ip -o addr show | grep -q " 10\.251\.$n\."; then NET="10.251.$n"; break; fi
done
[ -n "$NET" ] || { log "no free 10.251.x.0/30"; exit 1; }
HOST="$NET.1"
CLIENT="$NET.2"
NS="sanctum-fw-$$"
LINK="sfw$$"
WORK="$(mktemp -d)"
TURN_PID=""
cleanup() {
  [ -n "$TURN_PID" ] && kill "$TURN_PID" 2>/dev/null || true
  ip link del "${LINK}h" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$NS"
ip link add "${LINK}h" type veth peer name "${LINK}c"
ip link set "${LINK}c" netns "$NS"
ip addr add "$HOST/30" dev "${LINK}h"
ip link set "${LINK}h" up
ip -n "$NS" addr add "$CLIENT/30" dev "${LINK}c"
ip -n "$NS" link set "${LINK}c" up
ip -n "$NS" link set lo up

# Fixed ports on the link's own address (nothing else listens there).
SIGNALING_PORT=18443
PAGE_PORT=18080
MEDIA_UDP_PORT=10000
MEDIA_TCP_PORT=10001
TURN_PORT=3478

# The namespace's firewall: replies to what it opened, then only the named TCP ports; every
# other packet out is refused (REJECT, so the browser learns at once, as behind a proxy).
fw() { ip netns exec "$NS" iptables "$@"; }
fw -A OUTPUT -o lo -j ACCEPT
fw -A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
allowed=("$SIGNALING_PORT" "$PAGE_PORT")
case "$MODE" in
  tcp) allowed+=("$MEDIA_TCP_PORT") ;;
  turn) allowed+=("$TURN_PORT") ;;
esac
for p in "${allowed[@]}"; do
  fw -A OUTPUT -p tcp -d "$HOST" --dport "$p" -j ACCEPT
done
fw -A OUTPUT -p udp -j REJECT --reject-with icmp-port-unreachable
fw -A OUTPUT -p tcp -j REJECT --reject-with tcp-reset
fw -A OUTPUT -j REJECT
log "namespace $NS ($CLIENT): out only to TCP ${allowed[*]} of $HOST; UDP refused"

# Chromium, as Playwright starts it, inside the namespace (its pipes are inherited).
cat >"$WORK/chromium" <<EOF
#!/bin/sh
exec ip netns exec "$NS" "$CHROMIUM" "\$@"
EOF
chmod +x "$WORK/chromium"

export SANCTUM_HOST="$HOST" SANCTUM_SIGNALING_PORT="$SIGNALING_PORT" SANCTUM_PAGE_PORT="$PAGE_PORT"
export SANCTUM_MEDIA_UDP_PORT="$MEDIA_UDP_PORT" SANCTUM_MEDIA_TCP_PORT="$MEDIA_TCP_PORT"
export CHROMIUM="$WORK/chromium"
case "$MODE" in
  tcp)
    # Chromium's active TCP candidate shows as peer-reflexive once the node answers it.
    export SANCTUM_EXPECT_PATH="host/tcp|prflx/tcp"
    ;;
  turn)
    [ -x "$TURNSERVER" ] || { log "coturn's turnserver is required (apt-get install coturn)"; exit 1; }
    head -c 32 /dev/urandom | base64 | tr -d '\n' >"$WORK/turn-secret"
    # TURN REST API credentials (use-auth-secret), relays on the machine end only, no TLS
    # listeners, nothing written outside $WORK; the secret stays off the command line.
    cat >"$WORK/turnserver.conf" <<EOF
listening-ip=$HOST
listening-port=$TURN_PORT
relay-ip=$HOST
min-port=40000
max-port=40100
use-auth-secret
static-auth-secret=$(cat "$WORK/turn-secret")
realm=sanctum.test
no-tls
no-dtls
no-cli
no-multicast-peers
allowed-peer-ip=$HOST
pidfile=$WORK/turnserver.pid
log-file=$WORK/turnserver.log
simple-log
verbose
userdb=$WORK/turndb
EOF
    "$TURNSERVER" -c "$WORK/turnserver.conf" >/dev/null 2>&1 &
    TURN_PID=$!
    for _ in $(seq 50); do
      (exec 3<>"/dev/tcp/$HOST/$TURN_PORT") 2>/dev/null && break
      sleep 0.1
    done
    export SANCTUM_TURN_URL="turn:$HOST:$TURN_PORT?transport=tcp"
    export SANCTUM_TURN_SECRET_FILE="$WORK/turn-secret"
    export SANCTUM_EXPECT_PATH="relay/udp+tcp"
    ;;
esac
status=0
node "$ROOT/media-node/web/browser-test.mjs" || status=$?
if [ "$MODE" = turn ]; then
  allocations="$(grep -ci "ALLOCATE processed, success" "$WORK/turnserver.log" || true)"
  log "coturn granted $allocations allocation(s)"
  if [ "$status" -ne 0 ] || [ "$allocations" -eq 0 ]; then
    tail -20 "$WORK/turnserver.log" >&2
    status=1
  fi
fi
exit "$status"

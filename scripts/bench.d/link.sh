# Sourced by the network benches (scripts/bench.d/{imap-dump,pop3-dump,smtp-send};
# scripts/bench skips *.sh): a far server through the link emulator
# (tests/src/link.rs, the link-emulator binary), and the bytes that crossed it.
#
# The profiles are named by their round trip: "30 ms / 100 Mbit" is 15 ms
# each way at 100 Mbit/s each way. Loopback runs go straight to the server.
#   link_start UPSTREAM RTT_MS MBIT   sets LINK_PORT (and LINK_PID, LINK_COUNTS)
#   link_stop
#   wire_total                        bytes delivered so far, both ways, once
#                                     every connection is over ("-" without a link)
# Needs $work (a directory) and the binary: $MAILPIPE_BIN/link-emulator, else
# target/release or target/debug (cargo build -p mailpipe-e2e --bin link-emulator).

link_bin() {
  local d
  for d in "${MAILPIPE_BIN:-}" "$repo_root/target/release" "$repo_root/target/debug"; do
    [ -n "$d" ] && [ -x "$d/link-emulator" ] && { echo "$d/link-emulator"; return; }
  done
  echo "link-emulator not built (cargo build --release -p mailpipe-e2e --bin link-emulator)" >&2
  return 66
}
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

LINK_PID=""; LINK_PORT=""; LINK_COUNTS=""
link_start() { # link_start UPSTREAM RTT_MS MBIT
  local bin; bin=$(link_bin)
  [ -z "$LINK_PID" ] || link_stop
  LINK_COUNTS="$work/link-$2ms-$3mbit.counts"
  rm -f "$LINK_COUNTS" "$LINK_COUNTS.port"
  "$bin" --counts "$LINK_COUNTS" 0 "$1" "$(awk -v r="$2" 'BEGIN { print r / 2 }')" "$3" \
    > "$LINK_COUNTS.port" &
  LINK_PID=$!
  for _ in $(seq 100); do [ -s "$LINK_COUNTS.port" ] && break; sleep 0.05; done
  LINK_PORT=$(head -1 "$LINK_COUNTS.port")
  [ -n "$LINK_PORT" ] || { echo "link-emulator did not start" >&2; return 70; }
}
link_stop() {
  [ -n "$LINK_PID" ] || return 0
  kill "$LINK_PID" 2>/dev/null || true
  wait "$LINK_PID" 2>/dev/null || true
  LINK_PID=""; LINK_PORT=""; LINK_COUNTS=""
}
wire_total() {
  [ -n "$LINK_PID" ] || { echo -; return; }
  local line=""
  # Wait (at most 10 s) until every connection is over: the counts are final.
  for _ in $(seq 200); do
    line=$(cat "$LINK_COUNTS" 2>/dev/null || true)
    [ -n "$line" ] || { sleep 0.05; continue; }
    awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
      END { exit !(v["accepted"] == v["closed"]) }' <<<"$line" && break
    sleep 0.05
  done
  awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
    END { printf "%d\n", v["to_server"] + v["to_client"] }' <<<"${line:-to_server=0}"
}
# wire_since MARK: bytes since wire_total printed MARK ("-" without a link).
wire_since() {
  local now; now=$(wire_total)
  if [ "$now" = - ] || [ "$1" = - ]; then echo -; else echo $((now - $1)); fi
}

# Sourced by the IMAP and POP3 cells of scripts/interop: table rows, installs,
# a throwaway CA, waiting for a port, and the three checks every tool gets.
# A cell prints rows `server<TAB>tool<TAB>pass|fail<TAB>detail` on stdout and
# everything else on stderr (the driver keeps it in the cell's log).

INTEROP_D=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAILPIPE_BIN=${MAILPIPE_BIN:-$INTEROP_D/../../target/debug}
CORPUS_PY=$INTEROP_D/corpus.py
export PATH="$PATH:/usr/sbin:/sbin"

# One table row. Tabs and line ends inside the detail become spaces. A
# failed row makes the cell's exit status 1 (`exit "$CELL_FAILED"`).
CELL_FAILED=0
row() {
  [ "$3" = pass ] || CELL_FAILED=1
  local detail=${4//$'\t'/ }
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${detail//$'\n'/ }"
}

log() { echo "${CELL:-interop}: $*" >&2; }

# apt-get install of what is missing, starting no service (policy-rc.d 101,
# as scripts/mailstack install does); quick when everything is there.
install_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || { log "installing ${missing[*]} needs root"; return 1; }
  local policy=/usr/sbin/policy-rc.d ours=0 rc=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# written by scripts/interop\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    ours=1
  fi
  log "installing ${missing[*]}"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      -o DPkg::Lock::Timeout=120 "${missing[@]}" ||
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends -o DPkg::Lock::Timeout=120 "${missing[@]}"; }; } >&2 || rc=1
  if [ "$ours" = 1 ]; then rm -f "$policy"; fi
  return $rc
}

# A throwaway CA and a server certificate for 127.0.0.1 and localhost signed by
# it, in DIR: ca.pem (what the tools get as --ca-file), server.pem, server.key.
make_tls() {
  local t=$1 ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  mkdir -p "$t"
  openssl req -x509 "${ec[@]}" -keyout "$t/ca.key" -out "$t/ca.pem" -days 30 \
    -subj "/CN=mailpipe interop CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null &&
    openssl req -new "${ec[@]}" -keyout "$t/server.key" -out "$t/server.csr" \
      -subj "/CN=localhost" 2>/dev/null &&
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$t/server.ext" &&
    openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
      -days 30 -extfile "$t/server.ext" -out "$t/server.pem" 2>/dev/null &&
    rm -f "$t/server.csr" "$t/server.ext" "$t/ca.srl" "$t/ca.key" &&
    chmod 600 "$t/server.key"
}

# Waits up to SECS (default 15) until something accepts on 127.0.0.1:PORT.
wait_port() {
  local port=$1 tries=$((${2:-15} * 10))
  while [ "$tries" -gt 0 ]; do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
    tries=$((tries - 1))
  done
  return 1
}

# Fails (naming the port) when something already listens on one of PORTS:
# the cell would otherwise test that instead of its own server.
ports_free() {
  local p
  for p in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "port $p is already in use"
      return 1
    fi
  done
}

# The last line of a file, for a short detail.
last_line() { [ -s "$1" ] && tail -n 1 "$1" | cut -c1-220; }

# The three checks of one tool against one server, one row each:
#   TOOL               the whole mailbox over implicit TLS, byte for byte
#                      against EXPECTED (what the server serves)
#   TOOL --state       over STARTTLS/STLS, twice: everything, then 0 new
#   TOOL bad password  exit 77 with one line on stderr, and no password in it
# check_tool SERVER TOOL TLS_URL STARTTLS_URL USER PASSFILE CA EXPECTED CORPUS WORK
check_tool() {
  local server=$1 tool=$2 tls_url=$3 starttls_url=$4 user=$5 passfile=$6 ca=$7
  local expected=$8 corpus=$9 work=${10}
  local bin=$MAILPIPE_BIN/$tool rc detail start end
  mkdir -p "$work"
  local common=(--user "$user" --ca-file "$ca" --timeout 30 -q)

  start=$(date +%s%N)
  rc=0
  "$bin" --server "$tls_url" --password-file "$passfile" "${common[@]}" \
    >"$work/all.mbox" 2>"$work/all.err" || rc=$?
  end=$(date +%s%N)
  if [ "$rc" -ne 0 ]; then
    row "$server" "$tool" fail "exit $rc: $(last_line "$work/all.err")"
  elif detail=$(python3 "$CORPUS_PY" compare "$work/all.mbox" "$expected" "$corpus"); then
    row "$server" "$tool" pass "$detail, $(((end - start) / 1000000)) ms"
  else
    row "$server" "$tool" fail "$detail"
  fi

  local n1 n2 rc2=0
  rc=0
  "$bin" --server "$starttls_url" --password-file "$passfile" --state "$work/state" "${common[@]}" \
    >"$work/state1.mbox" 2>"$work/state1.err" || rc=$?
  # Runs are seconds apart in real use; a server whose UIDVALIDITY is a
  # timestamp it renews (GNU Mailutils' Maildir) shows it only then.
  sleep 1.1
  "$bin" --server "$starttls_url" --password-file "$passfile" --state "$work/state" "${common[@]}" \
    >"$work/state2.mbox" 2>"$work/state2.err" || rc2=$?
  if [ "$rc" -ne 0 ] || [ "$rc2" -ne 0 ]; then
    row "$server" "$tool --state" fail "exit $rc then $rc2: $(last_line "$work/state1.err") $(last_line "$work/state2.err")"
  elif ! detail=$(python3 "$CORPUS_PY" compare "$work/state1.mbox" "$expected"); then
    row "$server" "$tool --state" fail "first run: $detail"
  elif n2=$( [ -s "$work/state2.mbox" ] && python3 "$CORPUS_PY" count "$work/state2.mbox" || echo 0) &&
    [ "$n2" != 0 ]; then
    row "$server" "$tool --state" fail "second run wrote $n2 messages, expected 0: $(last_line "$work/state2.err")"
  else
    n1=$(python3 "$CORPUS_PY" count "$work/state1.mbox")
    detail="STARTTLS: $n1 byte-exact, then $n2 new"
    if [ -s "$work/state2.err" ]; then
      detail+=" (second run said: $(last_line "$work/state2.err"))"
    fi
    row "$server" "$tool --state" pass "$detail"
  fi

  local bad=$work/bad-password
  printf 'not-the-password-密码-%s\n' "$RANDOM" >"$bad"
  rc=0
  "$bin" --server "$tls_url" --password-file "$bad" "${common[@]}" \
    >"$work/bad.mbox" 2>"$work/bad.err" || rc=$?
  local lines
  lines=$(wc -l <"$work/bad.err")
  if [ "$rc" -ne 77 ]; then
    row "$server" "$tool bad password" fail "exit $rc, expected 77: $(last_line "$work/bad.err")"
  elif [ "$lines" -ne 1 ] || [ -s "$work/bad.mbox" ]; then
    row "$server" "$tool bad password" fail "exit 77 but $lines stderr lines, $(wc -c <"$work/bad.mbox") bytes on stdout"
  elif grep -qF -e "$(head -n1 "$bad")" -e "$(head -n1 "$passfile")" "$work/bad.err"; then
    row "$server" "$tool bad password" fail "a password appears on stderr"
  else
    row "$server" "$tool bad password" pass "exit 77: $(last_line "$work/bad.err")"
  fi
}

# Sourced by the GNU Mailutils cells (imap-mailutils, pop3-mailutils): one
# virtual user in a private passwd-style file, a Maildir, and a configuration
# for the daemon (imap4d or pop3d) that reads nothing from /etc.
#
# Users: Mailutils' virtdomain module. Login is user@domain; the domain names
# a passwd(5)-format file in passwd-dir with a crypt(3) hash; pw_dir/INBOX is
# the maildrop. The daemon switches to the entry's uid: nobody, which owns the
# private home and nothing else.
MU_USER=alice MU_DOMAIN=example.test MU_PASS='alice-s3cret-密码'

# mailutils_setup DIR: DIR/virt/example.test, DIR/home/alice, DIR/password.
mailutils_setup() {
  local d=$1 uid gid hash
  uid=$(id -u nobody) gid=$(id -g nobody)
  mkdir -p "$d/virt" "$d/home/$MU_USER" "$d/lock"
  printf '%s\n' "$MU_PASS" >"$d/password"
  chmod 600 "$d/password"
  hash=$(printf '%s' "$MU_PASS" | openssl passwd -6 -stdin) || return 1
  printf '%s:%s:%s:%s:interop:%s:/bin/false\n' "$MU_USER" "$hash" "$uid" "$gid" \
    "$d/home/$MU_USER" >"$d/virt/$MU_DOMAIN"
  chown -R "$uid:$gid" "$d/home" "$d/lock"
}

# mailutils_conf DIR DAEMON STARTTLS_PORT TLS_PORT TLSDIR: DIR/DAEMON.conf.
mailutils_conf() {
  local d=$1 daemon=$2 plain=$3 tls=$4 t=$5
  cat >"$d/$daemon.conf" <<CONF
# Written by scripts/interop.d/mailutils.sh for one run.
logging { syslog false; };
auth { authorization virtdomain; authentication generic; };
virtdomain { passwd-dir $d/virt; };
mailbox { mailbox-type maildir; };
tls-file-checks { key-file none; cert-file none; ca-file none; };
# pop3d locks the maildrop under /var/lock/subsys/mail unless told where.
mandatory-locking { enable true; lock-directory $d/lock; };
pidfile $d/$daemon.pid;
mode daemon;
server 127.0.0.1:$plain {
  tls-mode stls;
  tls { ssl-certificate-file $t/server.pem; ssl-key-file $t/server.key; };
};
server 127.0.0.1:$tls {
  tls-mode connection;
  tls { ssl-certificate-file $t/server.pem; ssl-key-file $t/server.key; };
};
CONF
}

# mailutils_start DIR DAEMON PORT: starts it in the foreground (in the
# background of this shell), waits for PORT; MU_PID is its pid.
mailutils_start() {
  local d=$1 daemon=$2 port=$3
  "$daemon" --config-file "$d/$daemon.conf" --foreground >"$d/$daemon.log" 2>&1 &
  MU_PID=$!
  wait_port "$port" 10 && kill -0 "$MU_PID" 2>/dev/null
}

mailutils_stop() {
  [ -n "${MU_PID:-}" ] || return 0
  kill "$MU_PID" 2>/dev/null || true
  wait "$MU_PID" 2>/dev/null || true
  MU_PID=
}

# One row from the daemon's own log, from line FROM on (the tool's sessions,
# not the readiness probe's): every session ended cleanly (a client that hangs
# up, e.g. after a refused login, is logged as "finished with code 74").
# mailutils_log_row SERVER TOOL DIR DAEMON FROM
mailutils_log_row() {
  local server=$1 tool=$2 d=$3 daemon=$4 from=$5 sessions bad
  sessions=$(tail -n "+$((from + 1))" "$d/$daemon.log" | grep -c 'finished with code')
  bad=$(tail -n "+$((from + 1))" "$d/$daemon.log" | grep 'finished with code 74' | head -n1)
  if [ -n "$bad" ]; then
    row "$server" "$tool sessions" fail "$daemon logged: $bad"
  else
    row "$server" "$tool sessions" pass "$sessions sessions in $daemon's log, none ended in an I/O error"
  fi
}

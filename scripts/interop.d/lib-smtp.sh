# lib-smtp.sh: what the SMTP cells of scripts/interop share (sourced by
# smtp-exim and smtp-opensmtpd, not run by the driver: it is not executable
# and its name does not start with smtp-).
#
# A cell starts one server on 127.0.0.1 from a private prefix and config under
# its WORKDIR, then calls smtp_cells, which sends the same 20-message corpus
# with smtp-send (one process per message, then one --mbox run), checks every
# delivered file byte for byte, a wrong password (77) and a refused recipient
# (67), and prints `server<TAB>tool<TAB>pass|fail<TAB>detail` lines.
#
# Both servers conflict with Postfix as Debian packages, so neither is
# installed: their .deb files are fetched with `apt-get download` into a cache
# (MAILPIPE_INTEROP_CACHE, default /var/cache/mailpipe-interop) and unpacked
# with `dpkg-deb -x` into WORKDIR/prefix. Nothing under /etc is written.

# Set by the cell before sourcing: SERVER (the table's first column).
SMTP_USER='tester@interop.test'
# Non-ASCII on purpose: AUTH PLAIN and LOGIN must carry UTF-8.
SMTP_PASS='s3cret-密码'
SMTP_DOMAIN=interop.test
SMTP_FAILED=0
SMTP_CACHE=${MAILPIPE_INTEROP_CACHE:-/var/cache/mailpipe-interop}

# One table line; a fail makes the cell exit non-zero at the end.
smtp_line() { # STATUS DETAIL
  printf '%s\t%s\t%s\t%s\n' "$SERVER" smtp-send "$1" "$2"
  [ "$1" = pass ] || SMTP_FAILED=1
}

# The tools: MAILPIPE_BIN, else target/debug of this checkout.
smtp_tools() {
  BIN=${MAILPIPE_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/debug}
  for t in smtp-send mkmime; do
    [ -x "$BIN/$t" ] || { smtp_line fail "no $BIN/$t (build first, or set MAILPIPE_BIN)"; return 1; }
  done
}

# Fetches PACKAGE (from SUITE, a Debian suite name; empty: the machine's own
# sources) into the cache unless a .deb of it is there, and unpacks it into
# PREFIX. A suite other than the machine's is read through a private apt
# configuration under the cache, so the system's sources are never changed.
smtp_fetch() { # PREFIX SUITE PACKAGE
  local prefix=$1 suite=$2 pkg=$3 debs=$SMTP_CACHE/debs deb opts=()
  mkdir -p "$debs" "$prefix"
  if [ -n "$suite" ]; then
    local a=$SMTP_CACHE/apt-$suite
    mkdir -p "$a/sources" "$a/lists/partial" "$a/cache/archives/partial"
    printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' "Suites: $suite" \
      'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
      >"$a/sources/$suite.sources"
    opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$a/sources"
      -o "Dir::State::Lists=$a/lists" -o "Dir::Cache=$a/cache")
  fi
  deb=$(ls "$debs/${pkg}_"*"${suite:+~bpo}"*.deb 2>/dev/null | head -n 1 || true)
  [ -n "$suite" ] || deb=$(ls "$debs/${pkg}_"*.deb 2>/dev/null | grep -v '~bpo' | head -n 1 || true)
  if [ -z "$deb" ]; then
    if [ -n "$suite" ]; then
      apt-get "${opts[@]}" -q update >"$debs/apt-update.log" 2>&1 || return 1
    fi
    (cd "$debs" && apt-get "${opts[@]}" -q download "$pkg") >"$debs/apt-download.log" 2>&1 || return 1
    deb=$(ls -t "$debs/${pkg}_"*.deb | head -n 1)
  fi
  dpkg-deb -x "$deb" "$prefix" && basename "$deb"
}

# The libraries PACKAGE depends on (as the machine's apt or SUITE's lists it)
# that are not installed: fetched and unpacked into PREFIX too, and
# LD_LIBRARY_PATH set to PREFIX's library directories. On a machine with
# Dovecot and Postfix this is usually nothing (exim4-daemon-light may want
# libgnutls-dane0 and libidn12).
smtp_fetch_libs() { # PREFIX SUITE PACKAGE
  local prefix=$1 suite=$2 dep opts=()
  [ -z "$suite" ] || opts=(-o Dir::Etc::SourceList=/dev/null
    -o "Dir::Etc::SourceParts=$SMTP_CACHE/apt-$suite/sources"
    -o "Dir::State::Lists=$SMTP_CACHE/apt-$suite/lists" -o "Dir::Cache=$SMTP_CACHE/apt-$suite/cache")
  for dep in $(apt-cache "${opts[@]}" depends "$3" 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^lib/ { print $2 }' | sort -u); do
    dpkg-query -W -f '${Status}' "$dep" 2>/dev/null | grep -q 'ok installed' && continue
    smtp_fetch "$prefix" '' "$dep" >/dev/null || return 1
  done
  export LD_LIBRARY_PATH=$prefix/usr/lib/x86_64-linux-gnu:$prefix/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}

# A self-signed certificate for localhost and 127.0.0.1, trusted by the tools
# through --ca-file, made as the servers' guides make one: plain
# `openssl req -x509`, which marks it CA:TRUE (webpki refused that as a
# server's own certificate even from --ca-file until mailpipe's tls/pinned.rs).
# KEYTYPE: ec|rsa.
smtp_cert() { # DIR KEYTYPE
  local key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
  [ "$2" = rsa ] && key=(-newkey rsa:2048)
  mkdir -p "$1"
  openssl req -x509 "${key[@]}" -nodes -keyout "$1/key.pem" -out "$1/cert.pem" -days 3650 \
    -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' 2>/dev/null &&
    openssl x509 -in "$1/cert.pem" -noout -text | grep -q 'CA:TRUE'
}

# Waits until PORT on 127.0.0.1 accepts connections (at most 10 s).
smtp_wait_port() { # PORT
  local i
  for i in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# The corpus: DIR/NN.eml (20 messages, made by mkmime with SOURCE_DATE_EPOCH,
# so every run sends the same bytes) and DIR/corpus.mbox (the same messages as
# mboxrd, as mailpipe's writer quotes them). Each has X-Interop-Id: NN.
smtp_corpus() { # DIR
  local d=$1 n=0 f
  mkdir -p "$d/files"
  export SOURCE_DATE_EPOCH=1764460800
  local mk=("$BIN/mkmime" --from "测试 <$SMTP_USER>" --to "one@$SMTP_DOMAIN")
  next() { n=$((n + 1)); f=$d/$(printf %02d $n).eml; }
  hdr() { printf 'X-Interop-Id: %02d' $n; }
  # 5 MiB of reproducible noise: AES-CTR of zeros under a fixed key.
  head -c 5242880 /dev/zero | openssl enc -aes-128-ctr -nosalt \
    -K 000102030405060708090a0b0c0d0e0f -iv 00000000000000000000000000000000 >"$d/files/noise.bin"
  printf '%s\n' '<html><body><p>你好, <b>HTML</b></p></body></html>' >"$d/files/page.html"
  printf 'a,b\n1,2\n' >"$d/files/table.csv"

  next; printf 'Plain ASCII body.\nSecond line.\n' | "${mk[@]}" -H "$(hdr)" -s 'plain ascii' >"$f"
  next; printf '你好，世界。这是一封测试邮件。\n第二行：中文正文。\n' | "${mk[@]}" -H "$(hdr)" -s '中文主题：测试邮件' >"$f"
  next; printf '八位正文，不编码。\n第二行。\n' | "${mk[@]}" -H "$(hdr)" -s '8bit 正文' --encoding 8bit >"$f"
  next; printf 'Hello\nFrom the start of a line\n>From quoted already\nFrom again\n' \
    | "${mk[@]}" -H "$(hdr)" -s 'From lines' >"$f"
  next; printf 'before\n.\nafter a lone dot\n..\ntwo dots\n. space\n.\n' \
    | "${mk[@]}" -H "$(hdr)" -s 'dot stuffing' >"$f"
  next; printf 'LF line ends in, CRLF on the wire.\nsecond\n' | "${mk[@]}" -H "$(hdr)" -s 'lf input' --lf >"$f"
  next; printf 'The 5 MiB attachment.\n' | "${mk[@]}" -H "$(hdr)" -s '5 MiB attachment' \
    -a "$d/files/noise.bin;type=application/octet-stream;name=noise.bin" >"$f"
  next; { printf 'x%.0s' $(seq 990); printf '\nshort\n'; } | "${mk[@]}" -H "$(hdr)" -s 'a 991-byte line' >"$f"
  next; printf '纯文本部分\n' | "${mk[@]}" -H "$(hdr)" -s 'HTML 与文本' --html "$d/files/page.html" >"$f"
  next; printf '' | "${mk[@]}" -H "$(hdr)" -s 'empty body' >"$f"
  next; printf 'ends with a lone dot\n.\n' | "${mk[@]}" -H "$(hdr)" -s 'last line is a dot' >"$f"
  next; printf '8-bit with dots and From\n.\nFrom here\n中文\n' \
    | "${mk[@]}" -H "$(hdr)" -s '8bit From and dot' --encoding 8bit >"$f"
  next; printf 'csv attached\n' | "${mk[@]}" -H "$(hdr)" -s 'small attachment' -a "$d/files/table.csv" >"$f"
  next; printf 'quoted-printable body é è à ü\n' | "${mk[@]}" -H "$(hdr)" -s 'qp' --encoding quoted-printable >"$f"
  next; printf 'base64 body 你好\n' | "${mk[@]}" -H "$(hdr)" -s 'base64' --encoding base64 >"$f"
  next; printf 'cc and reply-to\n' | "${mk[@]}" -H "$(hdr)" -s '抄送' -c "two@$SMTP_DOMAIN" \
    --reply-to "张三 <$SMTP_USER>" >"$f"
  next; printf 'a reply\n' | "${mk[@]}" -H "$(hdr)" -s 'Re: 中文主题' --in-reply-to '<x1@interop.test>' \
    --references '<x0@interop.test> <x1@interop.test>' >"$f"
  next; printf '\tTab first\n   spaces first\ntrailing spaces   \n' | "${mk[@]}" -H "$(hdr)" -s 'whitespace' >"$f"
  next; printf '%s\n' 'Ünïcödé Latin-1 range, 8bit' | "${mk[@]}" -H "$(hdr)" -s 'latin' --encoding 8bit >"$f"
  # 20: GBK, written by hand (mkmime writes UTF-8): 8-bit GBK body, RFC 2047
  # GBK subject, CRLF.
  next
  {
    printf 'From: =?GBK?B?%s?= <%s>\r\n' "$(printf '测试' | iconv -t GBK | base64 -w0)" "$SMTP_USER"
    printf 'To: one@%s\r\nSubject: =?GBK?B?%s?=\r\n' "$SMTP_DOMAIN" "$(printf 'GBK 编码的主题' | iconv -t GBK | base64 -w0)"
    printf 'Date: Sun, 30 Nov 2025 00:00:00 +0000\r\nMessage-ID: <gbk.20@interop.test>\r\n'
    printf 'X-Interop-Id: 20\r\nMIME-Version: 1.0\r\n'
    printf 'Content-Type: text/plain; charset=GBK\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
    printf '这是 GBK 编码的正文。\r\n第二行。\r\n' | iconv -t GBK
  } >"$f"
  unset -f next hdr
  unset SOURCE_DATE_EPOCH
  [ "$(ls "$d"/*.eml | wc -l)" = 20 ] || return 1
  python3 - "$d" <<'PY'
import glob, re, sys
d = sys.argv[1]
out = bytearray()
for p in sorted(glob.glob(d + "/*.eml")):
    m = open(p, "rb").read()
    first = m.find(b"\n")
    crlf = first > 0 and m[first - 1 : first] == b"\r"
    eol = b"\r\n" if crlf else b"\n"
    out += b"From tester@interop.test Sun Nov 30 00:00:00 2025" + eol
    for line in m.splitlines(keepends=True):
        if re.match(rb">*From ", line):
            out += b">"
        out += line
    if not m.endswith(b"\n"):
        out += eol
    out += b"\r\n" if out.endswith(b"\r\n") else b"\n"
open(d + "/corpus.mbox", "wb").write(out)
PY
}

# Checks a maildir against the corpus: every message once, the file being
# header fields the server prepended (from a short list) followed by exactly
# the bytes smtp-send put on the wire (line ends normalised to CRLF, as the
# tool does), or with LF line ends where the server stores LF (STORE=lf).
# Prints a detail and exits non-zero on any difference.
smtp_compare() { # MAILDIR CORPUS STORE
  python3 - "$@" <<'PY'
import glob, os, re, sys
maildir, corpus, store = sys.argv[1:4]
allowed = {b"received", b"return-path", b"delivered-to", b"envelope-to", b"delivery-date"}
want = {}
for p in sorted(glob.glob(corpus + "/*.eml")):
    m = re.sub(rb"\r?\n|\r", b"\r\n", open(p, "rb").read())
    if store == "lf":
        m = m.replace(b"\r\n", b"\n")
    want[os.path.basename(p)[:2]] = m
seen, problems, prepended = {}, [], set()
files = sorted(glob.glob(maildir + "/new/*") + glob.glob(maildir + "/cur/*"))
for f in files:
    got = open(f, "rb").read()
    ids = re.findall(rb"^X-Interop-Id: (\d\d)\r?$", got, re.M)
    if len(ids) != 1 or ids[0].decode() not in want:
        problems.append(f"{os.path.basename(f)}: no single X-Interop-Id")
        continue
    n = ids[0].decode()
    seen[n] = seen.get(n, 0) + 1
    m = want[n]
    if not got.endswith(m):
        i = next((i for i in range(min(len(got), len(m))) if got[-1 - i] != m[-1 - i]), None)
        problems.append(f"{n}: differs {i} bytes before the end (got {len(got)}, sent {len(m)})")
        continue
    head = got[: len(got) - len(m)]
    names = re.findall(rb"^([^\s:]+):", head, re.M)
    bad = [x for x in names if x.lower() not in allowed]
    if bad or (head and not re.fullmatch(rb"(?:[^\s:]+:[^\n]*\n(?:[ \t][^\n]*\n)*)*", head)):
        problems.append(f"{n}: unexpected prefix {head[:80]!r}")
    prepended.update(x.decode() for x in names)
missing = sorted(set(want) - set(seen))
dups = sorted(n for n, c in seen.items() if c > 1)
if missing:
    problems.append("missing " + ",".join(missing))
if dups:
    problems.append("duplicated " + ",".join(dups))
if problems:
    print("; ".join(problems)[:300])
    sys.exit(1)
print(f"{len(seen)}/{len(want)} byte-identical after the prepended {'+'.join(sorted(prepended))}"
      f" ({store.upper()} stored)")
PY
}

smtp_secs() { awk "BEGIN { printf \"%.1f\", $2 - $1 }"; }

# Waits until MAILDIR/new holds COUNT files (at most 30 s).
smtp_wait_mail() { # MAILDIR COUNT
  local i
  for i in $(seq 300); do
    [ "$(find "$1/new" -type f 2>/dev/null | wc -l)" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}

# The checks, against the server on PORT (STARTTLS, certificate CA). MAILDIRS
# holds one maildir per local part: one (a process per message), batch (the
# --mbox run), and nothing else: any other recipient must be refused.
# STORE: crlf|lf, how the server writes line ends. EXPECT_BDAT: yes|no.
smtp_cells() { # PORT CA MAILDIRS STORE EXPECT_BDAT
  local port=$1 ca=$2 md=$3 store=$4 bdat=$5 w=$WORKDIR/run-$SERVER
  local base=("$BIN/smtp-send" --server "smtp://127.0.0.1:$port" --user "$SMTP_USER"
    --ca-file "$ca" --timeout 30)
  local send=("${base[@]}" --password-file "$w/password") wrong=("${base[@]}" --password-file "$w/wrong")
  mkdir -p "$w"
  printf '%s' "$SMTP_PASS" >"$w/password"
  chmod 600 "$w/password"
  printf 'wrong-%s' "$SMTP_PASS" >"$w/wrong"
  chmod 600 "$w/wrong"
  if ! smtp_corpus "$w/corpus" 2>"$w/corpus.err"; then
    smtp_line fail "corpus: $(tail -n 1 "$w/corpus.err")"
    return
  fi

  # What the server offers after STARTTLS, and AUTH with each mechanism.
  local ext= pipelining= mech ok=1 detail=
  if "${send[@]}" --check >"$w/check.out" 2>"$w/check.err"; then
    ext=$(sed -n 's/^extensions: //p' "$w/check.out")
    case ", $ext," in *", PIPELINING,"*) pipelining=yes ;; *) detail=" (no PIPELINING)" ;; esac
    smtp_line pass "EHLO after STARTTLS: $ext$detail"
  else
    smtp_line fail "--check: exit $?: $(tail -n 1 "$w/check.err")"
  fi
  for mech in plain login; do
    "${send[@]}" --check --auth $mech >/dev/null 2>"$w/auth.err" || { ok=0; detail="$mech: $(tail -n 1 "$w/auth.err")"; }
    "${wrong[@]}" --check --auth $mech >/dev/null 2>"$w/wrong.err"
    local rc=$?
    [ $rc = 77 ] || { ok=0; detail="wrong password over $mech: exit $rc: $(tail -n 1 "$w/wrong.err")"; }
  done
  if [ $ok = 1 ]; then
    smtp_line pass "AUTH PLAIN and LOGIN accepted; a wrong password is 77 over both ($(tail -n 1 "$w/wrong.err" | sed 's/.*failed: //'))"
  else
    smtp_line fail "$detail"
  fi

  # (1) One process per message.
  local f t0 t1 fails=0
  t0=$(date +%s.%N)
  for f in "$w"/corpus/*.eml; do
    "${send[@]}" "one@$SMTP_DOMAIN" <"$f" 2>>"$w/each.err" || fails=$((fails + 1))
  done
  t1=$(date +%s.%N)
  if [ $fails != 0 ]; then
    smtp_line fail "one process per message: $fails of 20 failed: $(tail -n 1 "$w/each.err")"
  elif ! smtp_wait_mail "$md/one" 20; then
    smtp_line fail "one process per message: only $(find "$md/one/new" -type f | wc -l) of 20 delivered"
  elif detail=$(smtp_compare "$md/one" "$w/corpus" "$store"); then
    smtp_line pass "20 processes ($(smtp_secs "$t0" "$t1") s): $detail"
  else
    smtp_line fail "one process per message: $detail"
  fi

  # (2) One --mbox run over one connection, from a file (so --mbox may read
  # ahead and pipeline where the server allows), with the dialogue kept to
  # see DATA or BDAT.
  t0=$(date +%s.%N)
  "${send[@]}" --mbox -v --dead-letter "$w/dead.letter" "batch@$SMTP_DOMAIN" \
    <"$w/corpus/corpus.mbox" 2>"$w/mbox.err"
  local rc=$?
  t1=$(date +%s.%N)
  local n_bdat n_data n_early
  n_bdat=$(grep -c '^C: BDAT' "$w/mbox.err")
  n_data=$(grep -c '^C: DATA' "$w/mbox.err")
  # Commands written before the reply to the one before (the message body
  # and its final dot are not commands): PIPELINING at work, or a breach.
  n_early=$(grep -E '^[CS]: ' "$w/mbox.err" | awk '/^C: / && prev ~ /^C: / &&
    !(prev ~ /^C: </ && $0 ~ /^C: \.$/) { n++ } { prev = $0 } END { print n + 0 }')
  if [ $rc != 0 ]; then
    smtp_line fail "--mbox: exit $rc: $(grep -v '^[CS]: \|^--' "$w/mbox.err" | tail -n 1)"
  elif ! smtp_wait_mail "$md/batch" 20; then
    smtp_line fail "--mbox: only $(find "$md/batch/new" -type f | wc -l) of 20 delivered"
  elif ! detail=$(smtp_compare "$md/batch" "$w/corpus" "$store"); then
    smtp_line fail "--mbox: $detail"
  elif [ "$bdat" = yes ] && [ "$n_bdat" = 0 ]; then
    smtp_line fail "--mbox: CHUNKING offered but no BDAT sent"
  elif [ "$bdat" = no ] && [ "$n_bdat" != 0 ]; then
    smtp_line fail "--mbox: BDAT sent to a server without CHUNKING"
  elif [ -z "$pipelining" ] && [ "$n_early" != 0 ]; then
    smtp_line fail "--mbox: $n_early commands sent before a reply to a server without PIPELINING"
  else
    smtp_line pass "--mbox, 20 in one session ($(smtp_secs "$t0" "$t1") s, $n_data DATA, $n_bdat BDAT chunks, $n_early commands pipelined): $detail"
  fi
  [ ! -s "$w/dead.letter" ] || smtp_line fail "--mbox left $(grep -c '^From ' "$w/dead.letter") in the dead letter"

  # A refused recipient: nothing sent, both replies printed, 67.
  local before after
  before=$(find "$md" -type f | wc -l)
  "${send[@]}" "one@$SMTP_DOMAIN" "nobody@$SMTP_DOMAIN" <"$w/corpus/01.eml" >/dev/null 2>"$w/refused.err"
  rc=$?
  sleep 1
  after=$(find "$md" -type f | wc -l)
  if [ $rc = 67 ] && [ "$before" = "$after" ] && grep -q "nobody@$SMTP_DOMAIN" "$w/refused.err"; then
    smtp_line pass "a refused recipient: 67, nothing delivered ($(grep "nobody@" "$w/refused.err" | head -n 1 | tr '\t' ' ' | cut -c1-140))"
  else
    smtp_line fail "a refused recipient: exit $rc, files $before -> $after: $(tail -n 1 "$w/refused.err")"
  fi

  # SMTPUTF8 (a From with a UTF-8 local part) and DSN (--require-dsn), each as
  # the EHLO says: used where offered, refused by smtp-send before MAIL FROM
  # (69, nothing delivered) where not.
  local utf8_msg=$w/utf8.eml offered kw
  printf 'UTF-8 local part in From\n' | SOURCE_DATE_EPOCH=1764460800 "$BIN/mkmime" \
    --from "张三@$SMTP_DOMAIN" --to "one@$SMTP_DOMAIN" -s 'SMTPUTF8' >"$utf8_msg"
  for kw in SMTPUTF8 DSN; do
    case ", $ext," in *", $kw,"*) offered=yes ;; *) offered=no ;; esac
    local extra=() msg=$utf8_msg used='^C: MAIL FROM:.* SMTPUTF8'
    [ $kw = DSN ] && extra=(--dsn-notify failure --require-dsn) msg=$w/corpus/01.eml \
      used='^C: RCPT TO:.* NOTIFY=FAILURE'
    before=$(find "$md/one/new" -type f | wc -l)
    "${send[@]}" -v "${extra[@]}" "one@$SMTP_DOMAIN" <"$msg" >/dev/null 2>"$w/$kw.err"
    rc=$?
    [ $offered = yes ] && smtp_wait_mail "$md/one" $((before + 1))
    sleep 0.5
    after=$(find "$md/one/new" -type f | wc -l)
    if [ $offered = yes ] && [ $rc = 0 ] && [ "$after" = $((before + 1)) ] &&
      grep -q "$used" "$w/$kw.err"; then
      smtp_line pass "$kw offered and used ($(grep -o "$used" "$w/$kw.err" | grep -o '[A-Z0-9=]*$')): delivered"
    elif [ $offered = no ] && [ $rc = 69 ] && [ "$after" = "$before" ] &&
      grep -q "does not offer $kw" "$w/$kw.err"; then
      smtp_line pass "$kw not offered: 69, nothing sent (\"the server does not offer $kw\")"
    else
      smtp_line fail "$kw offered=$offered: exit $rc, files $before -> $after: $(tail -n 1 "$w/$kw.err")"
    fi
  done
}

#!/usr/bin/env python3
"""The interop corpus and the checks the cells run against it.

    corpus.py write DIR                       the 20 messages as DIR/01.eml .. 20.eml
    corpus.py append HOST PORT CA USER PASSFILE DIR
                                              IMAP APPEND (over TLS) of every DIR/*.eml
    corpus.py served imap|pop3 HOST PORT CA USER PASSFILE OUT
                                              what the server serves (FETCH BODY.PEEK[]
                                              or RETR, dot-stuffing undone) as OUT/NN.eml
    corpus.py compare MBOX EXPECTED_DIR [CORPUS_DIR]
                                              MBOX (mboxrd) holds exactly EXPECTED_DIR's
                                              messages, in order; prints a short detail
    corpus.py count MBOX                      the number of messages in MBOX

The corpus is generated, not committed (the 5 MiB attachment would bloat the
repository), and deterministic: the same bytes on every machine and run. Every
line ends in CRLF, as IMAP APPEND requires and as the servers store it.
The mboxrd reader here is written independently of mailpipe's, so that a bug
in the one reader the tools share cannot hide itself.
"""

import base64
import hashlib
import imaplib
import os
import random
import socket
import ssl
import sys

CRLF = b"\r\n"


def lines(*parts):
    """Joins header and body lines with CRLF, ending in CRLF."""
    return CRLF.join(parts) + CRLF


def header(n, subject, extra=()):
    return [
        b"From: =?UTF-8?B?" + base64.b64encode("张三".encode()) + b"?= <zhangsan@example.test>",
        b"To: alice@example.test",
        b"Subject: " + subject,
        b"Date: Mon, 2 Nov 2026 10:%02d:00 +0800" % n,
        b"Message-ID: <interop-%02d@example.test>" % n,
        b"MIME-Version: 1.0",
        *extra,
    ]


def b2047(text, charset):
    return b"=?" + charset.encode() + b"?B?" + base64.b64encode(text.encode(charset)) + b"?="


def attachment_bytes():
    """5 MiB of deterministic, incompressible bytes."""
    rng = random.Random(14)
    return rng.randbytes(5 * 1024 * 1024)


def corpus():
    """The 20 messages, in order."""
    msgs = []
    utf8_text = "你好，世界。这是一封测试邮件：中文正文，UTF-8 编码。\n第二行：邮件互通测试。"
    gbk_text = "您好！这是 GBK 编码的正文，服务器不能改动任何一个字节。\n周报已附上。"
    # 1: plain ASCII.
    msgs.append(lines(*header(1, b"plain ASCII"), b"Content-Type: text/plain; charset=us-ascii",
                      b"", b"Hello from the interop matrix.", b"Second line."))
    # 2: UTF-8 subject and an 8-bit UTF-8 body.
    msgs.append(lines(*header(2, b2047("周报：互通测试", "utf-8")),
                      b"Content-Type: text/plain; charset=utf-8", b"Content-Transfer-Encoding: 8bit",
                      b"", *utf8_text.encode().split(b"\n")))
    # 3: GBK subject and an 8-bit GBK body.
    msgs.append(lines(*header(3, b2047("会议纪要（GBK）", "gbk")),
                      b"Content-Type: text/plain; charset=gbk", b"Content-Transfer-Encoding: 8bit",
                      b"", *gbk_text.encode("gbk").split(b"\n")))
    # 4: lines starting with From (mboxrd quoting must round-trip every depth).
    msgs.append(lines(*header(4, b"From lines in the body"), b"Content-Type: text/plain", b"",
                      b"From here on, a line that mbox must quote.", b">From an already quoted one,",
                      b">>From a doubly quoted one,", b"From ", b"", b"From the blank line before it.",
                      b" From indented: no quoting."))
    # 5: the 5 MiB attachment.
    att = base64.encodebytes(attachment_bytes()).replace(b"\n", CRLF)
    msgs.append(lines(*header(5, b2047("附件：5 MB", "utf-8")),
                      b'Content-Type: multipart/mixed; boundary="b5"', b"",
                      b"--b5", b"Content-Type: text/plain; charset=utf-8", b"Content-Transfer-Encoding: 8bit",
                      b"", "请查收附件。".encode(), b"--b5",
                      b'Content-Type: application/octet-stream; name="data.bin"',
                      b'Content-Disposition: attachment; filename="data.bin"',
                      b"Content-Transfer-Encoding: base64", b"") + att + lines(b"--b5--"))
    # 6: 8-bit Latin-1 bytes that are not UTF-8.
    msgs.append(lines(*header(6, b"=?ISO-8859-1?Q?caf=E9?="), b"Content-Type: text/plain; charset=iso-8859-1",
                      b"Content-Transfer-Encoding: 8bit", b"", b"Caf\xe9 cr\xe8me br\xfbl\xe9e, \xa9 \xff\xfe.",
                      bytes(range(0x80, 0x100))))
    # 7: POP3 dot-stuffing: a lone dot, dots at line starts.
    msgs.append(lines(*header(7, b"dots"), b"", b".", b"..", b".hidden", b"...three", b"end."))
    # 8: long lines (over 998 octets: servers must not fold them).
    msgs.append(lines(*header(8, b"long lines"), b"Content-Type: text/plain; charset=utf-8",
                      b"Content-Transfer-Encoding: 8bit", b"", b"x" * 4000, ("长" * 700).encode(), b"short"))
    # 9: an empty body.
    msgs.append(lines(*header(9, b"empty body"), b""))
    # 10: quoted-printable Chinese.
    qp = "".join("=%02X" % b for b in "中文 quoted-printable 正文".encode())
    msgs.append(lines(*header(10, b2047("QP 中文", "utf-8")), b"Content-Type: text/plain; charset=utf-8",
                      b"Content-Transfer-Encoding: quoted-printable", b"", qp.encode()[:70] + b"=", qp.encode()[70:]))
    # 11: multipart/alternative with a Chinese HTML part.
    msgs.append(lines(*header(11, b2047("HTML 邮件", "utf-8")),
                      b'Content-Type: multipart/alternative; boundary="alt11"', b"", b"--alt11",
                      b"Content-Type: text/plain; charset=utf-8", b"Content-Transfer-Encoding: 8bit", b"",
                      "纯文本部分".encode(), b"--alt11", b"Content-Type: text/html; charset=utf-8",
                      b"Content-Transfer-Encoding: 8bit", b"", "<p>网页<b>部分</b></p>".encode(), b"--alt11--"))
    # 12: a folded Chinese subject and raw UTF-8 in a header (RFC 6532).
    msgs.append(lines(*header(12, b2047("很长的主题，", "utf-8") + CRLF + b" " + b2047("折行在这里", "gbk"),
                              extra=["X-Note: 未编码的 UTF-8 头".encode()]), b"", b"folded"))
    # 13: GB18030 (four-byte sequences) and Big5.
    msgs.append(lines(*header(13, b2047("𠀀 GB18030", "gb18030")), b"Content-Type: text/plain; charset=gb18030",
                      b"Content-Transfer-Encoding: 8bit", b"", "扩展汉字 𠀀𠀁 和欧元 €".encode("gb18030")))
    msgs.append(lines(*header(14, b2047("繁體中文", "big5")), b"Content-Type: text/plain; charset=big5",
                      b"Content-Transfer-Encoding: 8bit", b"", "繁體中文郵件內容".encode("big5")))
    # 15: trailing whitespace, tabs and blank lines that must survive.
    msgs.append(lines(*header(15, b"whitespace"), b"", b"trailing   ", b"\ttab", b"", b"", b"  ", b"last"))
    # 16-20: text of growing size, so batches and sizes vary.
    for n in range(16, 21):
        rng = random.Random(n)
        body = [("第%d行 " % i).encode() + bytes(rng.choice(b"abcdefghij ") for _ in range(70))
                for i in range(40 * (n - 15) ** 3)]
        msgs.append(lines(*header(n, b2047("第 %d 封" % n, "utf-8")), b"Content-Type: text/plain; charset=utf-8",
                          b"Content-Transfer-Encoding: 8bit", b"", *body))
    return msgs


def write(out):
    os.makedirs(out, exist_ok=True)
    for i, m in enumerate(corpus(), 1):
        with open(os.path.join(out, "%02d.eml" % i), "wb") as f:
            f.write(m)


def read_dir(d):
    names = sorted(n for n in os.listdir(d) if n.endswith(".eml"))
    out = []
    for n in names:
        with open(os.path.join(d, n), "rb") as f:
            out.append(f.read())
    return out


def password(path):
    with open(path, "rb") as f:
        return f.readline().rstrip(b"\r\n").decode()


def tls_context(ca):
    return ssl.create_default_context(cafile=ca)


def imap_login(host, port, ca, user, passfile):
    m = imaplib.IMAP4_SSL(host, int(port), ssl_context=tls_context(ca))
    # The passwords are not ASCII on purpose; imaplib sends commands as ASCII
    # unless told otherwise (it has no public switch for LOGIN).
    m._encoding = "utf-8"
    m.login(user, password(passfile))
    return m


def append(host, port, ca, user, passfile, d):
    m = imap_login(host, port, ca, user, passfile)
    for msg in read_dir(d):
        typ, data = m.append("INBOX", None, None, msg)
        # A client creates the mailbox on [TRYCREATE] (RFC 3501 6.3.11) and
        # tries again. GNU Mailutils (Maildir) answers TRYCREATE for an INBOX
        # never selected, then refuses CREATE INBOX ("Already exist"); a
        # SELECT makes the Maildir.
        if typ == "NO" and b"TRYCREATE" in b" ".join(x for x in data if x):
            try:
                m.create("INBOX")
            except imaplib.IMAP4.error:
                m.select("INBOX")
            typ, data = m.append("INBOX", None, None, msg)
        if typ != "OK":
            sys.exit("APPEND refused: %r" % data)
    m.logout()


def served_imap(host, port, ca, user, passfile):
    m = imap_login(host, port, ca, user, passfile)
    m.select("INBOX", readonly=True)
    typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
    m.logout()
    return [part[1] for part in data if isinstance(part, tuple)]


def served_pop3(host, port, ca, user, passfile):
    """RETR of every message over POP3S, read raw (poplib drops line ends)."""
    sock = tls_context(ca).wrap_socket(socket.create_connection((host, int(port))), server_hostname=host)
    f = sock.makefile("rb")

    def cmd(line):
        if line:
            sock.sendall(line.encode("utf-8") + CRLF)
        reply = f.readline()
        if not reply.startswith(b"+OK"):
            sys.exit("POP3 %s: %r" % (line.split()[0] if line else "greeting", reply))
        return reply

    cmd("")
    cmd("USER " + user)
    cmd("PASS " + password(passfile))
    count = int(cmd("STAT").split()[1])
    # UIDL first, as every client that keeps state does: GNU Mailutils pop3d
    # then writes an X-UIDL header into each stored message, and serves it
    # from then on.
    cmd("UIDL")
    while f.readline() not in (b".\r\n", b""):
        pass
    out = []
    for n in range(1, count + 1):
        cmd("RETR %d" % n)
        body = bytearray()
        while True:
            line = f.readline()
            if line in (b".\r\n", b""):
                break
            body += line[1:] if line.startswith(b".") else line
        out.append(bytes(body))
    cmd("QUIT")
    return out


def served(proto, host, port, ca, user, passfile, out):
    msgs = (served_imap if proto == "imap" else served_pop3)(host, port, ca, user, passfile)
    os.makedirs(out, exist_ok=True)
    for i, m in enumerate(msgs, 1):
        with open(os.path.join(out, "%02d.eml" % i), "wb") as f:
            f.write(m)


def read_mboxrd(path):
    """Messages of an mboxrd file: From_ lines split, `>+From ` unquoted once,
    the blank separator line (LF or CRLF) removed."""
    with open(path, "rb") as f:
        data = f.read()
    msgs, cur = [], None
    for line in data.splitlines(keepends=True):
        if line.startswith(b"From "):
            if cur is not None:
                msgs.append(cur)
            cur = []
            continue
        if cur is None:
            raise ValueError("not an mbox: no From_ line first")
        if line.startswith(b">") and line.lstrip(b">").startswith(b"From "):
            line = line[1:]
        cur.append(line)
    if cur is not None:
        msgs.append(cur)
    out = []
    for m in msgs:
        if not m or m[-1] not in (b"\n", b"\r\n"):
            raise ValueError("an entry does not end in the blank separator line")
        out.append(b"".join(m[:-1]))
    return out


def added_fields(delivered, served):
    """Header field names in `served` that `delivered` lacks."""

    def names(msg):
        head = msg.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        return {l.split(b":", 1)[0].decode("ascii", "replace") for l in head.splitlines()
                if l[:1] not in (b" ", b"\t") and b":" in l}

    return names(served) - names(delivered)


def compare(mbox, expected_dir, corpus_dir=None):
    got = read_mboxrd(mbox)
    want = read_dir(expected_dir)
    if len(got) != len(want):
        print("%d messages, expected %d" % (len(got), len(want)))
        return 1
    for i, (g, w) in enumerate(zip(got, want), 1):
        if g != w:
            at = next((k for k in range(min(len(g), len(w))) if g[k] != w[k]), min(len(g), len(w)))
            print("message %d differs at byte %d (%d bytes, expected %d)" % (i, at, len(g), len(w)))
            return 1
    detail = "%d/%d byte-exact (%.1f MB)" % (len(got), len(want), sum(map(len, got)) / 1e6)
    if corpus_dir:
        changed = [(i, s, c) for i, (s, c) in enumerate(zip(want, read_dir(corpus_dir)), 1) if s != c]
        if not changed:
            detail += ", as delivered"
        else:
            added = sorted(set().union(*(added_fields(c, s) for _, s, c in changed)))
            if len(changed) <= 3:
                which = "message " + ",".join(str(i) for i, _, _ in changed)
            else:
                which = "%d messages" % len(changed)
            detail += ", %s served changed from what was delivered" % which
            if added:
                detail += " (the server added %s)" % ", ".join(added)
    print(detail + ", sha256 " + hashlib.sha256(b"".join(got)).hexdigest()[:12])
    return 0


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    op, args = argv[1], argv[2:]
    try:
        if op == "write" and len(args) == 1:
            write(*args)
        elif op == "append" and len(args) == 6:
            append(*args)
        elif op == "served" and len(args) == 7:
            served(*args)
        elif op == "compare" and len(args) in (2, 3):
            return compare(*args)
        elif op == "count" and len(args) == 1:
            print(len(read_mboxrd(args[0])))
        else:
            sys.exit(__doc__)
    except (OSError, ValueError, imaplib.IMAP4.error) as e:
        print("%s: %s" % (op, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""Proof that scripts/mailstack runs real servers, checked with clients no one
here wrote (Python's smtplib, imaplib, poplib and ssl; standard library only).

Reads the MAILSTACK_* environment (`eval "$(scripts/mailstack env DIR)"`),
submits messages over implicit TLS and over STARTTLS, reads them back over
IMAPS and POP3S and compares bytes, and checks the negative cases the tools'
tests rely on: the untrusted ports fail verification, the reject and defer
recipients get 5xx and 4xx, the non-ASCII password works, plaintext ports
behave as promised. Prints one line per check and, last,
`stack_proof: N passed, M failed`; exits 1 when anything failed.
"""

import base64
import imaplib
import json
import os
import poplib
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import uuid

PASSED = 0
FAILED = 0


def env(name):
    value = os.environ.get(name)
    if not value:
        print(f"stack_proof: {name} is not set; start the stack and "
              f"eval \"$(scripts/mailstack env DIR)\" first", file=sys.stderr)
        print("stack_proof: 0 passed, 1 failed")
        sys.exit(1)
    return value


HOST = env("MAILSTACK_HOST")
DOMAIN = env("MAILSTACK_DOMAIN")
CA = env("MAILSTACK_CA")
P = {name: int(env(f"MAILSTACK_{name}_PORT")) for name in (
    "SMTP", "SMTPS", "SUBMISSION", "IMAP", "IMAPS", "POP3", "POP3S",
    "UNTRUSTED_SMTPS", "UNTRUSTED_IMAPS", "UNTRUSTED_POP3S")}
USER1, PASS1 = env("MAILSTACK_USER1"), env("MAILSTACK_PASS1")
USER2, PASS2 = env("MAILSTACK_USER2"), env("MAILSTACK_PASS2")
REJECT_RCPT = env("MAILSTACK_REJECT_RCPT")
DEFER_RCPT = env("MAILSTACK_DEFER_RCPT")
DOVECOT_CONF = env("MAILSTACK_DOVECOT_CONF")
MAILDIR_ROOT = env("MAILSTACK_MAILDIR_ROOT")
TIMEOUT = 10


def check(name):
    """Decorator: run the function as one named check, count and report it."""
    def run(fn):
        global PASSED, FAILED
        started = time.monotonic()
        try:
            note = fn()
        except Exception as e:  # any failure, including AssertionError
            FAILED += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
        else:
            PASSED += 1
            ms = (time.monotonic() - started) * 1000
            print(f"ok   {name} ({ms:.0f} ms){': ' + note if note else ''}")
        return fn
    return run


def ctx():
    """Verifies against the stack's CA only (not the system roots)."""
    c = ssl.create_default_context(cafile=CA)
    c.minimum_version = ssl.TLSVersion.TLSv1_2
    return c


def no_verify_ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def message(token, to):
    """A message whose body has what breaks naive code: a lone dot, a `From `
    line, 8-bit UTF-8, a long line, trailing spaces, an empty last line.
    Returns (whole message, body), both with CRLF line ends as on the wire."""
    body = (
        "Hello from stack_proof.\r\n"
        ".\r\n"
        "..two dots\r\n"
        "From the mbox point of view this line is dangerous.\r\n"
        ">From quoted already.\r\n"
        "Grüße, 你好, привет — 8-bit UTF-8.\r\n"
        "trailing spaces   \r\n"
        + "x" * 990 + "\r\n"
        f"token {token}\r\n"
        "\r\n"
    ).encode("utf-8")
    head = (
        f"From: {USER1}\r\n"
        f"To: {to}\r\n"
        f"Subject: stack proof {token}\r\n"
        f"Message-ID: <{token}@{DOMAIN}>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
    ).encode("ascii")
    return head + body, body


def auth_plain(user, password):
    """AUTH PLAIN's argument, UTF-8 (smtplib's own login() encodes as ASCII)."""
    raw = b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def smtp_auth_plain(s, user, password):
    code, reply = s.docmd("AUTH", "PLAIN " + auth_plain(user, password))
    assert code == 235, f"AUTH PLAIN for {user}: {code} {reply!r}"


def send(s, to, msg):
    refused = s.sendmail(USER1, [to], msg, mail_options=["BODY=8BITMIME"])
    assert not refused, f"refused: {refused}"


def rcpt_code(s, rcpt):
    """The reply code to RCPT TO:<rcpt> in a fresh transaction."""
    s.rset()
    code, reply = s.mail(USER1)
    assert code == 250, f"MAIL FROM: {code} {reply!r}"
    code, reply = s.rcpt(rcpt)
    return code, reply.decode("utf-8", "replace")


def imap_login(port, user, password, starttls=False):
    if starttls:
        m = imaplib.IMAP4(HOST, port, timeout=TIMEOUT)
        m.starttls(ssl_context=ctx())
    else:
        m = imaplib.IMAP4_SSL(HOST, port, ssl_context=ctx(), timeout=TIMEOUT)
    m.login(user, password)
    return m


def imap_find(m, token, deadline):
    """Polls INBOX until the message with `token` arrives; returns its UID."""
    m.select("INBOX")
    while True:
        typ, data = m.uid("SEARCH", None, "HEADER", "Message-ID", token)
        assert typ == "OK", data
        uids = data[0].split()
        if uids:
            return uids[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"message {token} not in INBOX after waiting")
        time.sleep(0.05)
        m.noop()


def imap_fetch(m, uid, item):
    typ, data = m.uid("FETCH", uid, f"({item})")
    assert typ == "OK", data
    for part in data:
        if isinstance(part, tuple):
            return part[0], part[1]
    raise AssertionError(f"no literal in FETCH reply {data!r}")


def crlf(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def pop3_login(port, user, password, stls=False):
    if stls:
        p = poplib.POP3(HOST, port, timeout=TIMEOUT)
        p.stls(context=ctx())
    else:
        p = poplib.POP3_SSL(HOST, port, context=ctx(), timeout=TIMEOUT)
    p.user(user)
    p.pass_(password)
    return p


def pop3_find(p, token):
    """The message with `token` as bytes with CRLF, and its number."""
    count, _ = p.stat()
    for n in range(count, 0, -1):
        _, lines, _ = p.retr(n)
        raw = b"\r\n".join(lines) + b"\r\n"
        if f"<{token}@".encode() in raw:
            return n, raw
    raise AssertionError(f"message {token} not in the POP3 maildrop")


def split_body(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, "no header/body separator"
    return head, body


def expect_verify_failure(connect):
    try:
        conn = connect()
    except ssl.SSLCertVerificationError as e:
        return e.verify_message
    conn.close() if hasattr(conn, "close") else None
    raise AssertionError("certificate was accepted")


# --- submission -----------------------------------------------------------

TOKEN_SMTPS = "smtps-" + uuid.uuid4().hex
TOKEN_STARTTLS = "starttls-" + uuid.uuid4().hex
TOKEN_PLAIN = "plain-" + uuid.uuid4().hex
MSG_SMTPS, BODY_SMTPS = message(TOKEN_SMTPS, USER1)
MSG_STARTTLS, BODY_STARTTLS = message(TOKEN_STARTTLS, USER1)
MSG_PLAIN, BODY_PLAIN = message(TOKEN_PLAIN, USER2)
SENT_AT = {}


@check("SMTPS: implicit TLS verified by the CA (IP SAN), EHLO offers AUTH PLAIN LOGIN, SIZE >= 50 MB, 8BITMIME, SMTPUTF8")
def _():
    with smtplib.SMTP_SSL(HOST, P["SMTPS"], context=ctx(), timeout=TIMEOUT) as s:
        s.ehlo("client.example.test")
        mechs = s.esmtp_features.get("auth", "").upper().split()
        assert "PLAIN" in mechs and "LOGIN" in mechs, f"AUTH {mechs}"
        size = int(s.esmtp_features.get("size", "0") or 0)
        assert size >= 50 * 1024 * 1024, f"SIZE {size}"
        assert s.has_extn("8bitmime") and s.has_extn("smtputf8"), s.esmtp_features
        return f"AUTH {' '.join(mechs)}, SIZE {size}"


@check("SMTPS: certificate also valid for the name localhost")
def _():
    raw = socket.create_connection((HOST, P["SMTPS"]), timeout=TIMEOUT)
    with ctx().wrap_socket(raw, server_hostname="localhost") as t:
        assert t.recv(100).startswith(b"220"), "no 220 greeting"


@check("SMTPS: without AUTH, RCPT for a local user is refused (5xx)")
def _():
    with smtplib.SMTP_SSL(HOST, P["SMTPS"], context=ctx(), timeout=TIMEOUT) as s:
        s.ehlo("client.example.test")
        code, reply = rcpt_code(s, USER1)
        assert 500 <= code < 600, f"{code} {reply}"
        return f"{code} {reply}"


@check("SMTPS: wrong password is refused (535) without a delay")
def _():
    with smtplib.SMTP_SSL(HOST, P["SMTPS"], context=ctx(), timeout=TIMEOUT) as s:
        s.ehlo("client.example.test")
        for _ in range(3):
            t = time.monotonic()
            code, reply = s.docmd("AUTH", "PLAIN " + auth_plain(USER1, "wrong"))
            assert code == 535, f"{code} {reply!r}"
            assert time.monotonic() - t < 1.0, "failed AUTH took over a second"


@check("SMTPS: AUTH PLAIN user1, submit to user1")
def _():
    with smtplib.SMTP_SSL(HOST, P["SMTPS"], context=ctx(), timeout=TIMEOUT) as s:
        s.ehlo("client.example.test")
        s.login(USER1, PASS1)  # smtplib prefers PLAIN when CRAM-MD5 is absent
        SENT_AT[TOKEN_SMTPS] = time.monotonic()
        send(s, USER1, MSG_SMTPS)


@check("SMTPS: AUTH LOGIN user1")
def _():
    with smtplib.SMTP_SSL(HOST, P["SMTPS"], context=ctx(), timeout=TIMEOUT) as s:
        s.ehlo("client.example.test")
        s.user, s.password = USER1, PASS1
        code, reply = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        assert code == 235, f"{code} {reply!r}"


@check("SMTPS: AUTH PLAIN user2 with the non-ASCII password (UTF-8)")
def _():
    assert any(ord(c) > 127 for c in PASS2), "PASS2 should contain non-ASCII"
    with smtplib.SMTP_SSL(HOST, P["SMTPS"], context=ctx(), timeout=TIMEOUT) as s:
        s.ehlo("client.example.test")
        smtp_auth_plain(s, USER2, PASS2)


@check("SMTPS (authenticated): reject recipient gets 5xx, defer recipient gets 4xx")
def _():
    with smtplib.SMTP_SSL(HOST, P["SMTPS"], context=ctx(), timeout=TIMEOUT) as s:
        s.ehlo("client.example.test")
        s.login(USER1, PASS1)
        rcode, rreply = rcpt_code(s, REJECT_RCPT)
        dcode, dreply = rcpt_code(s, DEFER_RCPT)
        assert 500 <= rcode < 600, f"reject: {rcode} {rreply}"
        assert 400 <= dcode < 500, f"defer: {dcode} {dreply}"
        return f"{rcode} {rreply} | {dcode} {dreply}"


@check("submission: no AUTH before STARTTLS; after STARTTLS (CA verified) AUTH PLAIN, submit to user1")
def _():
    with smtplib.SMTP(HOST, P["SUBMISSION"], timeout=TIMEOUT) as s:
        s.ehlo("client.example.test")
        assert s.has_extn("starttls"), "STARTTLS not offered"
        assert not s.has_extn("auth"), "AUTH offered before STARTTLS"
        code, reply = s.docmd("MAIL", f"FROM:<{USER1}>")
        assert 500 <= code < 600, f"MAIL before STARTTLS: {code} {reply!r}"
        s.starttls(context=ctx())
        s.ehlo("client.example.test")
        mechs = s.esmtp_features.get("auth", "").upper().split()
        assert "PLAIN" in mechs and "LOGIN" in mechs, f"AUTH {mechs}"
        s.login(USER1, PASS1)
        SENT_AT[TOKEN_STARTTLS] = time.monotonic()
        send(s, USER1, MSG_STARTTLS)


@check("submission: after STARTTLS, unauthenticated RCPT is refused (5xx)")
def _():
    with smtplib.SMTP(HOST, P["SUBMISSION"], timeout=TIMEOUT) as s:
        s.starttls(context=ctx())
        s.ehlo("client.example.test")
        code, reply = rcpt_code(s, USER1)
        assert 500 <= code < 600, f"{code} {reply}"


@check("plain SMTP: no STARTTLS offered, AUTH offered in plaintext, mail for the domain accepted without AUTH")
def _():
    with smtplib.SMTP(HOST, P["SMTP"], timeout=TIMEOUT) as s:
        s.ehlo("client.example.test")
        assert not s.has_extn("starttls"), "STARTTLS offered on the plain port"
        mechs = s.esmtp_features.get("auth", "").upper().split()
        assert "PLAIN" in mechs, f"AUTH {mechs} (tests need it offered in plaintext)"
        SENT_AT[TOKEN_PLAIN] = time.monotonic()
        send(s, USER2, MSG_PLAIN)
        rcode, _ = rcpt_code(s, REJECT_RCPT)
        dcode, _ = rcpt_code(s, DEFER_RCPT)
        assert 500 <= rcode < 600 and 400 <= dcode < 500, f"{rcode} {dcode}"
        code, _ = rcpt_code(s, "someone@elsewhere.invalid")
        assert 500 <= code < 600, f"relay to another domain: {code}"


# --- read back --------------------------------------------------------------

@check("IMAPS (CA verified): message sent over SMTPS arrives; BODY[TEXT] equals the sent body byte for byte")
def _():
    m = imap_login(P["IMAPS"], USER1, PASS1)
    try:
        uid = imap_find(m, TOKEN_SMTPS, time.monotonic() + 10)
        latency = time.monotonic() - SENT_AT.get(TOKEN_SMTPS, time.monotonic())
        _, text = imap_fetch(m, uid, "BODY.PEEK[TEXT]")
        assert text == BODY_SMTPS, f"body differs:\n{text!r}\n!=\n{BODY_SMTPS!r}"
        meta, whole = imap_fetch(m, uid, "RFC822.SIZE BODY.PEEK[]")
        assert whole.endswith(b"\r\n\r\n" + BODY_SMTPS), "whole message does not end with the body"
        size = int(meta.split(b"RFC822.SIZE ")[1].split()[0])
        assert size == len(whole), f"RFC822.SIZE {size} != {len(whole)} bytes served"
        return f"visible {latency:.2f} s after submission"
    finally:
        m.logout()


@check("IMAPS: message sent over STARTTLS submission arrives byte for byte")
def _():
    m = imap_login(P["IMAPS"], USER1, PASS1)
    try:
        uid = imap_find(m, TOKEN_STARTTLS, time.monotonic() + 10)
        _, text = imap_fetch(m, uid, "BODY.PEEK[TEXT]")
        assert text == BODY_STARTTLS, "body differs"
    finally:
        m.logout()


@check("POP3S (CA verified): the SMTPS message, dot-unstuffed, equals the sent body byte for byte")
def _():
    p = pop3_login(P["POP3S"], USER1, PASS1)
    try:
        _, raw = pop3_find(p, TOKEN_SMTPS)
        _, body = split_body(raw)
        assert body == BODY_SMTPS, f"body differs:\n{body!r}\n!=\n{BODY_SMTPS!r}"
    finally:
        p.quit()


@check("Maildir: $MAILSTACK_MAILDIR_ROOT/<user>/Maildir holds the message with LF line ends")
def _():
    maildir = os.path.join(MAILDIR_ROOT, USER1, "Maildir")
    needle = f"<{TOKEN_SMTPS}@".encode()
    for sub in ("new", "cur"):
        for name in os.listdir(os.path.join(maildir, sub)):
            with open(os.path.join(maildir, sub, name), "rb") as f:
                stored = f.read()
            if needle in stored:
                assert b"\r\n" not in stored, "stored file has CRLF"
                lf_body = BODY_SMTPS.replace(b"\r\n", b"\n")
                assert stored.endswith(b"\n\n" + lf_body), "stored body differs"
                return f"{sub}/{name[:30]}..."
    raise AssertionError(f"no file with the message in {maildir}/new or cur")


@check("user2 (non-ASCII password): IMAP AUTHENTICATE PLAIN with UTF-8; plain-port mail arrived byte for byte")
def _():
    m = imaplib.IMAP4_SSL(HOST, P["IMAPS"], ssl_context=ctx(), timeout=TIMEOUT)
    try:
        raw = b"\0" + USER2.encode() + b"\0" + PASS2.encode("utf-8")
        typ, _ = m.authenticate("PLAIN", lambda _challenge: raw)
        assert typ == "OK"
        uid = imap_find(m, TOKEN_PLAIN, time.monotonic() + 10)
        _, text = imap_fetch(m, uid, "BODY.PEEK[TEXT]")
        assert text == BODY_PLAIN, "body differs"
    finally:
        m.logout()


@check("user2: POP3S USER/PASS with the UTF-8 password")
def _():
    p = pop3_login(P["POP3S"], USER2, PASS2)
    try:
        _, raw = pop3_find(p, TOKEN_PLAIN)
        assert split_body(raw)[1] == BODY_PLAIN, "body differs"
    finally:
        p.quit()


@check("IMAP: wrong password fails fast (no auth penalty), three times in a row")
def _():
    for _ in range(3):
        m = imaplib.IMAP4_SSL(HOST, P["IMAPS"], ssl_context=ctx(), timeout=TIMEOUT)
        t = time.monotonic()
        try:
            m.login(USER1, "wrong password")
        except imaplib.IMAP4.error:
            pass
        else:
            raise AssertionError("wrong password accepted")
        finally:
            m.shutdown()
        assert time.monotonic() - t < 1.0, "failed login took over a second"


@check("IMAP: unknown user and empty password are refused")
def _():
    for user, password in (("nobody@" + DOMAIN, PASS1), (USER1, "")):
        m = imaplib.IMAP4_SSL(HOST, P["IMAPS"], ssl_context=ctx(), timeout=TIMEOUT)
        try:
            m.login(user, password)
        except imaplib.IMAP4.error:
            pass
        else:
            raise AssertionError(f"login as {user!r} with {password!r} accepted")
        finally:
            m.shutdown()


@check("IMAP port: STARTTLS (CA verified) then LOGIN")
def _():
    m = imap_login(P["IMAP"], USER1, PASS1, starttls=True)
    typ, _ = m.select("INBOX", readonly=True)
    assert typ == "OK"
    m.logout()


@check("POP3 port: STLS (CA verified) then USER/PASS")
def _():
    p = pop3_login(P["POP3"], USER1, PASS1, stls=True)
    assert p.stat()[0] >= 1
    p.quit()


# --- untrusted certificate ---------------------------------------------------

@check("untrusted SMTPS/IMAPS/POP3S fail certificate verification, yet are live servers")
def _():
    reasons = [
        expect_verify_failure(lambda: smtplib.SMTP_SSL(
            HOST, P["UNTRUSTED_SMTPS"], context=ctx(), timeout=TIMEOUT)),
        expect_verify_failure(lambda: imaplib.IMAP4_SSL(
            HOST, P["UNTRUSTED_IMAPS"], ssl_context=ctx(), timeout=TIMEOUT)),
        expect_verify_failure(lambda: poplib.POP3_SSL(
            HOST, P["UNTRUSTED_POP3S"], context=ctx(), timeout=TIMEOUT)),
    ]
    # Without verification the same ports speak their protocols.
    with smtplib.SMTP_SSL(HOST, P["UNTRUSTED_SMTPS"], context=no_verify_ctx(), timeout=TIMEOUT) as s:
        assert s.noop()[0] == 250
    m = imaplib.IMAP4_SSL(HOST, P["UNTRUSTED_IMAPS"], ssl_context=no_verify_ctx(), timeout=TIMEOUT)
    m.login(USER1, PASS1)
    m.logout()
    p = poplib.POP3_SSL(HOST, P["UNTRUSTED_POP3S"], context=no_verify_ctx(), timeout=TIMEOUT)
    p.user(USER1)
    p.pass_(PASS1)
    p.quit()
    return "; ".join(sorted(set(reasons)))


# --- OAuth 2 -------------------------------------------------------------------

OAUTH_USER = env("MAILSTACK_OAUTH_USER")
OAUTH = {kind: env(f"MAILSTACK_OAUTH_{kind.upper()}") for kind in ("valid", "expired", "revoked")}


def xoauth2(token):
    return f"user={OAUTH_USER}\x01auth=Bearer {token}\x01\x01".encode()


def oauthbearer(token):
    return f"n,a={OAUTH_USER},\x01auth=Bearer {token}\x01\x01".encode()


@check("OAuth: IMAP, POP3 and SMTP take the valid token and refuse the others (XOAUTH2, OAUTHBEARER)")
def _():
    for name, sasl in (("XOAUTH2", xoauth2), ("OAUTHBEARER", oauthbearer)):
        # The answer to an error challenge: XOAUTH2 empty, OAUTHBEARER %x01.
        abort = b"" if name == "XOAUTH2" else b"\x01"
        for kind, token in OAUTH.items():
            ok = kind == "valid"
            initial = base64.b64encode(sasl(token)).decode()
            # IMAP: the response after the first (empty) challenge, and the
            # abort after the error challenge.
            m = imaplib.IMAP4_SSL(HOST, P["IMAPS"], ssl_context=ctx(), timeout=TIMEOUT)
            try:
                m.authenticate(name, lambda c, t=token: sasl(t) if c == b"" else abort)
                assert ok, f"IMAP {name} took the {kind} token"
                m.logout()
            except imaplib.IMAP4.error as e:
                assert not ok, f"IMAP {name} refused the valid token: {e}"
            # POP3: the initial response on the AUTH line (RFC 5034).
            p = poplib.POP3_SSL(HOST, P["POP3S"], context=ctx(), timeout=TIMEOUT)
            p._putcmd(f"AUTH {name} {initial}")
            line = p._getline()[0]
            if line.startswith(b"+ "):
                status = json.loads(base64.b64decode(line[2:]))["status"]
                assert status in ("401", "invalid_token"), status
                p._putcmd(base64.b64encode(abort).decode())
                line = p._getline()[0]
            assert line.startswith(b"+OK") == ok, f"POP3 {name} with the {kind} token: {line!r}"
            p.quit()
            # SMTP through Postfix, which asks Dovecot.
            with smtplib.SMTP_SSL(HOST, P["SMTPS"], context=ctx(), timeout=TIMEOUT) as s:
                code, reply = s.docmd("AUTH", f"{name} {initial}")
                if code == 334:
                    code, reply = s.docmd(base64.b64encode(abort).decode())
                assert (code == 235) == ok, f"SMTP {name} with the {kind} token: {code} {reply!r}"
    return f"{OAUTH_USER}: 3 tokens x 2 mechanisms x 3 protocols"


# --- doveadm ------------------------------------------------------------------

@check("doveadm -c $MAILSTACK_DOVECOT_CONF sees user1's mail")
def _():
    doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
    out = subprocess.run(
        [doveadm, "-c", DOVECOT_CONF, "search", "-u", USER1, "mailbox", "INBOX",
         "HEADER", "Message-ID", TOKEN_SMTPS],
        capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip(), "doveadm search found nothing"


print(f"stack_proof: {PASSED} passed, {FAILED} failed")
sys.exit(1 if FAILED else 0)

#!/usr/bin/env python3
"""The other side of imap-dump's tests: Python's own imaplib talks to the same
Dovecot, to load mailboxes (APPEND, exact bytes) and to say what the server
holds (UID FETCH n BODY.PEEK[] one message at a time, and the flags).

Connection from the environment: ORACLE_PORT (IMAPS), ORACLE_CA, ORACLE_USER,
ORACLE_PASS. Mailbox names are passed as the server spells them (modified UTF-7).

  imap_oracle.py create MAILBOX
  imap_oracle.py append MAILBOX [--seen] FILE...     prints the new UIDs
  imap_oracle.py fetch MAILBOX                         JSON lines {uid, flags, body(base64)}
  imap_oracle.py flags MAILBOX                         JSON {"count": n, "flags": {uid: "..."}}
"""
import base64
import imaplib
import json
import os
import re
import ssl
import sys


def connect():
    ctx = ssl.create_default_context(cafile=os.environ["ORACLE_CA"])
    m = imaplib.IMAP4_SSL("localhost", int(os.environ["ORACLE_PORT"]), ssl_context=ctx)
    # SASL PLAIN, because the password may be UTF-8.
    raw = b"\0" + os.environ["ORACLE_USER"].encode() + b"\0" + os.environ["ORACLE_PASS"].encode()
    m.authenticate("PLAIN", lambda _challenge: raw)
    return m


def quoted(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check(typ, data):
    if typ != "OK":
        sys.exit(f"imap_oracle: {typ} {data}")
    return data


def uids(m, mailbox):
    check(*m.select(quoted(mailbox), readonly=True))
    data = check(*m.uid("SEARCH", "ALL"))
    return [int(u) for u in data[0].split()]


def main():
    cmd, mailbox, *rest = sys.argv[1:]
    m = connect()
    if cmd == "create":
        check(*m.create(quoted(mailbox)))
    elif cmd == "append":
        flags = "(\\Seen)" if rest and rest[0] == "--seen" else None
        files = rest[1:] if flags else rest
        for path in files:
            with open(path, "rb") as f:
                data = f.read()
            typ, resp = m.append(quoted(mailbox), flags, None, data)
            check(typ, resp)
            match = re.search(rb"APPENDUID \d+ (\d+)", resp[0])
            print(match.group(1).decode() if match else "?")
    elif cmd == "fetch":
        for uid in uids(m, mailbox):
            data = check(*m.uid("FETCH", str(uid), "(FLAGS BODY.PEEK[])"))
            body = data[0][1]
            flags = re.search(rb"FLAGS \(([^)]*)\)", data[0][0]).group(1).decode()
            print(json.dumps({"uid": uid, "flags": flags, "body": base64.b64encode(body).decode()}))
    elif cmd == "flags":
        result = {}
        for uid in uids(m, mailbox):
            data = check(*m.uid("FETCH", str(uid), "(FLAGS)"))
            result[uid] = re.search(rb"FLAGS \(([^)]*)\)", data[0]).group(1).decode()
        print(json.dumps({"count": len(result), "flags": result}))
    else:
        sys.exit(f"imap_oracle: unknown command {cmd}")
    m.logout()


main()

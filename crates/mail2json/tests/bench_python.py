#!/usr/bin/env python3
"""The Python side of scripts/bench.d/mail2json: the fields mail2json writes,
with Python's email package (policy.default, get_body, attachments with
sha256), one JSON line per message of an mbox. Usage: bench_python.py MBOX"""
import email
import hashlib
import json
import mailbox
import sys
from email import policy


def addresses(msg, name):
    try:
        h = msg[name]
        return [] if h is None else [[a.display_name, a.addr_spec] for a in h.addresses]
    except Exception:  # noqa: BLE001
        return []


def content(part):
    try:
        return None if part is None else part.get_content()
    except Exception:  # noqa: BLE001
        return None


def main(path):
    box = mailbox.mbox(path, factory=lambda f: email.message_from_binary_file(f, policy=policy.default), create=False)
    out = sys.stdout
    for msg in box:
        try:
            rec = convert(msg)
        except Exception as e:  # noqa: BLE001 - one bad message never stops the run
            rec = {"error": "%s: %s" % (type(e).__name__, e)}
        out.write(json.dumps(rec, ensure_ascii=False, default=str).encode("utf-8", "backslashreplace").decode("utf-8") + "\n")


def convert(msg):
    try:
        plain = msg.get_body(("plain",))
        html = msg.get_body(("html",))
    except Exception:  # noqa: BLE001
        plain = html = None
    attachments = []
    for part in msg.walk():
        if part.is_multipart() or part is plain or part is html:
            continue
        data = part.get_payload(decode=True) or b""
        attachments.append({"filename": part.get_filename(), "content_type": part.get_content_type(),
                            "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return {"subject": str(msg["subject"] or ""), "from": addresses(msg, "from"), "to": addresses(msg, "to"),
           "cc": addresses(msg, "cc"), "date": str(msg["date"] or ""), "message_id": str(msg["message-id"] or ""),
           "text": content(plain), "html": content(html), "attachments": attachments}


if __name__ == "__main__":
    main(sys.argv[1])

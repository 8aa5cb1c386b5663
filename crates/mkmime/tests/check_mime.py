#!/usr/bin/env python3
"""An independent reader for mkmime's tests: parses a message file with
Python's email package (policy.default) and prints what it found as JSON:
every defect in the tree, the decoded header fields, each leaf part's type,
file name, Content-ID and the sha256 of its decoded bytes, and the line
statistics (longest line, line ends)."""

import email
import hashlib
import json
import sys
from email import policy


def addresses(msg, name):
    header = msg[name]
    if header is None:
        return None
    return [{"name": a.display_name, "address": a.addr_spec} for a in header.addresses]


def main():
    data = open(sys.argv[1], "rb").read()
    msg = email.message_from_bytes(data, policy=policy.default)
    defects = []
    parts = []
    for part in msg.walk():
        for d in part.defects:
            defects.append(f"{part.get_content_type()}: {type(d).__name__}: {d}")
        for name, value in part.items():
            for d in getattr(value, "defects", ()):
                defects.append(f"{name}: {type(d).__name__}: {d}")
        if part.is_multipart():
            parts.append({"content_type": part.get_content_type()})
            continue
        payload = part.get_payload(decode=True) or b""
        entry = {
            "content_type": part.get_content_type(),
            "charset": part.get_content_charset(),
            "filename": part.get_filename(),
            "disposition": part.get_content_disposition(),
            "cte": part.get("Content-Transfer-Encoding"),
            "content_id": part.get("Content-ID"),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "size": len(payload),
        }
        if part.get_content_maintype() == "text" and part.get_filename() is None:
            entry["text"] = part.get_content().replace("\r\n", "\n")
        parts.append(entry)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = {
        "defects": defects,
        "subject": msg["subject"],
        "from": addresses(msg, "from"),
        "to": addresses(msg, "to"),
        "cc": addresses(msg, "cc"),
        "bcc": addresses(msg, "bcc"),
        "reply_to": addresses(msg, "reply-to"),
        "sender": addresses(msg, "sender"),
        "message_id": msg["message-id"],
        "in_reply_to": msg["in-reply-to"],
        "references": msg["references"],
        "date": msg["date"],
        "mime_version": msg["mime-version"],
        "content_type": msg.get_content_type(),
        "extra": {k: str(v) for k, v in msg.items() if k.lower().startswith("x-")},
        "parts": parts,
        "max_line": max((len(l.rstrip(b"\r")) for l in lines), default=0),
        "crlf_lines": sum(1 for l in lines if l.endswith(b"\r")),
        "lines": len(lines),
        "non_ascii": any(b > 127 for b in data),
    }
    json.dump(out, sys.stdout, ensure_ascii=False)


main()

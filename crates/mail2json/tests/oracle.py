#!/usr/bin/env python3
"""Python's email package as the oracle for mail2json.

    oracle.py extract FILE...                 one JSON line per message file
    oracle.py compare MAIL2JSON.jsonl FILE... compare, print a report, exit 1
                                              when agreement is under --min

Each FILE is one message. Fields compared: subject, from and to addresses,
the text body, attachment names and sizes. The body model is RFC 8621's
(section 4.1.4, written again here over Python's MIME tree), as mail2json's
schema 2 uses it: `text` joins the text/plain parts of textBody; attachments
are RFC 8621's, then inline media shown in both bodies; message/rfc822 parts
are leaves (their size is not compared: Python re-serialises them).
"""
import email
import json
import re
import sys
from email import policy


def addresses(msg, name):
    try:
        header = msg[name]
        if header is None:
            return []
        return [a.addr_spec for a in header.addresses]
    except Exception as e:  # noqa: BLE001 - the oracle reports, never stops
        return ["<python-error: %s>" % type(e).__name__]


def header_defects(msg, name):
    """Defects Python itself recorded while parsing one header."""
    try:
        header = msg[name]
        return [type(d).__name__ for d in getattr(header, "defects", ())]
    except Exception as e:  # noqa: BLE001
        return [type(e).__name__]


def structure_defects(msg):
    """Defects Python recorded for the MIME structure, in any part."""
    out = []
    for part in msg.walk():
        out.extend(type(d).__name__ for d in part.defects)
    return out


def text_of(part):
    if part is None:
        return None
    try:
        return part.get_content()
    except Exception as e:  # noqa: BLE001
        return "<python-error: %s>" % type(e).__name__


def is_inline_media(ctype):
    return ctype.split("/")[0] in ("image", "audio", "video")


def has_name(part):
    try:
        return part.get_param("name") is not None or part.get_param(
            "filename", header="content-disposition") is not None
    except Exception:  # noqa: BLE001
        return False


def parse_structure(parts, multipart_type, in_alternative, html_body, text_body, attachments):
    """RFC 8621 section 4.1.4, written from the RFC again over Python's tree."""
    text_length = len(text_body) if text_body is not None else -1
    html_length = len(html_body) if html_body is not None else -1
    for i, part in enumerate(parts):
        ctype = part.get_content_type()
        is_multipart = part.get_content_maintype() == "multipart" and part.is_multipart()
        is_inline = (part.get_content_disposition() != "attachment"
                     and (ctype in ("text/plain", "text/html") or is_inline_media(ctype))
                     and (i == 0 or (multipart_type != "related"
                                     and (is_inline_media(ctype) or not has_name(part)))))
        if is_multipart:
            sub = part.get_content_subtype()
            parse_structure(part.get_payload(), sub, in_alternative or sub == "alternative",
                            html_body, text_body, attachments)
        elif is_inline:
            if multipart_type == "alternative":
                if ctype == "text/plain":
                    if text_body is not None:
                        text_body.append(part)
                elif ctype == "text/html":
                    if html_body is not None:
                        html_body.append(part)
                else:
                    attachments.append(part)
                continue
            if in_alternative:
                if ctype == "text/plain":
                    html_body = None
                if ctype == "text/html":
                    text_body = None
            if text_body is not None:
                text_body.append(part)
            if html_body is not None:
                html_body.append(part)
            if (text_body is None or html_body is None) and is_inline_media(ctype):
                attachments.append(part)
        else:
            attachments.append(part)
    if multipart_type == "alternative" and text_body is not None and html_body is not None:
        if text_length == len(text_body) and html_length != len(html_body):
            text_body.extend(html_body[html_length:])
        if html_length == len(html_body) and text_length != len(text_body):
            html_body.extend(text_body[text_length:])


def body_model(msg):
    """textBody, htmlBody, and attachments as mail2json lists them: RFC 8621's,
    then the inline media it lists only in both bodies."""
    text, html, att = [], [], []
    parse_structure([msg], "mixed", False, html, text, att)
    for p in text + html:
        if is_inline_media(p.get_content_type()) and not any(p is a for a in att):
            att.append(p)
    return text, html, att


def joined_text(parts, ctype):
    joined = None
    for p in parts:
        if p.get_content_type() != ctype:
            continue
        t = text_of(p)
        if joined is None:
            joined = t
        else:
            if joined and not joined.endswith("\n"):
                joined += "\n"
            joined += t
    return joined


def attachments(parts):
    out = []
    for part in parts:
        try:
            name = part.get_filename()
        except Exception:  # noqa: BLE001
            name = "<python-error>"
        if part.get_content_maintype() == "message":
            size = None
        else:
            try:
                payload = part.get_payload(decode=True)
                size = len(payload) if payload is not None else None
            except Exception:  # noqa: BLE001
                size = None
        out.append([name, size])
    return out


def extract(path):
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=policy.default)
    try:
        subject = msg["subject"]
        subject = None if subject is None else str(subject)
    except Exception as e:  # noqa: BLE001
        subject = "<python-error: %s>" % type(e).__name__
    try:
        text_body, _, attached = body_model(msg)
    except Exception:  # noqa: BLE001
        text_body, attached = [], []
    return {
        "file": path,
        "subject": subject,
        "from": addresses(msg, "from"),
        "to": addresses(msg, "to"),
        "text": joined_text(text_body, "text/plain"),
        "attachments": attachments(attached),
        "defects": {
            "subject": header_defects(msg, "subject"),
            "from": header_defects(msg, "from"),
            "to": header_defects(msg, "to"),
            "structure": structure_defects(msg),
        },
    }


def norm_text(t):
    if t is None:
        return None
    t = t.replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in t.split("\n")).strip()


def norm_subject(s):
    if s is None:
        return None
    return re.sub(r"\s+", " ", s).strip()


def mail2json_view(rec):
    if "error" in rec:
        return {"error": rec["error"]}
    return {
        "subject": norm_subject(rec.get("subject")),
        "from": [a["address"].lower() for a in rec.get("from", [])],
        "to": [a["address"].lower() for a in rec.get("to", [])],
        "text": norm_text(rec.get("text")),
        # Files found inside parts (uuencode, winmail.dat) have an "origin";
        # Python's email package does not see them.
        "attachments": [
            [a["filename"], a["size"]]
            for a in rec.get("attachments", [])
            if "origin" not in a
        ],
    }


def python_view(p):
    return {
        "subject": norm_subject(p["subject"]),
        "from": [a.lower() for a in p["from"]],
        "to": [a.lower() for a in p["to"]],
        "text": norm_text(p["text"]),
        "attachments": p["attachments"],
        "defects": p["defects"],
    }


def same_attachments(ours, theirs):
    if len(ours) != len(theirs):
        return False
    for (n1, s1), (n2, s2) in zip(ours, theirs):
        if (n1 or None) != (n2 or None):
            return False
        if s2 is not None and s1 != s2:
            return False
    return True


PYTHON_FAILED = re.compile("[\ufffd\udc80-\udcff]|<python-error")
STRUCTURE_FAILURES = {
    "StartBoundaryNotFoundDefect",
    "CloseBoundaryNotFoundDefect",
    "MultipartInvariantViolationDefect",
    "MissingHeaderBodySeparatorDefect",
    "NoBoundaryInMultipartDefect",
    "InvalidBase64LengthDefect",
}
CHARSET_DEFECTS = ("charset-", "unknown-charset", "raw-8bit-header", "encoded-word")


def skeleton(value):
    """The ASCII characters of a value: what both sides must agree on when
    they only differ in how non-ASCII bytes were decoded."""
    if value is None:
        return None
    if isinstance(value, list):
        return [skeleton(v) for v in value]
    return re.sub("[^\x00-\x7f]", "", value)


def explained(field, mine, theirs, rec):
    """A difference in non-ASCII characters only, where Python could not
    decode the bytes (U+FFFD, surrogate escapes, LookupError) or mail2json
    reports that the label was wrong or missing. Each such case is listed in
    docs/mail2json-oracles.md."""
    structure = theirs["defects"]["structure"]
    if field in ("text", "attachments") and any(d in STRUCTURE_FAILURES for d in structure):
        # Python could not find the boundaries or the header block it
        # expected and says so; mail2json parsed the structure differently.
        return "python-structure-defect"
    if field in ("subject", "from", "to") and (
        theirs["defects"][field]
        or "MissingHeaderBodySeparatorDefect" in structure
        or "FirstHeaderLineIsContinuationDefect" in structure
    ):
        return "python-header-defect"
    if field == "subject" and "=?" in (theirs["subject"] or "") and "=?" not in (mine["subject"] or ""):
        # Python left an encoded-word undecoded (e.g. ISO-2022-JP in a
        # structured position); mail2json decoded it.
        return "python-left-encoded-word"
    if field == "attachments":
        ours = [[n, s] for n, s in mine["attachments"]]
        their = [[n, s] for n, s in theirs["attachments"]]
        if len(ours) != len(their):
            return False
        if any(s2 is not None and s1 != s2 for (_, s1), (_, s2) in zip(ours, their)):
            return False
        a, b = [n for n, _ in ours], [n for n, _ in their]
    else:
        a, b = mine[field], theirs[field]
    python_failed = PYTHON_FAILED.search(json.dumps(b, ensure_ascii=False)) is not None
    if isinstance(b, str) and b.startswith("<python-error: LookupError"):
        # Python does not know the charset label; mail2json decoded it.
        return a is not None and "\ufffd" not in a and "python-unknown-charset"
    if isinstance(b, str) and b.startswith("<python-error"):
        return any(d.startswith(CHARSET_DEFECTS) for d in rec.get("defects", [])) and "python-error"
    flagged = any(d.startswith(CHARSET_DEFECTS) for d in rec.get("defects", []))
    if not (python_failed or flagged):
        return False
    if PYTHON_FAILED.search(json.dumps(a, ensure_ascii=False) or ""):
        return False
    if skeleton(a) != skeleton(b):
        return False
    return "python-undecodable" if python_failed else "mislabelled-charset"


def compare(jsonl, files, minimum, report_path):
    ours = {}
    with open(jsonl, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            ours[rec["source"]["path"]] = rec
    classes = {}
    agree = 0
    explained_count = 0
    details = []
    for path in files:
        theirs = python_view(extract(path))
        rec = ours.get(path)
        if rec is None:
            diff = ["missing-in-mail2json"]
            mine = {}
        else:
            mine = mail2json_view(rec)
            if "error" in mine:
                diff = ["mail2json-error"]
            else:
                diff = [k for k in ("subject", "from", "to", "text") if mine[k] != theirs[k]]
                if not same_attachments(mine["attachments"], theirs["attachments"]):
                    diff.append("attachments")
        if not diff:
            agree += 1
            continue
        reasons = [explained(d, mine, theirs, rec) for d in diff] if rec is not None and "error" not in mine else [False]
        if all(reasons):
            explained_count += 1
            for d, r in zip(diff, reasons):
                key = "explained %s: %s" % (d, r)
                classes[key] = classes.get(key, 0) + 1
            continue
        for d in diff:
            classes[d] = classes.get(d, 0) + 1
        details.append({"file": path, "fields": diff,
                        "mail2json": {k: mine.get(k) for k in diff if k in mine},
                        "python": {k: theirs.get(k) for k in diff if k in theirs}})
    total = len(files)
    share = (agree + explained_count) / total if total else 1.0
    if report_path:
        with open(report_path, "w", encoding="utf-8", errors="backslashreplace") as f:
            for d in details:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
    print("strict agreement %d/%d = %.2f%%" % (agree, total, 100 * agree / max(total, 1)))
    print("explained by Python's undecodable bytes or a charset defect of mail2json: %d" % explained_count)
    print("agreement %d/%d = %.2f%%" % (agree + explained_count, total, 100 * share))
    for k, v in sorted(classes.items(), key=lambda kv: -kv[1]):
        print("  %-50s %d" % (k, v))
    return 0 if share >= minimum else 1


def main(argv):
    if len(argv) >= 2 and argv[1] == "extract":
        for path in argv[2:]:
            line = json.dumps(extract(path), ensure_ascii=False)
            sys.stdout.buffer.write(line.encode("utf-8", "backslashreplace") + b"\n")
        return 0
    if len(argv) >= 3 and argv[1] == "compare":
        args = argv[2:]
        minimum = 0.97
        report = None
        while args and args[0].startswith("--"):
            if args[0] == "--min":
                minimum = float(args[1])
            elif args[0] == "--report":
                report = args[1]
            args = args[2:]
        return compare(args[0], args[1:], minimum, report)
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))

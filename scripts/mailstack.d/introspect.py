#!/usr/bin/env python3
"""The mail stack's OAuth 2 token introspection endpoint (RFC 7662).

Dovecot's oauth2 passdb POSTs `token=...` to /introspect and reads `active`
and `username` from the JSON answer. The tokens live in TOKENS (a JSON file
written by scripts/mailstack, readable by root only):
{"user": ..., "valid": ..., "expired": ..., "revoked": ...}. The valid token
is active; the expired one has an `exp` in the past and the revoked one is
marked revoked, so both are inactive, as a real authorization server answers.
Each request is logged (without the token) to stderr.

    introspect.py PORT TOKENS
"""
import json
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class Introspect(BaseHTTPRequestHandler):
    tokens = {}

    def answer(self, token):
        t = self.tokens
        now = int(time.time())
        if token == t["valid"]:
            body = {"active": True, "username": t["user"], "scope": "mail",
                    "exp": now + 3600, "token_type": "Bearer"}
        elif token == t["expired"]:
            body = {"active": False, "exp": now - 3600}
        else:
            # Revoked, or never issued: RFC 7662 says only "active": false.
            body = {"active": False}
        which = next((k for k in ("valid", "expired", "revoked") if t[k] == token), "unknown")
        self.log_message("introspect: %s token -> active=%s", which, body["active"])
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        self.answer((form.get("token") or [""])[0])

    def do_GET(self):
        # introspection_mode = get (?token=) or auth (Authorization: Bearer).
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        token = (query.get("token") or query.get("access_token") or [""])[0]
        auth = self.headers.get("Authorization") or ""
        if not token and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        self.answer(token)

    def log_message(self, fmt, *args):
        # The default logs the request line, which may hold a token (GET).
        if fmt.startswith("introspect:"):
            sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))
            sys.stderr.flush()


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    Introspect.tokens = load(path)
    server = ThreadingHTTPServer(("127.0.0.1", port), Introspect)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Minimal receiver for QLM-style signed webhooks (as sent by keyhook or Soraco QLM).

Usage:  KEYHOOK_SECRET=my-secret-key python3 qlm_receiver.py [PORT]
        PORT defaults to 8080; 0 picks a free port. Binds 127.0.0.1 only.

Standard library only. Prints one line per POST to stdout:
    valid <delivery-id> <ActivationKey> <Name>
    invalid <reason>
"""
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20  # 1 MiB: a QLM payload is ~1 KB; refuse to buffer arbitrary amounts.

SECRET = os.environ.get("KEYHOOK_SECRET", "")
if not SECRET:
    # Never fall back to a default or empty secret: anyone could then forge requests.
    print("KEYHOOK_SECRET is not set or empty; refusing to start", file=sys.stderr)
    sys.exit(2)
SECRET_BYTES = SECRET.encode("utf-8")

_out_lock = threading.Lock()


def emit(line: str) -> None:
    # One write + flush per line, under a lock: requests run on several threads and
    # the output is usually read line by line through a pipe, which is block-buffered.
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def expected_signature(raw_body: bytes) -> bytes:
    # QLM's scheme is NOT an HMAC: it is SHA-256 over the raw body bytes immediately
    # followed by the secret's UTF-8 bytes, as lowercase hex.
    return hashlib.sha256(raw_body + SECRET_BYTES).hexdigest().encode("ascii")


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 gives keep-alive: the sender reuses one connection for many licenses.
    # This requires every response to carry an exact Content-Length (see reply()).
    protocol_version = "HTTP/1.1"

    def reply(self, code: int, text: str, close: bool = False) -> None:
        body = text.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        # Only Content-Length-delimited bodies are supported (keyhook, QLM and curl send them).
        if "Transfer-Encoding" in self.headers:
            emit("invalid length-required")
            return self.reply(411, "length required", close=True)
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            emit("invalid bad-length")
            return self.reply(400, "bad content-length", close=True)
        if length > MAX_BODY:
            # Body left unread, so the connection cannot be reused: close it.
            emit("invalid too-large")
            return self.reply(413, "too large", close=True)

        # Read the body as raw bytes and verify THOSE bytes before any JSON parsing.
        # Re-serialising parsed JSON would not reproduce the signed bytes (key order,
        # whitespace, number and escape formatting), and parsing untrusted input
        # before authenticating it is needless exposure.
        raw = self.rfile.read(length)

        received = self.headers.get("X-QLM-Signature", "")
        if not received:
            emit("invalid missing-signature")
            return self.reply(401, "invalid signature")
        # Constant-time comparison: '==' stops at the first differing byte, and that
        # timing difference can let an attacker guess a valid signature byte by byte.
        # (Compared as bytes: compare_digest rejects non-ASCII str.)
        if not hmac.compare_digest(received.encode("latin-1"), expected_signature(raw)):
            emit("invalid bad-signature")
            return self.reply(401, "invalid signature")

        # Authentic: now it is safe to parse.
        try:
            payload = json.loads(raw)
            name = payload.get("Name") or "-"
            key = (payload.get("LicenseInfo") or {}).get("ActivationKey") or "-"
        except (ValueError, AttributeError):
            emit("invalid bad-json")
            return self.reply(400, "bad json")

        delivery = self.headers.get("X-Keyhook-Delivery") or "-"
        emit(f"valid {delivery} {key} {name}")
        self.reply(200, "ok")

    def not_allowed(self) -> None:
        self.reply(405, "method not allowed")

    do_GET = do_PUT = do_PATCH = do_DELETE = not_allowed

    def log_message(self, format, *args) -> None:
        pass  # quiet the default per-request access log on stderr


def main() -> None:
    arg = sys.argv[1] if len(sys.argv) > 1 else "8080"
    if not arg.isdigit() or int(arg) > 65535:
        print(f"usage: {sys.argv[0]} [PORT]  (0-65535, default 8080)", file=sys.stderr)
        sys.exit(2)

    # Make both signals end serve_forever() with exit status 0. (Set SIGINT explicitly:
    # Python leaves it ignored if it was ignored at startup, e.g. under `cmd &` in a script.)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(0))

    try:
        server = ThreadingHTTPServer(("127.0.0.1", int(arg)), Handler)
    except OSError as e:
        print(f"cannot listen on 127.0.0.1:{arg}: {e}", file=sys.stderr)
        sys.exit(1)
    emit(f"listening on http://127.0.0.1:{server.server_address[1]}")
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

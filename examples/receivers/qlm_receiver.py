#!/usr/bin/env python3
"""Minimal receiver for signed webhooks as sent by keyhook (or Soraco QLM).

Usage:  KEYHOOK_SECRET=my-secret-key python3 qlm_receiver.py [PORT]
        PORT defaults to 8080; 0 picks a free port. Binds 127.0.0.1 only.

Verifies two signature schemes with the one secret in KEYHOOK_SECRET:
  - QLM: X-QLM-Signature = hex SHA-256(body || secret).
  - Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature; the secret
    must then be a `whsec_<base64>` secret.
A request with webhook-signature is checked as Standard Webhooks, otherwise as QLM;
a request carrying both header sets must pass both.

Standard library only. Prints one line per POST to stdout:
    valid <delivery-id> <ActivationKey> <Name>
    invalid <reason>
"""
import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20  # 1 MiB: a QLM payload is ~1 KB; refuse to buffer arbitrary amounts.

# Standard Webhooks: reject a webhook-timestamp more than this many seconds away from
# our clock, in the past (a replayed or long-delayed request) or in the future (a
# skewed sender clock). Five minutes is the spec's recommendation.
TOLERANCE_SECONDS = 5 * 60
STANDARD_PREFIX = "whsec_"

SECRET = os.environ.get("KEYHOOK_SECRET", "")
if not SECRET:
    # Never fall back to a default or empty secret: anyone could then forge requests.
    print("KEYHOOK_SECRET is not set or empty; refusing to start", file=sys.stderr)
    sys.exit(2)
SECRET_BYTES = SECRET.encode("utf-8")

# Base64 in the standard alphabet; the trailing "=" padding is optional.
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_TIMESTAMP = re.compile(r"[+-]?[0-9]{1,20}")


def decode_base64(text: str):
    """Strict base64 (standard alphabet, padding optional) -> bytes, or None."""
    if not _B64.fullmatch(text):
        return None
    core = text.rstrip("=")
    try:
        return base64.b64decode(core + "=" * (-len(core) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def standard_key(secret: str):
    # The HMAC key is the base64-decoded part after "whsec_" (NOT the secret's text).
    # A secret of another shape is fine for QLM but can't verify Standard Webhooks.
    if not secret.startswith(STANDARD_PREFIX):
        return None
    return decode_base64(secret[len(STANDARD_PREFIX):]) or None


STANDARD_KEY = standard_key(SECRET)  # None: Standard Webhooks requests get bad-secret

_out_lock = threading.Lock()
_warn_lock = threading.Lock()
_warned_bad_secret = False


def warn_bad_secret_once() -> None:
    global _warned_bad_secret
    with _warn_lock:
        if _warned_bad_secret:
            return
        _warned_bad_secret = True
    # Never print the secret itself.
    print(
        "warning: a request carries webhook-signature (Standard Webhooks) but "
        "KEYHOOK_SECRET is not a `whsec_<base64>` secret; such requests are "
        "rejected as bad-secret",
        file=sys.stderr,
        flush=True,
    )


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


def check_standard(raw_body: bytes, msg_id: str, timestamp: str, signatures: str):
    """Standard Webhooks check. Returns None if it passes, else the reason."""
    if STANDARD_KEY is None:
        warn_bad_secret_once()
        return "bad-secret"
    if not msg_id or not timestamp:
        return "missing-signature"
    if not _TIMESTAMP.fullmatch(timestamp):
        return "bad-timestamp"
    sent_at = int(timestamp)
    age = int(time.time()) - sent_at
    if age > TOLERANCE_SECONDS or -age > TOLERANCE_SECONDS:
        return "stale-timestamp"
    # Signed content: "{id}.{timestamp}." followed by the raw body bytes. Header text
    # came in as latin-1, so encoding it back gives the bytes the sender signed.
    signed = msg_id.encode("latin-1") + b"." + str(sent_at).encode("ascii") + b"." + raw_body
    expected = hmac.new(STANDARD_KEY, signed, hashlib.sha256).digest()
    # Space-separated "v1,<base64>" entries; during a key rotation there are several,
    # and any one matching is enough. Other versions and non-base64 entries are skipped.
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        given = decode_base64(encoded)
        # Constant-time comparison of the decoded 32-byte MACs.
        if given is not None and hmac.compare_digest(given, expected):
            return None
    return "bad-signature"


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 gives keep-alive: the sender reuses one connection for many licenses.
    # This requires every response to carry an exact Content-Length (see reply()).
    protocol_version = "HTTP/1.1"
    # Send each response at once (TCP_NODELAY): the headers and the body go out in two
    # writes, and with Nagle's algorithm the second waits for the client's delayed ACK,
    # about 40 ms per request on a keep-alive connection.
    disable_nagle_algorithm = True

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
        # A repeated webhook-signature header is treated as one space-separated list.
        standard = " ".join(self.headers.get_all("webhook-signature") or []).strip()
        if not received and not standard:
            emit("invalid missing-signature")
            return self.reply(401, "invalid signature")

        # webhook-signature present: Standard Webhooks. If X-QLM-Signature is there too
        # (a sender migrating between schemes), both must pass.
        msg_id = self.headers.get("webhook-id", "").strip(" \t")
        if standard:
            timestamp = self.headers.get("webhook-timestamp", "").strip(" \t")
            reason = check_standard(raw, msg_id, timestamp, standard)
            if reason:
                emit(f"invalid {reason}")
                return self.reply(401, "invalid signature")

        # Constant-time comparison: '==' stops at the first differing byte, and that
        # timing difference can let an attacker guess a valid signature byte by byte.
        # (Compared as bytes: compare_digest rejects non-ASCII str.)
        if received and not hmac.compare_digest(
            received.encode("latin-1"), expected_signature(raw)
        ):
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

        delivery = self.headers.get("X-Keyhook-Delivery") or msg_id or "-"
        emit(f"valid {delivery} {key} {name}")
        self.reply(200, "ok")

    def not_allowed(self) -> None:
        self.reply(405, "method not allowed")

    do_GET = do_PUT = do_PATCH = do_DELETE = not_allowed

    def log_message(self, format, *args) -> None:
        pass  # quiet the default per-request access log on stderr


def main() -> None:
    arg = sys.argv[1] if len(sys.argv) > 1 else "8080"
    if not (arg.isascii() and arg.isdigit()) or int(arg) > 65535:
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

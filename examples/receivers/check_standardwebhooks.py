#!/usr/bin/env python3
"""Independent cross-check of Standard Webhooks signatures with the reference library.

Needs the PyPI package `standardwebhooks` (pip install standardwebhooks). It shares no
code with keyhook or with the example receivers, so it confirms that what keyhook sends
verifies with the Standard Webhooks reference implementation.

Usage:
  python3 check_standardwebhooks.py --secret-env NAME --headers FILE --body FILE
      Verifies one request. FILE for --headers holds `Name: value` lines (blank lines
      and lines starting with '#' are skipped). Prints `valid` and exits 0, or prints
      `invalid: <exception>` and exits 1.
  python3 check_standardwebhooks.py --secret-env NAME --listen PORT
      Serves HTTP/1.1 (keep-alive) on 127.0.0.1:PORT (0 = a free port). Prints
      `listening on http://127.0.0.1:<port>` first, then per POST `valid <webhook-id>`
      (answer 200) or `invalid <exception>` (answer 401). SIGTERM/SIGINT exit 0.

NAME is the name of the environment variable holding the `whsec_...` secret (the secret
itself never goes on the command line). Usage, secret and file errors exit 2.
"""
import argparse
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import standardwebhooks
except ImportError:
    print("the `standardwebhooks` package is missing: pip install standardwebhooks",
          file=sys.stderr)
    sys.exit(2)

MAX_BODY = 1 << 20

_out_lock = threading.Lock()


def emit(line: str) -> None:
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(2)


def describe(error: Exception) -> str:
    # Some library errors (e.g. a malformed signature entry) carry a terse message.
    text = str(error).strip()
    return text.replace("\n", " ") if text else type(error).__name__


def load_webhook(env_name: str) -> "standardwebhooks.Webhook":
    secret = os.environ.get(env_name, "")
    if not secret:
        fail(f"environment variable {env_name} is not set or empty")
    try:
        return standardwebhooks.Webhook(secret)
    except Exception as error:  # noqa: BLE001 - any failure means an unusable secret
        # Don't echo the secret; the exception text might quote it.
        fail(f"{env_name} is not a usable Standard Webhooks secret ({type(error).__name__})")


def verify(webhook, body: bytes, headers: dict):
    """None if the library accepts the request, else the reason."""
    try:
        webhook.verify(body, headers)
    except Exception as error:  # noqa: BLE001 - any exception is a rejection
        return describe(error)
    return None


def read_headers(path: str) -> dict:
    headers = {}
    try:
        with open(path, "rb") as file:
            lines = file.read().decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read headers file {path}: {error}")
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            fail(f"{path}:{number}: expected `Name: value`")
        headers[name.strip()] = value.strip()
    return headers


def check_once(webhook, headers_path: str, body_path: str) -> None:
    headers = read_headers(headers_path)
    try:
        with open(body_path, "rb") as file:
            body = file.read()
    except OSError as error:
        fail(f"cannot read body file {body_path}: {error}")
    reason = verify(webhook, body, headers)
    if reason is None:
        emit("valid")
        sys.exit(0)
    emit(f"invalid: {reason}")
    sys.exit(1)


def make_handler(webhook):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive; every response has a Content-Length
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
            if "Transfer-Encoding" in self.headers:
                emit("invalid length-required")
                return self.reply(411, "length required", close=True)
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                emit("invalid bad-length")
                return self.reply(400, "bad content-length", close=True)
            body = self.rfile.read(length)

            headers = {name: value for name, value in self.headers.items()}
            reason = verify(webhook, body, headers)
            if reason is not None:
                emit(f"invalid {reason}")
                return self.reply(401, "invalid signature")
            emit(f"valid {self.headers.get('webhook-id', '-').strip()}")
            self.reply(200, "ok")

        def not_allowed(self) -> None:
            self.reply(405, "method not allowed")

        do_GET = do_PUT = do_PATCH = do_DELETE = not_allowed

        def log_message(self, format, *args) -> None:
            pass

    return Handler


def listen(webhook, port: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(0))
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(webhook))
    except OSError as error:
        fail(f"cannot listen on 127.0.0.1:{port}: {error}")
    emit(f"listening on http://127.0.0.1:{server.server_address[1]}")
    try:
        server.serve_forever()
    finally:
        server.server_close()


def port_number(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError("expected a port 0-65535")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Verify Standard Webhooks requests with the `standardwebhooks` library."
    )
    parser.add_argument("--secret-env", required=True, metavar="NAME",
                        help="environment variable holding the whsec_ secret")
    parser.add_argument("--headers", metavar="FILE", help="file of `Name: value` lines")
    parser.add_argument("--body", metavar="FILE", help="file holding the raw body bytes")
    parser.add_argument("--listen", type=port_number, metavar="PORT",
                        help="serve on 127.0.0.1:PORT instead (0 = a free port)")
    args = parser.parse_args()  # exits 2 on usage errors

    if args.listen is not None:
        if args.headers or args.body:
            parser.error("--listen can't be combined with --headers/--body")
        listen(load_webhook(args.secret_env), args.listen)
    elif args.headers and args.body:
        check_once(load_webhook(args.secret_env), args.headers, args.body)
    else:
        parser.error("give --headers FILE and --body FILE, or --listen PORT")


if __name__ == "__main__":
    main()

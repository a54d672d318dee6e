#!/usr/bin/env python3
"""A stdlib-only Python reference for keyhook's job, for the benchmark's ratios.

It does what `keyhook run-task` does per matching license, minus the durable log:

  * runs the search (the condition after WHERE, with its dates already bound as `?`
    parameters) against the license database, read-only;
  * builds QLM's payload: compact JSON (`json.dumps(separators=(',', ':'),
    ensure_ascii=False)`), keys in QLM's order (Name, WebHookUserData, LicenseInfo with the
    35 fields in QLM's order), with keyhook's conversions (NULL text "", NULL number 0,
    NULL bool false, NULL date null, dates as YYYY-MM-DDTHH:MM:SS, LicenseModel as QLM's
    number);
  * signs it: sha256(body + secret).hexdigest() in X-QLM-Signature;
  * POSTs it with http.client over one keep-alive connection, one request at a time, and
    checks for a 2xx.

What it does NOT do (keyhook does): record every match as a pending delivery in a state
database before sending, and commit each attempt's outcome (status, timing, answer) as it
happens. So keyhook does strictly more work per delivery than this script.

Usage:
  reference.py --db DB --where "SubscriptionExpiryDate > ?" --param 2026-12-13T00:00:01 \
      --url http://127.0.0.1:PORT/hook --secret S --name NAME --user-data DATA
  reference.py ... --dump 20     # print the first 20 bodies and signatures, send nothing

Prints one JSON line: {"deliveries": n, "failed": n, "seconds": s, "rps": r}.
"""

import argparse
import hashlib
import http.client
import json
import re
import secrets
import sqlite3
import sys
import time
import urllib.parse

# QLM's LicenseInfo fields in QLM's order, with how keyhook stores and sends them
# (src/licenses/schema.rs, LICENSE_INFO).
LICENSE_INFO = [
    ("LicenseUpdatedOnServer", "bool"),
    ("ActivationKey", "text"),
    ("FullName", "text"),
    ("Country", "text"),
    ("AffiliateID", "text"),
    ("Email", "text"),
    ("Duration", "int"),
    ("ExpiryDate", "date"),
    ("UsesAdminEncryption", "bool"),
    ("MaintenanceRenewalDate", "date"),
    ("Features", "text"),
    ("OrderID", "text"),
    ("ReceiptID", "text"),
    ("SubscriptionID", "text"),
    ("LicenseModel", "model"),
    ("ProductID", "int"),
    ("MajorVersion", "int"),
    ("MinorVersion", "int"),
    ("NumLicenses", "int"),
    ("FloatingSeats", "int"),
    ("UserData", "text"),
    ("NewFeatures", "text"),
    ("NewFloatingSeats", "int"),
    ("ComputerID", "text"),
    ("ComputerName", "text"),
    ("Comment", "text"),
    ("LegacyKey", "text"),
    ("AvailableLicenses", "int"),
    ("OrderDate", "date"),
    ("ProductProperties", "text"),
    ("BundleID", "text"),
    ("ProductName", "text"),
    ("MaxReleaseCount", "int"),
    ("MaxReleasePeriodInDays", "int"),
    ("OrganizationID", "int"),
]

LICENSE_MODELS = [
    "none",
    "permanent",
    "trial",
    "subscription",
    "permanent_floating",
    "trial_floating",
    "subscription_floating",
    "permanent_cloud",
    "trial_cloud",
    "subscription_cloud",
]
MODEL_NUMBER = {name: index for index, name in enumerate(LICENSE_MODELS)}

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
LOOSE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?$")


def as_int(value):
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    text = str(value).strip()
    if text in ("true", "True"):
        return 1
    if text in ("false", "False"):
        return 0
    return int(text)


def as_text(value):
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def as_date(value):
    if value is None:
        return None
    text = as_text(value)
    if ISO.match(text):
        return text
    match = LOOSE.match(text.strip())
    if not match:
        return text
    day, hour, minute, second = match.groups()
    return f"{day}T{hour or '00'}:{minute or '00'}:{second or '00'}"


def as_model(value):
    if value is None:
        return 0
    name = as_text(value).strip()
    number = MODEL_NUMBER.get(name.lower())
    return number if number is not None else int(name)


CONVERT = {
    "bool": lambda value: as_int(value) != 0,
    "text": as_text,
    "int": as_int,
    "date": as_date,
    "model": as_model,
}
CONVERTERS = [(name, CONVERT[kind]) for name, kind in LICENSE_INFO]


def license_info(row):
    return {name: convert(value) for (name, convert), value in zip(CONVERTERS, row)}


def body_of(task_name, user_data, row):
    payload = {
        "Name": task_name,
        "WebHookUserData": user_data,
        "LicenseInfo": license_info(row),
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--where", required=True, help="condition with ? parameters")
    parser.add_argument("--param", action="append", default=[], help="one per ?, in order")
    parser.add_argument("--url", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--name", required=True, help="the task's name (payload Name)")
    parser.add_argument("--user-data", default="")
    parser.add_argument("--dump", type=int, default=0, help="print N bodies, send nothing")
    args = parser.parse_args()

    db = sqlite3.connect(f"file:{urllib.parse.quote(args.db)}?mode=ro", uri=True)
    columns = ", ".join(name for name, _ in LICENSE_INFO)
    cursor = db.execute(
        f"SELECT {columns} FROM LicenseKeys WHERE (\n{args.where}\n)", args.param
    )
    secret = args.secret.encode("utf-8")

    if args.dump:
        for index, row in enumerate(cursor):
            if index >= args.dump:
                break
            body = body_of(args.name, args.user_data, row)
            signature = hashlib.sha256(body + secret).hexdigest()
            print(json.dumps({"signature": signature, "body": body.decode("utf-8")},
                             ensure_ascii=False))
        return 0

    url = urllib.parse.urlsplit(args.url)
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=30)
    started = time.perf_counter()
    delivered = failed = 0
    for row in cursor:
        body = body_of(args.name, args.user_data, row)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "keyhook-reference/1",
            "X-QLM-Signature": hashlib.sha256(body + secret).hexdigest(),
            "X-Keyhook-Delivery": "msg_" + secrets.token_hex(16),
        }
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if 200 <= response.status < 300:
            delivered += 1
        else:
            failed += 1
    seconds = time.perf_counter() - started
    connection.close()
    total = delivered + failed
    print(json.dumps({
        "deliveries": delivered,
        "failed": failed,
        "seconds": round(seconds, 6),
        "rps": round(total / seconds, 1) if seconds > 0 else None,
    }))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

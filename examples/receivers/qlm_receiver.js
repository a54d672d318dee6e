#!/usr/bin/env node
// Minimal receiver for signed webhooks as sent by keyhook (or Soraco QLM).
//
// Usage:  KEYHOOK_SECRET=my-secret-key node qlm_receiver.js [PORT]
//         PORT defaults to 8080; 0 picks a free port. Binds 127.0.0.1 only.
//
// Verifies two signature schemes with the one secret in KEYHOOK_SECRET:
//   - QLM: X-QLM-Signature = hex SHA-256(body || secret).
//   - Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature; the secret
//     must then be a `whsec_<base64>` secret.
// A request with webhook-signature is checked as Standard Webhooks, otherwise as QLM;
// a request carrying both header sets must pass both.
//
// Standard library only. Prints one line per POST to stdout:
//     valid <delivery-id> <ActivationKey> <Name>
//     invalid <reason>
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');

const MAX_BODY = 1 << 20; // 1 MiB: a QLM payload is ~1 KB; refuse to buffer arbitrary amounts.

// Standard Webhooks: reject a webhook-timestamp more than this many seconds away from
// our clock, in the past (a replayed or long-delayed request) or in the future (a
// skewed sender clock). Five minutes is the spec's recommendation.
const TOLERANCE_SECONDS = 5 * 60;
const STANDARD_PREFIX = 'whsec_';

const secret = process.env.KEYHOOK_SECRET || '';
if (!secret) {
  // Never fall back to a default or empty secret: anyone could then forge requests.
  process.stderr.write('KEYHOOK_SECRET is not set or empty; refusing to start\n');
  process.exit(2);
}
const secretBytes = Buffer.from(secret, 'utf8');

// Base64 in the standard alphabet; the trailing "=" padding is optional. Checked with a
// regex first because Buffer.from(..., 'base64') silently skips characters it can't read.
const B64 = /^[A-Za-z0-9+/]+={0,2}$/;
const TIMESTAMP = /^[+-]?[0-9]{1,20}$/;

function decodeBase64(text) {
  if (!B64.test(text)) return null;
  const core = text.replace(/=+$/, '');
  if (core.length % 4 === 1) return null; // not a whole number of bytes
  return Buffer.from(core, 'base64');
}

function standardKey(value) {
  // The HMAC key is the base64-decoded part after "whsec_" (NOT the secret's text).
  // A secret of another shape is fine for QLM but can't verify Standard Webhooks.
  if (!value.startsWith(STANDARD_PREFIX)) return null;
  const key = decodeBase64(value.slice(STANDARD_PREFIX.length));
  return key && key.length > 0 ? key : null;
}

const standardKeyBytes = standardKey(secret); // null: Standard Webhooks requests get bad-secret
let warnedBadSecret = false;

function warnBadSecretOnce() {
  if (warnedBadSecret) return;
  warnedBadSecret = true;
  // Never print the secret itself.
  process.stderr.write(
    'warning: a request carries webhook-signature (Standard Webhooks) but ' +
      'KEYHOOK_SECRET is not a `whsec_<base64>` secret; such requests are ' +
      'rejected as bad-secret\n',
  );
}

const arg = process.argv[2] ?? '8080';
if (!/^\d+$/.test(arg) || Number(arg) > 65535) {
  process.stderr.write('usage: node qlm_receiver.js [PORT]  (0-65535, default 8080)\n');
  process.exit(2);
}

// On Linux, writes to a pipe or file are synchronous in Node, so each line is
// flushed as soon as it is written (tests read this output through a pipe).
const emit = (line) => process.stdout.write(line + '\n');

function expectedSignature(rawBody) {
  // QLM's scheme is NOT an HMAC: it is SHA-256 over the raw body bytes immediately
  // followed by the secret's UTF-8 bytes, as lowercase hex.
  const hex = crypto.createHash('sha256').update(rawBody).update(secretBytes).digest('hex');
  return Buffer.from(hex, 'ascii');
}

// Standard Webhooks check. Returns null if it passes, else the reason.
function checkStandard(rawBody, msgId, timestamp, signatures) {
  if (!standardKeyBytes) {
    warnBadSecretOnce();
    return 'bad-secret';
  }
  if (!msgId || !timestamp) return 'missing-signature';
  if (!TIMESTAMP.test(timestamp)) return 'bad-timestamp';
  const sentAt = BigInt(timestamp.replace(/^\+/, ''));
  const age = BigInt(Math.floor(Date.now() / 1000)) - sentAt;
  const tolerance = BigInt(TOLERANCE_SECONDS);
  if (age > tolerance || -age > tolerance) return 'stale-timestamp';
  // Signed content: "{id}.{timestamp}." followed by the raw body bytes. Node hands us
  // header values as latin-1 text, so encoding back gives the bytes the sender signed.
  const expected = crypto
    .createHmac('sha256', standardKeyBytes)
    .update(Buffer.from(`${msgId}.`, 'latin1'))
    .update(`${sentAt}.`)
    .update(rawBody)
    .digest();
  // Space-separated "v1,<base64>" entries; during a key rotation there are several,
  // and any one matching is enough. Other versions and non-base64 entries are skipped.
  for (const entry of signatures.split(/\s+/)) {
    const comma = entry.indexOf(',');
    if (comma < 0 || entry.slice(0, comma) !== 'v1') continue;
    const given = decodeBase64(entry.slice(comma + 1));
    // Constant-time comparison; timingSafeEqual needs equal lengths (a MAC is 32 bytes).
    if (given && given.length === expected.length && crypto.timingSafeEqual(given, expected)) {
      return null;
    }
  }
  return 'bad-signature';
}

function reply(res, code, text, close = false) {
  // An exact Content-Length (instead of chunked encoding) keeps responses simple and
  // lets the sender reuse the keep-alive connection for the next license.
  const body = Buffer.from(text, 'utf8');
  const headers = { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': body.length };
  if (close) headers.Connection = 'close';
  res.writeHead(code, headers);
  res.end(body);
}

const server = http.createServer((req, res) => {
  if (req.method !== 'POST') {
    res.setHeader('Allow', 'POST');
    return reply(res, 405, 'method not allowed');
  }

  // Collect the body as raw Buffer chunks and verify THOSE bytes before any JSON
  // parsing. Decoding to a string or re-serialising parsed JSON would not reproduce
  // the signed bytes (chunks can split UTF-8 sequences; key order, whitespace and
  // number formatting change), and parsing unauthenticated input is needless exposure.
  const chunks = [];
  let size = 0;
  let tooLarge = false;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY) tooLarge = true; // keep draining, but stop buffering
    else chunks.push(chunk);
  });
  req.on('end', () => {
    if (tooLarge) {
      emit('invalid too-large');
      return reply(res, 413, 'too large', true);
    }
    const raw = Buffer.concat(chunks);

    const received = req.headers['x-qlm-signature'] || '';
    const first = (name) => {
      const values = req.headersDistinct[name];
      return values ? values[0].replace(/^[ \t]+|[ \t]+$/g, '') : '';
    };
    // A repeated webhook-signature header is treated as one space-separated list.
    const standard = (req.headersDistinct['webhook-signature'] || []).join(' ').trim();
    if (!received && !standard) {
      emit('invalid missing-signature');
      return reply(res, 401, 'invalid signature');
    }

    // webhook-signature present: Standard Webhooks. If X-QLM-Signature is there too
    // (a sender migrating between schemes), both must pass.
    if (standard) {
      const reason = checkStandard(raw, first('webhook-id'), first('webhook-timestamp'), standard);
      if (reason) {
        emit(`invalid ${reason}`);
        return reply(res, 401, 'invalid signature');
      }
    }

    // Constant-time comparison: '===' stops at the first differing byte, and that
    // timing difference can let an attacker guess a valid signature byte by byte.
    // timingSafeEqual throws on unequal lengths, so check that first (the expected
    // length, 64, is public anyway).
    if (received) {
      const expected = expectedSignature(raw);
      const given = Buffer.from(received, 'latin1');
      if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
        emit('invalid bad-signature');
        return reply(res, 401, 'invalid signature');
      }
    }

    // Authentic: now it is safe to parse.
    let name, key;
    try {
      const payload = JSON.parse(raw.toString('utf8'));
      name = payload.Name || '-';
      key = (payload.LicenseInfo && payload.LicenseInfo.ActivationKey) || '-';
    } catch {
      emit('invalid bad-json');
      return reply(res, 400, 'bad json');
    }

    const delivery = req.headers['x-keyhook-delivery'] || first('webhook-id') || '-';
    emit(`valid ${delivery} ${key} ${name}`);
    reply(res, 200, 'ok');
  });
  req.on('error', () => res.destroy());
});

server.on('error', (err) => {
  process.stderr.write(`cannot listen on 127.0.0.1:${arg}: ${err.message}\n`);
  process.exit(1);
});

server.listen(Number(arg), '127.0.0.1', () => {
  emit(`listening on http://127.0.0.1:${server.address().port}`);
});

// Exit cleanly: stop accepting, drop idle keep-alive connections, then exit 0.
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}

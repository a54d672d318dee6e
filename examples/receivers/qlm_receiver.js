#!/usr/bin/env node
// Minimal receiver for QLM-style signed webhooks (as sent by keyhook or Soraco QLM).
//
// Usage:  KEYHOOK_SECRET=my-secret-key node qlm_receiver.js [PORT]
//         PORT defaults to 8080; 0 picks a free port. Binds 127.0.0.1 only.
//
// Standard library only. Prints one line per POST to stdout:
//     valid <delivery-id> <ActivationKey> <Name>
//     invalid <reason>
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');

const MAX_BODY = 1 << 20; // 1 MiB: a QLM payload is ~1 KB; refuse to buffer arbitrary amounts.

const secret = process.env.KEYHOOK_SECRET || '';
if (!secret) {
  // Never fall back to a default or empty secret: anyone could then forge requests.
  process.stderr.write('KEYHOOK_SECRET is not set or empty; refusing to start\n');
  process.exit(2);
}
const secretBytes = Buffer.from(secret, 'utf8');

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
    if (!received) {
      emit('invalid missing-signature');
      return reply(res, 401, 'invalid signature');
    }
    // Constant-time comparison: '===' stops at the first differing byte, and that
    // timing difference can let an attacker guess a valid signature byte by byte.
    // timingSafeEqual throws on unequal lengths, so check that first (the expected
    // length, 64, is public anyway).
    const expected = expectedSignature(raw);
    const given = Buffer.from(received, 'latin1');
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
      emit('invalid bad-signature');
      return reply(res, 401, 'invalid signature');
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

    const delivery = req.headers['x-keyhook-delivery'] || '-';
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

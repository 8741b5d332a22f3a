// Stripe webhook signatures checked by the official `stripe` npm package (stripe-node), the
// Node twin of stripe_webhook_signature.py: Kassa's tests give it what a receiver got and it
// answers what a merchant's Node server would conclude.
//
// One request per line on stdin, one answer per line on stdout (JSON), the same protocol as
// the Python helper:
//
//     {"mode": "sign", "secret": …, "timestamp": …, "payload_hex": …}  -> {"result": "<header>"}
//     {"mode": "verify", "secret": …, "header": …, "payload_hex": …}   -> {"result": "ok <id> <type>"}
//                                                                         or {"result": "refused: …"}
//
// `verify` is `stripe.webhooks.constructEvent` with its default tolerance of 300 s; `sign` is
// `stripe.webhooks.generateTestHeaderString`. The package comes from NODE_PATH (see
// scripts/stripe-node-env, which installs it outside the repository).
'use strict';

const readline = require('readline');
const stripe = require('stripe')('sk_test_kassa_unused');

function answer(request) {
  const payload = Buffer.from(request.payload_hex, 'hex');
  if (request.mode === 'sign') {
    return stripe.webhooks.generateTestHeaderString({
      payload: payload.toString('utf8'),
      secret: request.secret,
      timestamp: request.timestamp,
    });
  }
  if (request.mode === 'verify') {
    try {
      const event = stripe.webhooks.constructEvent(payload, request.header, request.secret);
      return `ok ${event.id} ${event.type}`;
    } catch (e) {
      if (e && e.type === 'StripeSignatureVerificationError') {
        return `refused: ${e.message}`;
      }
      throw e;
    }
  }
  throw new Error(`unknown mode ${request.mode}`);
}

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  process.stdout.write(JSON.stringify({ result: answer(JSON.parse(line)) }) + '\n');
});

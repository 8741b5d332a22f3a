"""Stripe webhook signatures made and checked by the official `stripe` Python library, so Kassa's
tests compare its `Stripe-Signature` handling with Stripe's own code.

One request per line on stdin, one answer per line on stdout (JSON; importing `stripe` takes
seconds, so a test run starts this once):

    {"mode": "sign", "secret": …, "timestamp": …, "payload_hex": …}  -> {"result": "<header>"}
    {"mode": "verify", "secret": …, "header": …, "payload_hex": …}   -> {"result": "ok <id> <type>"}
                                                                         or {"result": "refused: …"}

stripe-python (11.x) has no public helper that builds a test header; `sign` builds it from
`WebhookSignature._compute_signature` exactly as stripe-node's `generateTestHeaderString` does:
`t=<timestamp>,v1=<HMAC-SHA256 of "<timestamp>.<payload>">`. `verify` is
`Webhook.construct_event` with its default tolerance of 300 s.
"""

import json
import sys

import stripe


def answer(request):
    payload = bytes.fromhex(request["payload_hex"]).decode("utf-8")
    if request["mode"] == "sign":
        timestamp = int(request["timestamp"])
        signed = "%d.%s" % (timestamp, payload)
        signature = stripe.WebhookSignature._compute_signature(signed, request["secret"])
        return "t=%d,%s=%s" % (timestamp, stripe.WebhookSignature.EXPECTED_SCHEME, signature)
    if request["mode"] == "verify":
        try:
            event = stripe.Webhook.construct_event(payload, request["header"], request["secret"])
        except stripe.SignatureVerificationError as e:
            return "refused: %s" % e
        return "ok %s %s" % (event["id"], event["type"])
    raise ValueError("unknown mode %r" % request["mode"])


for line in sys.stdin:
    print(json.dumps({"result": answer(json.loads(line))}), flush=True)

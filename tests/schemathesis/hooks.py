"""Schemathesis hooks of tests/schemathesis/run.sh.

Store operations document two ways in (the publishable key alone, a guest; or with the
customer JWT), and schemathesis takes the first: two store calls in three get the test
customer's JWT here, so that the carts, orders and credits fixtures.py made for that customer
are reached too.

Generated `Idempotency-Key`s repeat a lot ("0", "A", …): nearly every case after the first
with a key would be answered `idempotency_key_reused` before reaching the operation. Most keys
are made unique here with a sequence number; one in four (chosen by the key itself) is left as
generated, so that replays and reuse are exercised too.
"""

import hashlib
import itertools
import os
import re

import schemathesis

JWT = os.environ.get("KASSA_CUSTOMER_JWT", "")
# A key the API accepts (printable ASCII), short enough to take a suffix.
VALID = re.compile(r"^[!-~]([ -~]{0,198}[!-~])?$")
_sequence = itertools.count()


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.headers is None:
        case.headers = {}
    headers = case.headers
    names = {name.lower() for name in headers}
    store = case.operation.path.startswith("/store/")
    if store and JWT and "authorization" not in names and next(_sequence) % 3 != 0:
        headers["Authorization"] = f"Bearer {JWT}"
    for name in list(headers):
        key = headers[name]
        if name.lower() != "idempotency-key" or not isinstance(key, str) or not VALID.match(key):
            continue  # an invalid key stays: its 400 is part of what is tested
        if hashlib.sha256(key.encode()).digest()[0] % 4 == 0:
            continue
        headers[name] = f"{key}-{next(_sequence)}"

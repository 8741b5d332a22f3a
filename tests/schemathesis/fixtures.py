"""Objects for schemathesis to aim at, made through the API of a fresh `kassa serve --demo`.

Generated ids almost never name an existing object, so most cases would stop at a 404. This
script makes one or more objects of every kind (carts of the signed-in test customer, orders,
payments waiting for 3-D Secure, checkout sessions, customers with credits, …) and prints a
schemathesis configuration fragment: dictionaries of their ids, bound to the path parameters
and body fields that take them, so that a share of the generated cases reaches the code
behind the 404; and dictionaries of edge values (U+0000 in strings, integers at and past
their bounds and at the ends of i64) that schemathesis alone rarely sends where they matter.

Usage: fixtures.py BASE_URL   (keys in KASSA_SECRET_KEY, KASSA_PUBLISHABLE_KEY,
KASSA_CUSTOMER_JWT; extra headers, one `Name: value` per line, in KASSA_SCHEMATHESIS_HEADERS)
"""

import json
import os
import sys
from urllib.parse import urlparse

import requests

BASE = sys.argv[1].rstrip("/")
HTTP = requests.Session()
HTTP.trust_env = False  # loopback only: no proxy from the environment
for line in os.environ.get("KASSA_SCHEMATHESIS_HEADERS", "").splitlines():
    if ":" in line:
        name, value = line.split(":", 1)
        HTTP.headers[name.strip()] = value.strip()

ADMIN = {"Authorization": f"Bearer {os.environ['KASSA_SECRET_KEY']}"}
SHOPPER = {
    "Kassa-Publishable-Key": os.environ["KASSA_PUBLISHABLE_KEY"],
    "Authorization": f"Bearer {os.environ['KASSA_CUSTOMER_JWT']}",
}
STORE = {"Kassa-Publishable-Key": os.environ["KASSA_PUBLISHABLE_KEY"]}

# The demo catalog's fixed ids (`kassa serve --demo`).
DEMO_REGION = "reg_00000000000000000000000001"
DEMO_SHIPPING = "shipopt_00000000000000000000000001"
DEMO_PRICES = [f"price_0000000000000000000000000{n}" for n in (1, 2, 3)]


def call(method, path, headers, body=None):
    r = HTTP.request(method, BASE + path, headers=headers, json=body, timeout=30)
    if r.status_code >= 400:
        raise SystemExit(f"fixtures: {method} {path} answered {r.status_code}: {r.text}")
    return r.json()


def token(number):
    card = {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}
    return call("POST", "/test-processor/v1/confirmation_tokens", STORE, {"card": card})["id"]


def cart(price, quantity=1):
    body = {
        "region": DEMO_REGION,
        "email": "st@example.com",
        "items": [{"price": price, "quantity": quantity}],
        "shipping_address": {"name": "Ada", "line1": "1 Main St", "city": "New York",
                             "postal_code": "10001", "country": "US"},
        "shipping_option": DEMO_SHIPPING,
    }
    return call("POST", "/store/carts", SHOPPER, body)


ids = {name: [] for name in (
    "products", "prices", "pricing_models", "regions", "shipping", "customers", "events", "orders",
    "payments", "carts", "lines", "sessions", "processor_sessions", "intents")}

# Catalog: the demo's and a few more.
product = call("POST", "/admin/products", ADMIN, {"name": "Stocked mug", "inventory": {"quantity": 1000}})
price = call("POST", "/admin/prices", ADMIN, {"product": product["id"], "currency": "usd", "unit_amount": 1200})
model = call("POST", "/admin/pricing-models", ADMIN, {"name": "Plans"})
plan = call("POST", "/admin/prices", ADMIN, {"product": product["id"], "currency": "usd", "unit_amount": 0,
                                             "recurring": {"interval": "month"}, "pricing_model": model["id"]})
eu = call("POST", "/admin/regions", ADMIN, {"name": "EU", "currency": "eur", "countries": ["DE", "FR"],
                                            "tax_rates": [{"name": "VAT", "percentage": "19"}], "tax_inclusive": True})
eu_ship = call("POST", "/admin/shipping-options", ADMIN, {"name": "DHL", "region": eu["id"], "amount": 499})
ids["products"] += [product["id"]] + [p["id"] for p in call("GET", "/admin/products?limit=10", ADMIN)["data"]]
ids["prices"] += DEMO_PRICES + [price["id"], plan["id"]]
ids["pricing_models"] += [model["id"]]
ids["regions"] += [DEMO_REGION, eu["id"]]
ids["shipping"] += [DEMO_SHIPPING, eu_ship["id"]]

# Customers, one with credits.
for n in range(3):
    c = call("POST", "/admin/customers", ADMIN, {"email": f"customer{n}@example.com", "name": f"Customer {n}"})
    ids["customers"].append(c["id"])
call("POST", f"/admin/customers/{ids['customers'][0]}/credits/adjust", ADMIN, {"amount": 5000, "reason": "gift"})
ids["customers"].append(call("GET", "/store/customers/me", SHOPPER)["id"])

# Carts of the signed-in test customer: open ones, paid ones (orders), one waiting for 3-D
# Secure, one with a hosted checkout session.
for p in DEMO_PRICES + [price["id"]]:
    c = cart(p, 2)
    ids["carts"].append(c["id"])
    ids["lines"] += [line["id"] for line in c["items"]]
for p in DEMO_PRICES[:2]:
    c = cart(p)
    paid = call("POST", f"/store/carts/{c['id']}/pay", SHOPPER, {"confirmation_token": token("4242424242424242")})
    ids["orders"].append(paid["order"]["id"])
    ids["payments"].append(paid["payment"]["id"])
    ids["carts"].append(c["id"])
c = cart(DEMO_PRICES[0])
challenged = call("POST", f"/store/carts/{c['id']}/pay", SHOPPER,
                  {"confirmation_token": token("4000002760003184"), "return_url": "https://shop.example/back"})
ids["intents"].append(urlparse(challenged["next_action"]["redirect_url"]).path.rsplit("/", 1)[1])
ids["payments"].append(challenged["payment"]["id"])
ids["carts"].append(c["id"])
for make in (
    lambda: call("POST", f"/store/carts/{cart(DEMO_PRICES[1])['id']}/checkout-sessions", SHOPPER,
                 {"success_url": "https://shop.example/ok", "cancel_url": "https://shop.example/cart"}),
    lambda: call("POST", "/store/credits/sessions", SHOPPER, {"credits": 250, "success_url": "https://shop.example/ok"}),
):
    s = make()
    ids["sessions"].append(s["id"])
    ids["processor_sessions"].append(urlparse(s["url"]).path.rsplit("/", 1)[1])
ids["events"] += [e["id"] for e in call("GET", "/admin/events?limit=20", ADMIN)["data"]]
# Single-use confirmation tokens for pay calls, and values the test processor knows.
ids["tokens"] = [token(n) for n in ("4242424242424242",) * 6 + ("4000000000000002", "4000002760003184")]
ids["payment_methods"] = ["pm_card_visa", "pm_card_chargeDeclined", "pm_card_authenticationRequired"]
ids["cards"] = ["4242 4242 4242 4242", "4000000000000002", "4000002760003184", "4000000000009995"]
ids["expiries"] = ["12/34", "01/2040", "1/30"]
ids["outcomes"] = ["complete", "fail", "succeeded", "failed"]
ids["methods"] = ["card", "bank_debit"]
# Values at and past the documented bounds, and the ends of i64 (where overflows hide).
ids["integers"] = ["1", "50", "1000", "99999999", "100000000", "1000000", "1000001", "999999999999",
                   "1000000000000", "9223372036854775807", "-9223372036854775808", "-1", "0"]
# Strings PostgreSQL refuses (U+0000), among ordinary ones; every id dictionary gets one too.
NUL = "a\u0000b"
ids["texts"] = ["Mug", "ada@example.com", "https://shop.example/ok", NUL, "\u0000", "x\u0000@example.com"]
for name in list(ids):
    if name not in ("integers", "texts"):
        ids[name].append(NUL)


def toml(value):
    return json.dumps(value)  # JSON strings and arrays of strings are TOML too


out = ["", "# Generated by fixtures.py for this run."]
for name, values in ids.items():
    out += [f"[dictionaries.{name}]", f"values = {toml(sorted(set(values)))}"]

# Ids in bodies, for every operation that takes them.
body_fields = {
    "region": "regions", "product": "products", "price": "prices", "items[*].price": "prices",
    "shipping_option": "shipping", "pricing_model": "pricing_models", "default_price": "prices",
    "confirmation_token": "tokens", "payment_method": "payment_methods",
    # The hosted pages' forms.
    "number": "cards", "exp": "expiries", "outcome": "outcomes", "method": "methods",
}
# Integers and strings, in bodies and queries, get the edge values now and then.
edges = {f"body.{f}": "integers" for f in (
    "amount", "unit_amount", "quantity", "credits", "items[*].quantity", "inventory.quantity",
    "recurring.interval_count", "card.exp_month", "card.exp_year")}
edges["query.limit"] = "integers"
edges.update({f"body.{f}": "texts" for f in (
    "name", "description", "email", "reason", "nickname", "external_id", "success_url", "cancel_url",
    "return_url", "shipping_address.line1", "billing_address.city", "countries[*]", "tax_rates[*].name",
    "card.cvc", "cvc", "currency")})
edges.update({f"query.{q}": "texts" for q in (
    "starting_after", "ending_before", "email", "customer", "type", "object", "status", "product", "region",
    "pricing_model")})
out += ["", "[parameters]"]
for field, dictionary in body_fields.items():
    out.append(f'"body.{field}" = {{ dictionary = "{dictionary}", probability = 0.5 }}')
for field, dictionary in edges.items():
    out.append(f'"{field}" = {{ dictionary = "{dictionary}", probability = 0.25 }}')

# Ids in paths: (path pattern, {parameter: dictionary}).
paths = [
    (r"^/(admin|store)/products/\{id\}", {"id": "products"}),
    (r"^/admin/prices/\{id\}", {"id": "prices"}),
    (r"^/admin/pricing-models/\{id\}", {"id": "pricing_models"}),
    (r"^/admin/regions/\{id\}", {"id": "regions"}),
    (r"^/admin/shipping-options/\{id\}", {"id": "shipping"}),
    (r"^/admin/customers/\{id\}", {"id": "customers"}),
    (r"^/admin/events/\{id\}", {"id": "events"}),
    (r"^/(admin|store)/orders/\{id\}", {"id": "orders"}),
    (r"^/admin/payments/\{id\}", {"id": "payments"}),
    (r"^/store/carts/\{id\}/line-items/\{line\}", {"id": "carts", "line": "lines"}),
    (r"^/store/carts/\{id\}(/(pay|checkout-sessions|line-items))?$", {"id": "carts"}),
    (r"^/store/checkout-sessions/\{id\}", {"id": "sessions"}),
    (r"^/test-processor/(checkout|v1/checkout/sessions)/\{id\}", {"id": "processor_sessions"}),
    (r"^/test-processor/authenticate/\{id\}", {"id": "intents"}),
]
for pattern, params in paths:
    bindings = ", ".join(f'"path.{p}" = {{ dictionary = "{d}", probability = 0.7 }}' for p, d in params.items())
    out += ["", "[[operations]]", f"include-path-regex = {toml(pattern)}", f"parameters = {{ {bindings} }}"]
print("\n".join(out))

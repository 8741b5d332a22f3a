"""A buyer starts a subscription on Kassa's hosted page (issue 15, "Starting one"): the page
says that the card is saved and charged for the subscription's future payments, the buyer
ticks the consent box, pays with 4242, and the subscription is `active` with its first invoice
paid by that one payment (asserted through the admin API)."""

import re
import time
import uuid

from conftest import MERCHANT_NAME
from playwright.sync_api import expect

GOOD_CARD = "4242 4242 4242 4242"
SUBSCRIBE_BUTTON = re.compile(r"^Subscribe and pay \$")


def monthly_price(kassa, unit_amount):
    product = kassa.admin("POST", "/admin/products", {"name": f"Pro plan {uuid.uuid4().hex[:6]}"})
    return kassa.admin(
        "POST",
        "/admin/prices",
        {"product": product["id"], "currency": "usd", "unit_amount": unit_amount, "recurring": {"interval": "month"}},
    )


def subscription_session(kassa, merchant, price):
    session = kassa.store(
        "POST",
        "/store/checkout-sessions",
        {
            "mode": "subscription",
            "line_items": [{"price": price["id"], "quantity": 1}],
            "success_url": f"{merchant}/success",
            "cancel_url": f"{merchant}/cancel",
            "email": f"subscriber-{uuid.uuid4().hex[:12]}@example.com",
        },
    )
    assert session["mode"] == "subscription" and "/test-processor/checkout/cs_" in session["url"], session
    return session


def fill_card(page, number):
    page.fill("#number", number)
    page.fill("#exp", "12/34")
    page.fill("#cvc", "123")


def test_subscription_checkout_with_consent_ends_active_with_its_first_invoice_paid(kassa, merchant, page):
    price = monthly_price(kassa, 1900)
    session = subscription_session(kassa, merchant, price)
    page.goto(session["url"])
    expect(page.get_by_role("heading", name="Subscribe")).to_be_visible()
    consent = page.locator("#consent-text")
    expect(consent).to_contain_text(f"Your card will be saved with {MERCHANT_NAME}")
    expect(consent).to_contain_text("charged $19.00 now and $19.00 every month")
    expect(consent).to_contain_text("until you cancel")
    checkbox = page.get_by_role("checkbox")
    expect(checkbox).not_to_be_checked()
    # No bank debit: a card is saved for the renewals.
    expect(page.get_by_role("button", name=re.compile("bank debit"))).to_have_count(0)

    # Without the tick the browser does not submit (the box is required): nothing is charged.
    fill_card(page, GOOD_CARD)
    page.get_by_role("button", name=SUBSCRIBE_BUTTON).click()
    time.sleep(0.5)
    assert page.url == session["url"]
    s = kassa.store("GET", f"/store/checkout-sessions/{session['id']}", secret=session["client_secret"])
    assert (s["status"], s["payment_status"], s["subscription"]) == ("open", "unpaid", None)

    checkbox.check()
    page.get_by_role("button", name=SUBSCRIBE_BUTTON).click()

    page.wait_for_url(f"{merchant}/success?session_id={session['id']}&client_secret={session['client_secret']}")
    expect(page.locator("#result")).to_have_text("Payment paid, session complete")

    s = kassa.store("GET", f"/store/checkout-sessions/{session['id']}", secret=session["client_secret"])
    assert (s["status"], s["payment_status"]) == ("complete", "paid"), s
    sub = kassa.admin("GET", f"/admin/subscriptions/{s['subscription']}")
    assert sub["status"] == "active", sub
    assert sub["customer"] == s["customer"]
    invoices = kassa.admin("GET", f"/admin/invoices?subscription={sub['id']}")["data"]
    assert len(invoices) == 1, invoices
    first = invoices[0]
    assert (first["billing_reason"], first["status"], first["amount_paid"]) == ("subscription_create", "paid", 1900)
    assert sub["latest_invoice"] == first["id"]
    methods = kassa.admin("GET", f"/admin/customers/{s['customer']}/payment-methods")["data"]
    assert [(m["card"]["last4"], m["default"]) for m in methods] == [("4242", True)], methods
    assert sub["default_payment_method"] == methods[0]["id"]
    # The processor's webhooks arrive after the success page: still one subscription, one invoice.
    time.sleep(2)
    subs = kassa.admin("GET", f"/admin/subscriptions?customer={s['customer']}")["data"]
    assert [x["id"] for x in subs] == [sub["id"]]
    assert len(kassa.admin("GET", f"/admin/invoices?subscription={sub['id']}")["data"]) == 1

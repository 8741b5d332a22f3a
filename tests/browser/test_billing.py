"""Subscriptions in a real browser (issue 15), built-in test processor: a renewal that needs
the customer's authentication is paid on its hosted invoice page (3-D Secure approved) and the
subscription is active again, charged once; the billing portal updates the card (3-D Secure)
and cancels at the period end. Everything is checked afterwards through the admin API."""

import re
import uuid

from playwright.sync_api import expect

# 2027-01-31T00:00:00Z: the test clocks start here.
JAN_31_2027 = 1_801_353_600
DAY = 86_400


def recurring_price(kassa, unit_amount):
    product = kassa.admin("POST", "/admin/products", {"name": f"Plan {uuid.uuid4().hex[:8]}"})
    price = kassa.admin(
        "POST",
        "/admin/prices",
        {"product": product["id"], "currency": "usd", "unit_amount": unit_amount, "recurring": {"interval": "month"},
         "nickname": f"Pro {unit_amount}"},
    )
    return price["id"]


def customer_on_clock(kassa, card):
    """A customer on a fresh test clock, with `card` (a test shortcut) saved as the default."""
    clock = kassa.admin("POST", "/admin/test-clocks", {"frozen_time": JAN_31_2027})["id"]
    customer = kassa.admin(
        "POST", "/admin/customers", {"email": f"sub-{uuid.uuid4().hex[:12]}@example.com", "test_clock": clock}
    )["id"]
    kassa.admin("POST", f"/admin/customers/{customer}/payment-methods", {"payment_method": card, "default": True})
    return clock, customer


def paid_events(kassa, invoice):
    events = kassa.admin("GET", f"/admin/events?object={invoice}&limit=100")["data"]
    return [e for e in events if e["type"] == "invoice.paid"]


def test_renewal_needing_authentication_is_paid_on_the_hosted_invoice_page(kassa, page):
    price = recurring_price(kassa, 1200)
    # 4000 0000 0000 3220 saved directly: every off-session charge asks for authentication.
    clock, customer = customer_on_clock(kassa, "pm_card_threeDSecure2Required")
    sub = kassa.admin(
        "POST", "/admin/subscriptions", {"customer": customer, "items": [{"price": price}], "trial_period_days": 1}
    )
    assert sub["status"] == "trialing", sub
    # The trial ends: the renewal is due, charged off-session, and needs the customer.
    kassa.admin("POST", f"/admin/test-clocks/{clock}/advance", {"frozen_time": JAN_31_2027 + DAY})
    sub = kassa.admin("GET", f"/admin/subscriptions/{sub['id']}")
    assert sub["status"] == "past_due", sub
    invoice = kassa.admin("GET", f"/admin/invoices/{sub['latest_invoice']}")
    assert invoice["status"] == "open" and invoice["last_payment_error"]["code"] == "authentication_required", invoice
    assert invoice["amount_paid"] == 0

    page.goto(invoice["hosted_invoice_url"])
    expect(page.get_by_role("heading", name="Invoice", exact=True)).to_be_visible()
    expect(page.locator("#amount-due")).to_have_text("$12.00")
    page.fill("#number", "4000 0000 0000 3220")
    page.fill("#exp", "12/34")
    page.fill("#cvc", "123")
    page.get_by_role("button", name="Pay $12.00").click()
    expect(page.get_by_role("heading", name="3-D Secure authentication")).to_be_visible()
    page.get_by_role("button", name="Complete authentication").click()
    expect(page.get_by_text("This invoice is paid. Thank you.")).to_be_visible()
    expect(page.locator("#invoice-status")).to_contain_text("paid")

    invoice = kassa.admin("GET", f"/admin/invoices/{invoice['id']}")
    assert (invoice["status"], invoice["amount_paid"], invoice["amount_remaining"]) == ("paid", 1200, 0), invoice
    assert kassa.admin("GET", f"/admin/subscriptions/{sub['id']}")["status"] == "active"
    # Charged once: one payment, one invoice.paid; reloading the page pays nothing more.
    page.reload()
    expect(page.get_by_text("This invoice is paid. Thank you.")).to_be_visible()
    assert len(paid_events(kassa, invoice["id"])) == 1
    again = kassa.admin("GET", f"/admin/invoices/{invoice['id']}")
    assert (again["amount_paid"], again["payment_intent"]) == (1200, invoice["payment_intent"])
    invoices = kassa.admin("GET", f"/admin/invoices?subscription={sub['id']}&limit=100")["data"]
    assert sum(i["amount_paid"] for i in invoices) == 1200, invoices  # the trial's own invoice is zero


def test_billing_portal_updates_the_card_and_cancels_at_period_end(kassa, page):
    price = recurring_price(kassa, 2500)
    clock, customer = customer_on_clock(kassa, "pm_card_visa")
    sub = kassa.admin("POST", "/admin/subscriptions", {"customer": customer, "items": [{"price": price}]})
    assert sub["status"] == "active", sub
    session = kassa.admin(
        "POST", f"/admin/customers/{customer}/portal-sessions", {"return_url": "https://shop.example/account"}
    )
    assert session["object"] == "billing_portal.session" and session["customer"] == customer, session

    page.goto(session["url"])
    expect(page.get_by_role("heading", name="Billing portal")).to_be_visible()
    row = page.locator(f"#subscription-{sub['id']}")
    expect(row).to_contain_text("Pro 2500")
    expect(row).to_contain_text("$25.00")
    expect(row.locator(".status")).to_have_text("active")
    expect(page.locator("#card")).to_have_text("visa ending in 4242")
    expect(page.locator(f"#invoice-{sub['latest_invoice']}")).to_contain_text("paid")

    # A new card that asks for 3-D Secure: the challenge, then back to the portal.
    page.fill("#number", "4000 0025 0000 3155")
    page.fill("#exp", "12/34")
    page.fill("#cvc", "123")
    page.get_by_role("button", name="Update card").click()
    expect(page.get_by_role("heading", name="3-D Secure authentication")).to_be_visible()
    page.get_by_role("button", name="Complete authentication").click()
    expect(page.get_by_role("heading", name="Billing portal")).to_be_visible()
    expect(page.locator("#portal-message")).to_have_text("Your card is updated.")
    expect(page.locator("#card")).to_have_text("visa ending in 3155")

    methods = kassa.admin("GET", f"/admin/customers/{customer}/payment-methods")["data"]
    default = [m for m in methods if m["default"]]
    assert len(default) == 1 and default[0]["card"]["last4"] == "3155", methods
    assert len(methods) == 2, "the old card stays saved"
    assert kassa.admin("GET", f"/admin/subscriptions/{sub['id']}")["default_payment_method"] == default[0]["id"]

    # Cancel at the period end, and it shows.
    page.get_by_role("button", name="Cancel at period end").click()
    expect(row).to_contain_text("Cancels on")
    expect(page.get_by_role("button", name="Don't cancel")).to_be_visible()
    sub = kassa.admin("GET", f"/admin/subscriptions/{sub['id']}")
    assert (sub["status"], sub["cancel_at_period_end"]) == ("active", True), sub
    expect(page.locator("#return")).to_have_attribute("href", "https://shop.example/account")

    # At the period end it is canceled, nothing more is charged.
    kassa.admin("POST", f"/admin/test-clocks/{clock}/advance", {"frozen_time": sub["current_period_end"] + DAY})
    sub = kassa.admin("GET", f"/admin/subscriptions/{sub['id']}")
    assert sub["status"] == "canceled", sub
    page.reload()
    expect(row.locator(".status")).to_have_text("canceled")
    expect(page.get_by_role("button", name=re.compile("Cancel at period end"))).to_have_count(0)

"""The merchant's dashboard in Chromium: sign-in, finding an order and refunding part of it,
roles, CSRF, escaping, pagination, accessibility (axe-core) and readability at 390 px. The
main pages' screenshots are saved into docs/screenshots/ (the README shows them), so they stay
current with the pages."""

import re
import time
import uuid
from pathlib import Path

import pytest
from conftest import REPO
from playwright.sync_api import expect
from test_checkout import REGION, SHIPPING, STICKERS, T_SHIRT, axe_problems

SCREENSHOTS = REPO / "docs" / "screenshots"


def email():
    return f"dash-{uuid.uuid4().hex[:12]}@example.com"


def store(kassa, method, path, body=None, secret=None):
    """A store API call that waits out the store API's rate limit (many orders are made)."""
    for _ in range(30):
        try:
            return kassa.store(method, path, body, secret=secret)
        except AssertionError as e:
            if "-> 429" not in str(e):
                raise
            time.sleep(1)
    raise AssertionError(f"{method} {path}: still rate limited")


def paid_order(kassa, buyer, items=None):
    """An order paid by card through the store API (the built-in test processor)."""
    cart = store(kassa, 
        "POST",
        "/store/carts",
        {
            "region": REGION,
            "email": buyer,
            "items": items or [{"price": T_SHIRT, "quantity": 1}, {"price": STICKERS, "quantity": 2}],
            "shipping_address": {"name": "Ada Buyer", "line1": "1 Main St", "city": "New York",
                                 "postal_code": "10001", "state": "NY", "country": "US"},
        },
    )
    secret = cart["client_secret"]
    store(kassa, "POST", f"/store/carts/{cart['id']}", {"shipping_option": SHIPPING}, secret=secret)
    token = store(kassa, "POST", "/test-processor/v1/confirmation_tokens",
                        {"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
    paid = store(kassa, "POST", f"/store/carts/{cart['id']}/pay", {"confirmation_token": token["id"]}, secret=secret)
    assert paid["status"] == "succeeded", paid
    return paid["order"]


def sign_in(page, kassa, user=None, password=None):
    url, demo_user, demo_password = kassa.dashboard
    page.goto(f"{url}/login")
    page.get_by_label("Email").fill(user or demo_user)
    page.get_by_label("Password").fill(password or demo_password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")


def shot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def owner(page, kassa):
    assert kassa.dashboard, "`kassa serve --demo` printed no dashboard line"
    sign_in(page, kassa)
    return page


def test_a_wrong_password_is_refused_and_the_right_one_signs_in(kassa, page):
    url, user, password = kassa.dashboard
    page.goto(url)
    expect(page).to_have_url(f"{url}/login")
    shot(page, "login")
    page.get_by_label("Email").fill(user)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    expect(page.get_by_text(f"Signed in as {user}")).to_be_visible()


def test_find_an_order_by_email_and_refund_part_of_it(kassa, owner):
    page = owner
    buyer = email()
    order = paid_order(kassa, buyer)
    url = kassa.dashboard[0]
    page.get_by_role("navigation", name="Dashboard").get_by_role("link", name="Orders").click()
    page.get_by_label("Order id or email").fill(buyer.upper())
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name=order["id"]).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(order["id"])
    page.get_by_label(re.compile(r"^Amount \(USD\), up to")).fill("5.00")
    page.get_by_label("I confirm the refund").check()
    page.get_by_role("button", name="Refund").click()
    expect(page.get_by_role("status")).to_have_text("The refund was made.")
    expect(page.locator("#amount-refunded")).to_have_text("$5.00")
    expect(page.locator("#payment-status")).to_contain_text("partially refunded")
    shot(page, "order")

    admin = kassa.admin("GET", f"/admin/orders/{order['id']}")
    assert admin["amount_refunded"] == 500
    assert admin["payment_status"] == "partially_refunded"
    audit = kassa.admin("GET", f"/admin/events?type=dashboard.order.refund&object={order['id']}")["data"]
    assert len(audit) == 1
    assert audit[0]["data"]["object"]["user"]["email"] == kassa.dashboard[1]
    # The page's timeline names the user too.
    expect(page.locator("#timeline")).to_contain_text(f"dashboard.order.refund by {kassa.dashboard[1]}")
    page.goto(f"{url}/orders?q={buyer}")
    shot(page, "orders")


def add_user(page, kassa, role):
    user, password = email(), "viewer-password-123"
    page.goto(f"{kassa.dashboard[0]}/users")
    page.get_by_label("Email").fill(user)
    page.get_by_label("Role").select_option(role)
    page.get_by_label("Password (at least 10 characters)").fill(password)
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("cell", name=user)).to_be_visible()
    return user, password


def test_a_viewer_sees_no_refund_button_and_a_forged_refund_gets_403(kassa, owner, browser):
    order = paid_order(kassa, email())
    viewer, password = add_user(owner, kassa, "viewer")
    context = browser.new_context()
    page = context.new_page()
    try:
        sign_in(page, kassa, viewer, password)
        page.goto(f"{kassa.dashboard[0]}/orders/{order['id']}")
        expect(page.get_by_role("heading", level=1)).to_contain_text(order["id"])
        expect(page.get_by_role("button", name="Refund")).to_have_count(0)
        csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
        forged = page.request.post(
            f"{kassa.dashboard[0]}/orders/{order['id']}/refund",
            form={"csrf_token": csrf, "idempotency_key": "forged-1", "confirm": "yes", "amount": "1.00"},
        )
        assert forged.status == 403
        assert kassa.admin("GET", f"/admin/orders/{order['id']}")["amount_refunded"] == 0
    finally:
        context.close()


def test_a_post_without_the_csrf_token_gets_403_and_changes_nothing(kassa, owner):
    order = paid_order(kassa, email())
    forged = owner.request.post(
        f"{kassa.dashboard[0]}/orders/{order['id']}/refund",
        form={"idempotency_key": "no-csrf-1", "confirm": "yes", "amount": "1.00"},
    )
    assert forged.status == 403
    admin = kassa.admin("GET", f"/admin/orders/{order['id']}")
    assert admin["amount_refunded"] == 0
    assert kassa.admin("GET", f"/admin/orders/{order['id']}/refunds") == []


def test_a_customer_name_with_markup_is_shown_as_text(kassa, owner):
    name = "<img src=x onerror=alert(1)>"
    customer = kassa.admin("POST", "/admin/customers", {"email": email(), "name": name})
    dialogs = []
    owner.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    owner.goto(f"{kassa.dashboard[0]}/customers/{customer['id']}")
    expect(owner.locator("#customer-name")).to_have_text(name)
    expect(owner.locator("img")).to_have_count(0)
    owner.goto(f"{kassa.dashboard[0]}/customers")
    expect(owner.get_by_role("cell", name=name).first).to_be_visible()
    owner.wait_for_timeout(300)
    assert dialogs == []


def test_pagination_walks_all_of_120_orders_exactly_once(kassa, owner):
    buyer = email()
    made = {paid_order(kassa, buyer, [{"price": STICKERS, "quantity": 1}])["id"] for _ in range(120)}
    owner.goto(f"{kassa.dashboard[0]}/orders?q={buyer}")
    seen = []
    pages = 0
    while True:
        pages += 1
        seen += owner.locator("#orders tbody tr td:first-child a").all_inner_texts()
        older = owner.get_by_role("link", name="Older →")
        if older.count() == 0:
            break
        older.click()
        assert pages < 20
    assert len(seen) == 120
    assert set(seen) == made
    # And back again, page by page: the same orders, once each.
    back = owner.locator("#orders tbody tr td:first-child a").all_inner_texts()
    while owner.get_by_role("link", name="← Newer").count():
        owner.get_by_role("link", name="← Newer").click()
        back += owner.locator("#orders tbody tr td:first-child a").all_inner_texts()
    assert sorted(back) == sorted(seen)


PAGES = ["", "/orders", "/customers", "/subscriptions", "/invoices", "/payments", "/events", "/catalog", "/webhook-endpoints", "/api-keys", "/users"]


def test_every_page_has_no_serious_accessibility_problem_and_reads_at_390px(kassa, owner, browser):
    order = paid_order(kassa, email())
    customer = order["customer"]
    url = kassa.dashboard[0]
    endpoint = kassa.admin("POST", "/admin/webhook-endpoints", {"url": "http://127.0.0.1:9/hooks", "enabled_events": ["*"]})
    paths = PAGES + [f"/orders/{order['id']}", f"/customers/{customer}", f"/webhook-endpoints/{endpoint['id']}"]
    for path in paths:
        owner.goto(url + path)
        assert axe_problems(owner) == [], path
    owner.goto(url)
    shot(owner, "overview")
    owner.goto(f"{url}/customers/{customer}")
    shot(owner, "customer")
    owner.goto(f"{url}/payments")
    shot(owner, "payments")
    # A phone: nothing wider than the screen, the navigation reachable.
    owner.set_viewport_size({"width": 390, "height": 844})
    for path in paths:
        owner.goto(url + path)
        width = owner.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
    owner.goto(f"{url}/orders/{order['id']}")
    shot(owner, "order-390px")
    owner.goto(f"{url}/login")


def test_the_keyboard_reaches_the_content_and_the_refund_form(kassa, owner):
    order = paid_order(kassa, email())
    owner.goto(f"{kassa.dashboard[0]}/orders/{order['id']}")
    owner.keyboard.press("Tab")
    expect(owner.get_by_role("link", name="Skip to content")).to_be_focused()
    owner.keyboard.press("Enter")
    # Tabbing from the content reaches the refund amount.
    for _ in range(40):
        owner.keyboard.press("Tab")
        if owner.evaluate("() => document.activeElement.id") == "refund-amount":
            break
    assert owner.evaluate("() => document.activeElement.id") == "refund-amount"


def subscription(kassa):
    """A monthly $10.00 subscription of a new customer paying by a card on file."""
    product = kassa.admin("POST", "/admin/products", {"name": f"Plan {uuid.uuid4().hex[:6]}"})
    price = kassa.admin("POST", "/admin/prices", {"product": product["id"], "currency": "usd", "unit_amount": 1000,
                                                  "recurring": {"interval": "month"}})
    customer = kassa.admin("POST", "/admin/customers", {"email": email()})
    kassa.admin("POST", f"/admin/customers/{customer['id']}/payment-methods",
                {"payment_method": "pm_card_visa", "default": True})
    sub = kassa.admin("POST", "/admin/subscriptions", {"customer": customer["id"], "items": [{"price": price["id"]}]})
    assert sub["status"] == "active", sub
    return sub


def test_subscription_and_invoice_pages_are_accessible_and_cancel_at_period_end_agrees_with_the_api(kassa, owner):
    sub = subscription(kassa)
    url = kassa.dashboard[0]
    paths = ["/subscriptions", "/invoices", f"/subscriptions/{sub['id']}", f"/invoices/{sub['latest_invoice']}",
             f"/subscriptions?customer={sub['customer']}"]
    for path in paths:
        owner.goto(url + path)
        assert axe_problems(owner) == [], path

    # From the customer's page to the subscription, then cancel at the period end.
    owner.goto(f"{url}/customers/{sub['customer']}")
    owner.get_by_role("link", name=sub["id"]).click()
    expect(owner.get_by_role("heading", level=1)).to_contain_text(sub["id"])
    owner.get_by_label("I confirm the cancellation at the period end").check()
    owner.get_by_role("button", name="Cancel at period end").click()
    expect(owner.get_by_role("status")).to_have_text("The subscription will be canceled at the end of its period.")
    expect(owner.locator("#cancel-at-period-end")).to_have_text("yes")
    assert axe_problems(owner) == []
    shot(owner, "subscription")

    admin = kassa.admin("GET", f"/admin/subscriptions/{sub['id']}")
    assert admin["cancel_at_period_end"] is True
    assert admin["status"] == "active"
    assert admin["current_period_end"] == sub["current_period_end"]
    audit = kassa.admin("GET", f"/admin/events?type=dashboard.subscription.cancel&object={sub['id']}")["data"]
    assert len(audit) == 1
    assert audit[0]["data"]["object"]["user"]["email"] == kassa.dashboard[1]

    # The invoice page shows its lines and attempts.
    owner.get_by_role("link", name=sub["latest_invoice"]).first.click()
    expect(owner.locator("#amount-due")).to_have_text("$10.00")
    expect(owner.locator("#attempt-count")).to_have_text("1")

"""A buyer in a real browser on Kassa's hosted pages (built-in test processor): pay a cart
(issue 5), a decline then a good card, 3-D Secure, and a credits top-up (issue 6). The
merchant's success page reads Kassa server-side and renders what it found."""

import os
import re
import time
import uuid
from pathlib import Path

from conftest import MERCHANT_NAME
from playwright.sync_api import expect

T_SHIRT = "price_00000000000000000000000001"
MUG = "price_00000000000000000000000002"
STICKERS = "price_00000000000000000000000003"
REGION = "reg_00000000000000000000000001"
SHIPPING = "shipopt_00000000000000000000000001"

GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0002"
THREE_DS_CARD = "4000 0027 6000 3184"

PAY_BUTTON = re.compile(r"^Pay \D?\d")  # "Pay $12.00", "Pay ¥500"


def usd(cents):
    """An amount as the hosted page shows it: `$1,234.56`."""
    return f"${cents // 100:,}.{cents % 100:02d}"


def email():
    return f"buyer-{uuid.uuid4().hex[:12]}@example.com"


def cart_session(kassa, merchant, success_url=None):
    """A demo cart (guest, shipped in the US) and its hosted checkout session."""
    cart = kassa.store(
        "POST",
        "/store/carts",
        {
            "region": REGION,
            "email": email(),
            "items": [{"price": T_SHIRT, "quantity": 1}, {"price": MUG, "quantity": 2}, {"price": STICKERS, "quantity": 1}],
            "shipping_address": {"name": "Ada Buyer", "line1": "1 Main St", "city": "New York", "postal_code": "10001",
                                 "state": "NY", "country": "US"},
        },
    )
    secret = cart["client_secret"]
    assert secret.startswith(f"{cart['id']}_secret_"), cart
    cart = kassa.store("POST", f"/store/carts/{cart['id']}", {"shipping_option": SHIPPING}, secret=secret)
    assert cart["total"] > 0
    cart["client_secret"] = secret  # shown once, by the answer that created the cart
    session = kassa.store(
        "POST",
        f"/store/carts/{cart['id']}/checkout-sessions",
        {
            "success_url": success_url or f"{merchant}/success?session_id={{CHECKOUT_SESSION_ID}}",
            "cancel_url": f"{merchant}/cancel",
        },
        secret=secret,
    )
    # Kassa's session and the processor's (whose page the url opens) have different prefixes.
    assert session["id"].startswith("checkout_") and "/test-processor/checkout/cs_" in session["url"], session
    assert session["client_secret"].startswith(f"{session['id']}_secret_"), session
    return cart, session


def pay_by_card(page, number, exp="12/34", cvc="123"):
    page.fill("#number", number)
    page.fill("#exp", exp)
    page.fill("#cvc", cvc)
    page.get_by_role("button", name=PAY_BUTTON).click()


def success_url_of(merchant, session):
    """Where the buyer lands: Kassa adds the session's id and client secret to the link."""
    return f"{merchant}/success?session_id={session['id']}&client_secret={session['client_secret']}"


def test_pay_cart_on_hosted_page(kassa, merchant, page):
    """Issue 5: cart → hosted page → 4242 → the merchant's success page, one order."""
    cart, session = cart_session(kassa, merchant)
    page.goto(session["url"])
    expect(page.get_by_role("heading", name="Checkout")).to_be_visible()
    # The page charges what Kassa computed (tax and shipping included).
    total = usd(cart["total"])
    expect(page.locator("tr.total")).to_contain_text(total)
    expect(page.get_by_role("button", name=PAY_BUTTON)).to_have_text(f"Pay {total}")

    pay_by_card(page, GOOD_CARD)

    page.wait_for_url(success_url_of(merchant, session))
    result = page.locator("#result")
    expect(result).to_have_text(re.compile(r"^Order ord_\w+ confirmed$"))
    order_id = result.inner_text().split()[1]

    orders = kassa.orders_of_cart(cart["id"])
    assert [o["id"] for o in orders] == [order_id]
    assert orders[0]["total"] == cart["total"]
    s = kassa.store("GET", f"/store/checkout-sessions/{session['id']}", secret=session["client_secret"])
    assert (s["status"], s["payment_status"], s["order"]) == ("complete", "paid", order_id)
    assert kassa.store("GET", f"/store/carts/{cart['id']}", secret=cart["client_secret"])["status"] == "completed"
    # The cart's secret opens the order it paid for.
    order = kassa.store("GET", f"/store/orders/{order_id}", secret=cart["client_secret"])
    assert order["cart"] == cart["id"]


def test_decline_is_shown_then_a_good_card_pays(kassa, merchant, page):
    cart, session = cart_session(kassa, merchant)
    page.goto(session["url"])

    pay_by_card(page, DECLINED_CARD)

    alert = page.get_by_role("alert")
    expect(alert).to_have_text("Your card was declined.")
    assert page.url == session["url"]  # still on the hosted page, form in place
    assert kassa.orders_of_cart(cart["id"]) == []
    s = kassa.store("GET", f"/store/checkout-sessions/{session['id']}", secret=session["client_secret"])
    assert (s["status"], s["payment_status"], s["order"]) == ("open", "unpaid", None)
    # A reload (GET) still tells the buyer why the last attempt failed.
    page.goto(session["url"])
    expect(page.get_by_role("alert")).to_have_text("Your card was declined.")

    pay_by_card(page, GOOD_CARD)

    page.wait_for_url(success_url_of(merchant, session))
    expect(page.locator("#result")).to_have_text(re.compile(r"^Order ord_\w+ confirmed$"))
    assert len(kassa.orders_of_cart(cart["id"])) == 1


def test_three_d_secure_then_success(kassa, merchant, page):
    cart, session = cart_session(kassa, merchant)
    page.goto(session["url"])

    pay_by_card(page, THREE_DS_CARD)

    page.wait_for_url(re.compile(r"/test-processor/authenticate/pi_\w+$"))
    expect(page.get_by_role("heading", name="3-D Secure authentication")).to_be_visible()
    assert kassa.orders_of_cart(cart["id"]) == []
    page.get_by_role("button", name="Complete authentication").click()

    page.wait_for_url(success_url_of(merchant, session))
    result = page.locator("#result")
    expect(result).to_have_text(re.compile(r"^Order ord_\w+ confirmed$"))
    order_id = result.inner_text().split()[1]
    assert [o["id"] for o in kassa.orders_of_cart(cart["id"])] == [order_id]
    # The processor's webhooks (checkout.session.completed, payment_intent.succeeded, …)
    # arrive after the success page has already completed the session: still one order.
    time.sleep(2)
    assert [o["id"] for o in kassa.orders_of_cart(cart["id"])] == [order_id]
    s = kassa.store("GET", f"/store/checkout-sessions/{session['id']}", secret=session["client_secret"])
    assert (s["status"], s["payment_status"], s["order"]) == ("complete", "paid", order_id)


def test_cancel_link_returns_to_the_shop(kassa, merchant, page):
    cart, session = cart_session(kassa, merchant)
    page.goto(session["url"])
    page.get_by_role("link", name=f"Cancel and return to {MERCHANT_NAME}").click()
    page.wait_for_url(f"{merchant}/cancel")
    expect(page.get_by_role("heading")).to_have_text("Checkout canceled")
    assert kassa.orders_of_cart(cart["id"]) == []


def test_credits_top_up(kassa, merchant, page):
    """Issue 6: a guest buys 250 credits (289 charged: 250 + 39 fee) and sees the balance."""
    buyer = email()
    session = kassa.store(
        "POST",
        "/store/credits/sessions",
        {"credits": 250, "success_url": f"{merchant}/success", "cancel_url": f"{merchant}/cancel", "email": buyer},
    )
    assert session["amount_total"] == 289 and session["customer"].startswith("cus_"), session
    page.goto(session["url"])
    rows = page.locator("table tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("250 credits")
    expect(rows.nth(0)).to_contain_text("$2.50")
    expect(rows.nth(1)).to_contain_text("Processing fee")
    expect(rows.nth(1)).to_contain_text("$0.39")
    expect(rows.nth(2)).to_contain_text("$2.89")

    pay_by_card(page, GOOD_CARD)

    # No template in this success_url: Kassa appends session_id=checkout_….
    page.wait_for_url(success_url_of(merchant, session))
    result = page.locator("#result")
    deadline = time.monotonic() + 10
    while result.inner_text() != "Balance: 250 credits" and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    expect(result).to_have_text("Balance: 250 credits")

    credits = kassa.admin("GET", f"/admin/customers/{session['customer']}/credits")
    assert credits["balance"] == 250
    assert [(e["kind"], e["amount"]) for e in credits["entries"]] == [("top_up", 250)]
    # Webhook deliveries arriving later do not add the credits again.
    time.sleep(2)
    assert kassa.admin("GET", f"/admin/customers/{session['customer']}/credits")["balance"] == 250


def test_hosted_page_has_a_content_security_policy_that_the_page_lives_with(kassa, merchant, page):
    """The hosted page forbids inline code and framing; its own stylesheet and script load under
    that policy, and paying still lands on the merchant's site (another origin, reached by a
    303 after the form's post: Chromium checks such redirects against `form-action`)."""
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    cart, session = cart_session(kassa, merchant)

    response = page.goto(session["url"])
    headers = response.headers
    csp = {d.split()[0]: d.split()[1:] for d in headers["content-security-policy"].split(";") if d.strip()}
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"], csp
    assert csp["frame-ancestors"] == ["'none'"], csp
    assert merchant in csp["form-action"], csp
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    # The served stylesheet applies (the Pay button's colour comes from it).
    pay = page.get_by_role("button", name=PAY_BUTTON)
    assert pay.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(80, 70, 229)"

    # Another site cannot frame the page (clickjacking), though it can frame a page that allows it.
    framing = page.context.new_page()
    framing.goto(f"{merchant}/cancel")
    framing.set_content(f'<iframe id=shop src="{merchant}/cancel"></iframe><iframe id=kassa src="{session["url"]}"></iframe>')
    expect(framing.frame_locator("#shop").get_by_role("heading", name="Checkout canceled")).to_be_visible()
    framing.wait_for_timeout(1000)
    expect(framing.frame_locator("#kassa").get_by_role("heading", name="Checkout")).to_have_count(0)
    framing.close()

    pay_by_card(page, GOOD_CARD)
    page.wait_for_url(success_url_of(merchant, session))
    expect(page.locator("#result")).to_have_text(re.compile(r"^Order ord_\w+ confirmed$"))
    assert violations == [], violations


def hold_posts(page, url):
    """Holds the page's POSTs to `url` (the request waits, as on a slow network) and returns the
    list of held routes; the test releases them with `route.continue_()`."""
    held = []

    def handle(route, request):
        if request.method == "POST":
            held.append(route)
        else:
            route.continue_()

    page.route(lambda u: u == url, handle)
    return held


def click_pay_twice(page, session, held):
    """A buyer on a slow connection: Pay, and Pay again while the first post is on its way."""
    page.goto(session["url"])
    page.fill("#number", GOOD_CARD)
    page.fill("#exp", "12/34")
    page.fill("#cvc", "123")
    pay = page.get_by_role("button", name=PAY_BUTTON)
    pay.scroll_into_view_if_needed()  # the mouse clicks within the viewport
    box = pay.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.click(x, y)
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(20)
    assert len(held) == 1
    # Mouse clicks where the button is, as a buyer's second click lands.
    page.mouse.click(x, y)
    page.wait_for_timeout(500)


def assert_one_order_and_one_payment(kassa, cart):
    time.sleep(1)  # the processor's webhooks arrive meanwhile
    orders = kassa.orders_of_cart(cart["id"])
    assert len(orders) == 1, orders
    payments = kassa.admin("GET", f"/admin/payments?customer={orders[0]['customer']}")["data"]
    assert [p["status"] for p in payments] == ["succeeded"], payments


def test_a_double_click_on_pay_submits_once_and_pays_once(kassa, merchant, page):
    cart, session = cart_session(kassa, merchant)
    held = hold_posts(page, session["url"])

    click_pay_twice(page, session, held)

    # The page's script disabled the buttons at the first submit: one post only (without it
    # the second click posts again, as the next test shows). Locators cannot look at the
    # buttons now: Playwright waits for the pending navigation first.
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_url(success_url_of(merchant, session))
    expect(page.locator("#result")).to_have_text(re.compile(r"^Order ord_\w+ confirmed$"))
    assert_one_order_and_one_payment(kassa, cart)


def test_without_the_script_a_second_click_posts_again_and_still_pays_once(kassa, merchant, browser):
    """The server side of the same promise (and proof that the click above would post twice
    without the script): with JavaScript off the second click posts again; both posts reach
    Kassa at once, and the buyer lands on the success page with one payment."""
    cart, session = cart_session(kassa, merchant)
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        held = hold_posts(page, session["url"])

        click_pay_twice(page, session, held)

        assert len(held) == 2
        for route in held:
            try:
                route.continue_()
            except Exception:  # the browser may have dropped the first post for the second
                pass
        page.wait_for_url(success_url_of(merchant, session))
        expect(page.locator("#result")).to_have_text(re.compile(r"^Order ord_\w+ confirmed$"))
    finally:
        context.close()
    assert_one_order_and_one_payment(kassa, cart)


def test_hosted_checkout_shows_the_merchant_the_buyer_and_the_amounts(kassa, merchant, page):
    """What Stripe Checkout shows: the shop's name, the buyer's email and shipping address, the
    items, a subtotal, shipping and tax, the total in the currency's own format; placeholders
    that cannot be mistaken for a filled card."""
    cart, session = cart_session(kassa, merchant)
    page.goto(session["url"])
    expect(page).to_have_title(f"Checkout · {MERCHANT_NAME}")
    expect(page.get_by_role("link", name=f"← {MERCHANT_NAME}")).to_have_attribute("href", f"{merchant}/cancel")
    expect(page.locator("dd.email")).to_have_text(cart["email"])
    address = page.locator("dd.address")
    for part in ["Ada Buyer", "1 Main St", "New York, NY 10001", "US"]:
        expect(address).to_contain_text(part)
    # T-shirt × 1, Mug × 2, Stickers × 1; then the subtotal, shipping, tax and total.
    rows = page.locator("table tr")
    expect(rows).to_have_count(7)
    expect(rows.nth(3)).to_have_text(re.compile(r"^Subtotal\s*" + re.escape(usd(cart["subtotal"])) + "$"))
    expect(rows.nth(4)).to_have_text(re.compile(r"^Shipping\s*" + re.escape(usd(cart["shipping_total"])) + "$"))
    expect(rows.nth(5)).to_have_text(re.compile(r"^Tax\s*" + re.escape(usd(cart["tax_total"])) + "$"))
    expect(rows.nth(6)).to_have_text(re.compile(r"^Total\s*" + re.escape(usd(cart["total"])) + "$"))
    expect(page.locator(".due strong")).to_have_text(usd(cart["total"]))
    for row in range(7):
        expect(rows.nth(row)).to_contain_text("$")
    assert page.get_attribute("#number", "placeholder") == "1234 1234 1234 1234"
    assert page.get_attribute("#exp", "placeholder") == "MM / YY"
    assert page.get_attribute("#cvc", "placeholder") == "CVC"


def test_after_a_decline_the_number_stays_and_focus_is_on_the_message(kassa, merchant, page):
    cart, session = cart_session(kassa, merchant)
    page.goto(session["url"])

    pay_by_card(page, DECLINED_CARD, exp="11/33")

    problem = page.get_by_role("alert")
    expect(problem).to_have_text("Your card was declined.")
    expect(problem).to_be_focused()
    expect(page.locator("#number")).to_have_value(DECLINED_CARD)
    expect(page.locator("#exp")).to_have_value("11/33")
    expect(page.locator("#cvc")).to_have_value("")  # the security code is typed again
    expect(page.locator("#number")).to_have_attribute("aria-describedby", "payment-error")

    # Only the security code to type again, and the right card this time.
    page.fill("#number", GOOD_CARD)
    page.fill("#cvc", "123")
    page.get_by_role("button", name=PAY_BUTTON).click()
    page.wait_for_url(success_url_of(merchant, session))
    assert len(kassa.orders_of_cart(cart["id"])) == 1


def test_the_credits_page_is_a_top_up_with_a_way_back(kassa, merchant, page):
    session = kassa.store(
        "POST",
        "/store/credits/sessions",
        {"credits": 500, "success_url": f"{merchant}/success", "cancel_url": f"{merchant}/cancel", "email": email()},
    )
    page.goto(session["url"])
    expect(page).to_have_title(f"Top up credits · {MERCHANT_NAME}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Top up credits")
    expect(page.locator("table tr").first).to_contain_text("500 credits")
    expect(page.get_by_role("button", name=PAY_BUTTON)).to_have_text(f"Pay {usd(session['amount_total'])}")
    page.get_by_role("link", name=f"← {MERCHANT_NAME}").click()
    page.wait_for_url(f"{merchant}/cancel")


def axe_problems(page):
    """Serious and critical axe-core violations of the page (WCAG 2.1 A and AA rules)."""
    page.evaluate(Path(os.environ["KASSA_AXE_JS"]).read_text())
    result = page.evaluate("() => axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']})")
    return [
        (v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_hosted_pages_have_no_serious_accessibility_problems(kassa, merchant, page):
    """axe-core on the checkout page (fresh, after a decline), the 3-D Secure page and the
    top-up page: no serious or critical issue."""
    cart, session = cart_session(kassa, merchant)
    page.goto(session["url"])
    assert axe_problems(page) == []
    pay_by_card(page, DECLINED_CARD)
    expect(page.get_by_role("alert")).to_be_visible()
    assert axe_problems(page) == []
    pay_by_card(page, THREE_DS_CARD)
    page.wait_for_url(re.compile(r"/test-processor/authenticate/pi_\w+$"))
    assert axe_problems(page) == []

    top_up = kassa.store(
        "POST", "/store/credits/sessions", {"credits": 100, "success_url": f"{merchant}/success", "email": email()}
    )
    page.goto(top_up["url"])
    assert axe_problems(page) == []

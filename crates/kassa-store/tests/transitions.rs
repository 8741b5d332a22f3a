//! The store keeps what the state machines decide, on both databases: every status a
//! transition hands it is written and read back as the same value, compare-and-set updates
//! happen once, and the job claims select by the status they are given.
//!
//! Runs on a SQLite file, or with `KASSA_TEST_DATABASE_URL=postgres://…` on a fresh schema of
//! that PostgreSQL database (as the HTTP suites choose).

use kassa_domain::ids::IdKind;
use kassa_domain::lifecycle::cart::{self, CartInput, CartStatus};
use kassa_domain::lifecycle::checkout_session::{
    self as session, SessionPaymentStatus, SessionPurpose, SessionReport, SessionStatus,
};
use kassa_domain::lifecycle::order::{
    self, FulfillmentStatus, OrderInput, OrderPaymentStatus, OrderState, OrderStatus,
};
use kassa_domain::lifecycle::payment::{
    self, CartCheck, IntentReport, IntentStatus, PaymentInput, PaymentStatus, Purpose, Target, VoidReason,
};
use kassa_domain::lifecycle::refund::{self, RefundOutcome, RefundStatus};
use kassa_store::carts::{self, CartRow};
use kassa_store::checkout_sessions::{self, SessionRow};
use kassa_store::db::ConnectOptions;
use kassa_store::orders::{self, OrderRow, RefundRow};
use kassa_store::payments::{self, PaymentRow};
use kassa_store::{Store, sql};
use std::time::Duration;

const NOW: i64 = 1_800_000_000;

/// A migrated store on a fresh database; the temp dir (SQLite) lives as long as the test.
async fn fresh() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = match std::env::var("KASSA_TEST_DATABASE_URL") {
        Ok(admin) if admin.starts_with("postgres") => {
            let schema = format!("st_{}", IdKind::Order.new_id().to_lowercase().replace('_', ""));
            let admin_store = connect(&admin).await;
            sql::query(&format!("CREATE SCHEMA {schema}")).execute(admin_store.writer()).await.unwrap();
            admin_store.close().await;
            let sep = if admin.contains('?') { '&' } else { '?' };
            format!("{admin}{sep}options[search_path]={schema}")
        }
        _ => format!("sqlite://{}", dir.path().join("kassa.db").display()),
    };
    let store = connect(&url).await;
    // The built-in test processor's tables first, as a server migrates: the store's 0007 indexes
    // one of them (kassa_sandbox::migrations says why). Read by path: the sandbox crate depends
    // on this one.
    let dialect = match store.backend() {
        kassa_store::Backend::Sqlite => "sqlite",
        kassa_store::Backend::Postgres => "postgres",
    };
    let sandbox = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../kassa-sandbox/migrations").join(dialect);
    let mut first = sqlx::migrate::Migrator::new(sandbox).await.unwrap();
    first.set_ignore_missing(true);
    first.set_locking(false);
    first.run(store.writer()).await.unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

async fn connect(url: &str) -> Store {
    Store::connect(&ConnectOptions {
        url: url.into(),
        max_connections: 3,
        acquire_timeout: Duration::from_secs(10),
        sqlite_full_sync: false,
    })
    .await
    .unwrap()
}

/// A customer, a region and an open cart in it.
async fn cart_of_customer(store: &Store) -> (String, CartRow) {
    let customer = IdKind::Customer.new_id();
    let region = IdKind::Region.new_id();
    sql::query("INSERT INTO customers (id, guest, created, updated) VALUES ($1, FALSE, $2, $2)")
        .bind(&customer)
        .bind(NOW)
        .execute(store.writer())
        .await
        .unwrap();
    sql::query(
        "INSERT INTO regions (id, name, currency, tax_inclusive, created, updated) VALUES ($1, 'EU', 'eur', FALSE, $2, $2)",
    )
    .bind(&region)
    .bind(NOW)
    .execute(store.writer())
    .await
    .unwrap();
    let cart = CartRow {
        id: IdKind::Cart.new_id(),
        customer: Some(customer.clone()),
        customer_signed_in: true,
        email: None,
        region,
        currency: "eur".into(),
        shipping_option: None,
        shipping_address: None,
        billing_address: None,
        status: CartStatus::Open,
        version: 1,
        subtotal: 1000,
        discount_total: 0,
        shipping_total: 0,
        tax_total: 0,
        total: 1000,
        metadata: "{}".into(),
        last_activity: NOW - 100_000,
        completed_at: None,
        created: NOW,
        updated: NOW,
        client_secret_hash: None,
    };
    let mut tx = store.begin().await.unwrap();
    carts::insert(&mut tx, &cart).await.unwrap();
    tx.commit().await.unwrap();
    (customer, cart)
}

fn succeeded(amount: i64) -> IntentReport {
    IntentReport {
        status: IntentStatus::Succeeded,
        amount_capturable: 0,
        amount_received: amount,
        amount_refunded: 0,
        next_action_url: None,
        last_error: None,
    }
}

#[tokio::test]
async fn payment_transitions_are_kept_as_decided() {
    let (store, _dir) = fresh().await;
    let (customer, cart) = cart_of_customer(&store).await;
    let p = PaymentRow {
        cart: Some(cart.id.clone()),
        cart_version: Some(cart.version),
        ..PaymentRow::pending(Purpose::Order, &customer, 1000, "eur", "test", NOW)
    };
    let mut tx = store.begin().await.unwrap();
    payments::insert(&mut tx, &p).await.unwrap();
    tx.commit().await.unwrap();

    // Every step of a payment whose cart changed meanwhile: secured, given back.
    let steps = [
        PaymentInput::Reported { intent: succeeded(1000), target: Target::Order(CartCheck::Stale) },
        PaymentInput::GivenBack,
    ];
    for input in steps {
        let mut tx = store.begin().await.unwrap();
        let mut row = payments::lock(&mut tx, &p.id).await.unwrap().unwrap();
        let t = payment::transition(&row.state(), &input).unwrap();
        row.set_state(&t.next);
        row.updated = NOW + 1;
        payments::save(&mut tx, &row).await.unwrap();
        tx.commit().await.unwrap();
        let read = payments::get(store.reader(), &p.id).await.unwrap().unwrap();
        assert_eq!(read.state(), t.next, "{input:?}");
        assert_eq!(read, row);
    }
    let read = payments::get(store.reader(), &p.id).await.unwrap().unwrap();
    assert_eq!(read.status, PaymentStatus::Voided);
    assert_eq!(read.state().void_reason, Some(VoidReason::Stale));
    assert_eq!((read.amount_captured, read.amount_refunded), (1000, 1000));

    // The claims select by the status they are given.
    let voided = payments::in_statuses(store.reader(), &[PaymentStatus::Voided], 10).await.unwrap();
    assert_eq!(voided.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), [p.id.as_str()]);
    assert!(payments::in_statuses(store.reader(), &[PaymentStatus::VoidPending], 10).await.unwrap().is_empty());
    let leased = payments::claim_leased(&store, PaymentStatus::Voided, NOW, NOW + 10, 10).await.unwrap();
    assert_eq!(leased.len(), 1);
    // Only a pending payment's call can be leased.
    assert!(!payments::claim_pending(store.writer(), &p.id, NOW + 20, NOW + 30).await.unwrap());
}

#[tokio::test]
async fn order_cart_session_and_refund_transitions_are_kept_as_decided() {
    let (store, _dir) = fresh().await;
    let (customer, mut cart) = cart_of_customer(&store).await;
    let mut p = PaymentRow {
        cart: Some(cart.id.clone()),
        cart_version: Some(cart.version),
        ..PaymentRow::pending(Purpose::Order, &customer, 1000, "eur", "test", NOW)
    };
    p.set_state(
        &payment::transition(
            &p.state(),
            &PaymentInput::Reported { intent: succeeded(1000), target: Target::Order(CartCheck::Payable) },
        )
        .unwrap()
        .next,
    );
    let state = OrderState::new(1000, 1000, false);
    let mut o = OrderRow {
        id: IdKind::Order.new_id(),
        cart: cart.id.clone(),
        payment: p.id.clone(),
        customer: customer.clone(),
        email: None,
        region: cart.region.clone(),
        currency: "eur".into(),
        subtotal: 1000,
        discount_total: 0,
        shipping_total: 0,
        tax_total: 0,
        total: 1000,
        shipping_option: None,
        shipping_address: None,
        billing_address: None,
        status: state.status,
        payment_status: state.payment_status,
        fulfillment_status: state.fulfillment_status,
        amount_authorized: state.amount_authorized,
        amount_captured: state.amount_captured,
        amount_refunded: state.amount_refunded,
        metadata: "{}".into(),
        created: NOW,
        updated: NOW,
    };
    let s = SessionRow {
        id: IdKind::CheckoutSession.new_id(),
        purpose: SessionPurpose::Cart,
        cart: Some(cart.id.clone()),
        cart_version: Some(cart.version),
        customer: customer.clone(),
        credits: None,
        currency: "eur".into(),
        amount_total: 1000,
        lines: "[]".into(),
        status: SessionStatus::Open,
        payment_status: SessionPaymentStatus::Unpaid,
        success_url: "https://shop.test/ok".into(),
        cancel_url: None,
        processor_session: None,
        url: None,
        payment: None,
        order_id: None,
        expires_at: NOW - 1,
        created: NOW,
        updated: NOW,
        client_secret_hash: None,
        price: None,
        quantity: None,
        subscription: None,
    };
    let mut tx = store.begin().await.unwrap();
    payments::insert(&mut tx, &p).await.unwrap();
    checkout_sessions::insert(&mut tx, &s).await.unwrap();
    // Open carts idle for long are claimed for expiry; sessions past expiry likewise.
    assert_eq!(carts::claim_idle(&mut tx, &store, CartStatus::Open, NOW, 10).await.unwrap().len(), 1);
    assert_eq!(checkout_sessions::claim_expired(&mut tx, &store, SessionStatus::Open, NOW, 10).await.unwrap().len(), 1);
    // The cart completes with the order.
    let t = cart::transition(cart.status, CartInput::Complete).unwrap();
    cart.status = t.next;
    carts::save(&mut tx, &cart).await.unwrap();
    orders::insert(&mut tx, &o, &[]).await.unwrap();
    // The session completes, paid.
    let mut locked = checkout_sessions::lock(&mut tx, &s.id).await.unwrap().unwrap();
    let t = session::transition(locked.state(), SessionReport { status: SessionStatus::Complete, money_secured: true });
    locked.set_state(t.next);
    checkout_sessions::save(&mut tx, &locked).await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(carts::get(store.reader(), &cart.id).await.unwrap().unwrap().status, CartStatus::Completed);
    let mut tx = store.begin().await.unwrap();
    assert!(carts::claim_idle(&mut tx, &store, CartStatus::Open, NOW, 10).await.unwrap().is_empty());
    assert!(checkout_sessions::claim_expired(&mut tx, &store, SessionStatus::Open, NOW, 10).await.unwrap().is_empty());
    tx.commit().await.unwrap();
    let read = checkout_sessions::get(store.reader(), &s.id).await.unwrap().unwrap();
    assert_eq!(read.state(), t.next);
    assert_eq!((read.status, read.payment_status), (SessionStatus::Complete, SessionPaymentStatus::Paid));

    // Fulfil, then refund part of it: each step read back as decided.
    let mut tx = store.begin().await.unwrap();
    let t = order::transition(&o.state(), &OrderInput::Fulfilled).unwrap();
    o.set_state(&t.next);
    orders::save(&mut tx, &o).await.unwrap();
    assert!(orders::reserve_refund(&mut tx, &o.id, 400, OrderStatus::Canceled, NOW).await.unwrap());
    assert!(
        !orders::reserve_refund(&mut tx, &o.id, 601, OrderStatus::Canceled, NOW).await.unwrap(),
        "more than captured"
    );
    let r = RefundRow {
        id: IdKind::Refund.new_id(),
        order_id: Some(o.id.clone()),
        payment: p.id.clone(),
        amount: 400,
        currency: "eur".into(),
        status: RefundStatus::Pending,
        reason: None,
        processor_refund: None,
        failure_message: None,
        created: NOW,
        updated: NOW,
    };
    orders::insert_refund(&mut tx, &r).await.unwrap();
    tx.commit().await.unwrap();
    let read = orders::get(store.reader(), &o.id).await.unwrap().unwrap();
    assert_eq!((read.status, read.fulfillment_status), (OrderStatus::Completed, FulfillmentStatus::Fulfilled));

    let (to, _) = refund::settle(RefundStatus::Pending, RefundOutcome::Succeeded).unwrap();
    let mut tx = store.begin().await.unwrap();
    let pending = orders::claim_refunds(&mut tx, &store, RefundStatus::Pending, NOW + 1, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert!(orders::settle_refund(&mut tx, &r.id, RefundStatus::Pending, to, Some("re_1"), None, NOW).await.unwrap());
    assert!(
        !orders::settle_refund(&mut tx, &r.id, RefundStatus::Pending, RefundStatus::Failed, None, Some("late"), NOW)
            .await
            .unwrap(),
        "a settled refund is settled once"
    );
    let mut o = orders::lock(&mut tx, &o.id).await.unwrap().unwrap();
    let t = order::transition(&o.state(), &OrderInput::RefundSettled { amount_refunded: o.amount_refunded }).unwrap();
    o.set_state(&t.next);
    orders::save(&mut tx, &o).await.unwrap();
    tx.commit().await.unwrap();
    let read = orders::get(store.reader(), &o.id).await.unwrap().unwrap();
    assert_eq!(read.state(), t.next);
    assert_eq!((read.payment_status, read.amount_refunded), (OrderPaymentStatus::PartiallyRefunded, 400));
    let refunds = orders::refunds_of(store.reader(), &o.id).await.unwrap();
    assert_eq!(refunds.iter().map(|r| r.status).collect::<Vec<_>>(), [RefundStatus::Succeeded]);
    // A canceled order takes no refund.
    let mut tx = store.begin().await.unwrap();
    o.status = OrderStatus::Canceled;
    orders::save(&mut tx, &o).await.unwrap();
    assert!(!orders::reserve_refund(&mut tx, &o.id, 1, OrderStatus::Canceled, NOW).await.unwrap());
    tx.commit().await.unwrap();
}

/// Text no version of Kassa wrote is refused on reading, not taken for some status.
#[tokio::test]
async fn an_unknown_status_is_an_error_not_a_guess() {
    let (store, _dir) = fresh().await;
    let (_, cart) = cart_of_customer(&store).await;
    sql::query("UPDATE carts SET status = 'archived' WHERE id = $1")
        .bind(&cart.id)
        .execute(store.writer())
        .await
        .unwrap();
    assert!(carts::get(store.reader(), &cart.id).await.is_err());
}

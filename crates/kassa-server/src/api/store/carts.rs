//! Carts, single-shot pay and hosted checkout sessions.

use super::{ClientSecretHeader, ClientSecretQuery};
use crate::api::IdempotencyKeyHeader;
use crate::api::auth::Shopper;
use crate::api::idempotency::{Idempotent, LOCAL_ATTEMPTS};
use crate::error::{ApiResult, ErrorBody};
use crate::objects::commerce::{Cart, CheckoutSession};
use crate::services::Tx;
use crate::services::carts::{self, Actor, CreateCart, ItemInput, NewCustomers, UpdateCart, UpdateLineInput};
use crate::services::checkout::{self, PayInput, PayResult};
use crate::services::checkout_sessions::{self, CreateSessionInput};
use crate::services::customers;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use futures::future::BoxFuture;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_cart))
        .routes(routes!(get_cart, update_cart))
        .routes(routes!(add_line_item))
        .routes(routes!(update_line_item, delete_line_item))
        .routes(routes!(pay))
        .routes(routes!(create_checkout_session))
        .routes(routes!(get_checkout_session))
}

fn ttl(app: &AppState) -> i64 {
    app.settings.checkout.cart_ttl_days as i64 * 86_400
}

/// Runs a cart change idempotently in one transaction (again, when the database aborted it
/// for a concurrent one), then starts the processor customer of any guest it created.
async fn change<F>(
    app: &AppState,
    shopper: &Shopper,
    req: crate::api::idempotency::IdemRequest,
    work: F,
) -> ApiResult<Response>
where
    F: for<'t> FnOnce(&'t mut Tx, &'t Actor, &'t mut NewCustomers) -> BoxFuture<'t, ApiResult<Cart>>
        + Clone
        + Send
        + 'static,
{
    let now = app.clock.now();
    let ttl_secs = ttl(app);
    let max_amount = app.settings.checkout.max_amount;
    let customer = shopper.customer.clone();
    let client_secret = shopper.client_secret.clone();
    let new = std::sync::Arc::new(std::sync::Mutex::new(NewCustomers::new()));
    let collected = new.clone();
    let (response, _) = req
        .local_retrying(app, &shopper.idempotency_scope(), LOCAL_ATTEMPTS, move |tx| {
            let actor =
                Actor { customer: customer.clone(), client_secret: client_secret.clone(), now, ttl_secs, max_amount };
            let collected = collected.clone();
            // The guests of an attempt the database aborted were rolled back with it.
            collected.lock().expect("not poisoned").clear();
            // Each attempt runs its own copy of the work (it owns the request's input).
            let work = work.clone();
            Box::pin(async move {
                let mut created = NewCustomers::new();
                let cart = work(tx, &actor, &mut created).await?;
                collected.lock().expect("not poisoned").extend(created);
                Ok(cart)
            })
        })
        .await?;
    for id in new.lock().expect("not poisoned").drain(..) {
        customers::after_commit(app, &id);
    }
    Ok(response)
}

/// Create a cart in a region, optionally with a guest email, items and addresses. The answer
/// carries the cart's `client_secret`, shown once: every later call about the cart, its
/// checkout sessions and its order sends it (`Kassa-Client-Secret`), unless the cart belongs to
/// the signed-in customer making the call.
#[utoipa::path(post, path = "/store/carts", tag = "Carts", request_body = CreateCart,
    params(IdempotencyKeyHeader), security(("publishable_key" = []), ("publishable_key" = [], "customer_jwt" = [])),
    responses((status = 200, body = Cart), (status = "4XX", body = ErrorBody)))]
async fn create_cart(
    State(app): State<AppState>,
    shopper: Shopper,
    req: Idempotent<CreateCart>,
) -> ApiResult<Response> {
    let body = req.body;
    change(&app, &shopper, req.request, move |tx, actor, new| Box::pin(carts::create(tx, actor, body, new))).await
}

/// Retrieve a cart.
#[utoipa::path(get, path = "/store/carts/{id}", tag = "Carts",
    params(("id" = String, Path), ClientSecretHeader, ClientSecretQuery),
    security(("publishable_key" = []), ("publishable_key" = [], "customer_jwt" = [])),
    responses((status = 200, body = Cart), (status = "4XX", body = ErrorBody)))]
async fn get_cart(State(app): State<AppState>, shopper: Shopper, Path(id): Path<String>) -> ApiResult<Json<Cart>> {
    Ok(Json(carts::get(&app.store, shopper.caller(), &id, ttl(&app)).await?))
}

/// Update a cart: email, region, addresses, shipping option, metadata.
#[utoipa::path(post, path = "/store/carts/{id}", tag = "Carts", request_body = UpdateCart,
    params(("id" = String, Path), ClientSecretHeader, ClientSecretQuery, IdempotencyKeyHeader),
    security(("publishable_key" = []), ("publishable_key" = [], "customer_jwt" = [])),
    responses((status = 200, body = Cart), (status = "4XX", body = ErrorBody)))]
async fn update_cart(
    State(app): State<AppState>,
    shopper: Shopper,
    Path(id): Path<String>,
    req: Idempotent<UpdateCart>,
) -> ApiResult<Response> {
    let body = req.body;
    change(&app, &shopper, req.request, move |tx, actor, new| {
        Box::pin(async move { carts::update(tx, actor, &id, body, new).await })
    })
    .await
}

/// Add a price to the cart (adding a price already in it raises its quantity). Tracked stock
/// is reserved while the cart is open.
#[utoipa::path(post, path = "/store/carts/{id}/line-items", tag = "Carts", request_body = ItemInput,
    params(("id" = String, Path), ClientSecretHeader, ClientSecretQuery, IdempotencyKeyHeader),
    security(("publishable_key" = []), ("publishable_key" = [], "customer_jwt" = [])),
    responses((status = 200, body = Cart), (status = "4XX", body = ErrorBody)))]
async fn add_line_item(
    State(app): State<AppState>,
    shopper: Shopper,
    Path(id): Path<String>,
    req: Idempotent<ItemInput>,
) -> ApiResult<Response> {
    let body = req.body;
    change(&app, &shopper, req.request, move |tx, actor, _| {
        Box::pin(async move { carts::add_line(tx, actor, &id, body).await })
    })
    .await
}

/// Set a line's quantity (0 removes it).
#[utoipa::path(post, path = "/store/carts/{id}/line-items/{line}", tag = "Carts", request_body = UpdateLineInput,
    params(("id" = String, Path), ("line" = String, Path), ClientSecretHeader, ClientSecretQuery, IdempotencyKeyHeader),
    security(("publishable_key" = []), ("publishable_key" = [], "customer_jwt" = [])),
    responses((status = 200, body = Cart), (status = "4XX", body = ErrorBody)))]
async fn update_line_item(
    State(app): State<AppState>,
    shopper: Shopper,
    Path((id, line)): Path<(String, String)>,
    req: Idempotent<UpdateLineInput>,
) -> ApiResult<Response> {
    let quantity = req.body.quantity;
    change(&app, &shopper, req.request, move |tx, actor, _| {
        Box::pin(async move { carts::update_line(tx, actor, &id, &line, quantity).await })
    })
    .await
}

/// Remove a line.
#[utoipa::path(delete, path = "/store/carts/{id}/line-items/{line}", tag = "Carts",
    params(("id" = String, Path), ("line" = String, Path), ClientSecretHeader, ClientSecretQuery),
    security(("publishable_key" = []), ("publishable_key" = [], "customer_jwt" = [])),
    responses((status = 200, body = Cart), (status = "4XX", body = ErrorBody)))]
async fn delete_line_item(
    State(app): State<AppState>,
    shopper: Shopper,
    Path((id, line)): Path<(String, String)>,
    req: Idempotent<serde_json::Value>,
) -> ApiResult<Response> {
    change(&app, &shopper, req.request, move |tx, actor, _| {
        Box::pin(async move { carts::update_line(tx, actor, &id, &line, 0).await })
    })
    .await
}

/// Pay the cart in one call: Kassa creates and confirms a PaymentIntent (with the processor
/// customer attached) and, once it succeeded or is authorized, creates the order. A decline
/// answers 402 with the decline code and leaves the cart payable; 3-D Secure answers
/// `requires_action` with the challenge URL — completion arrives by webhook or by calling
/// pay again, and yields the order exactly once. While another request is paying the cart
/// the answer is 409 `payment_in_progress` (retry for its outcome); a processor that does not
/// answer within the configured deadline gives 502 `processor_unavailable`.
#[utoipa::path(post, path = "/store/carts/{id}/pay", tag = "Carts", request_body = PayInput,
    params(("id" = String, Path), ClientSecretHeader, ClientSecretQuery, IdempotencyKeyHeader),
    security(("publishable_key" = []), ("publishable_key" = [], "customer_jwt" = [])),
    responses((status = 200, body = PayResult), (status = 402, body = ErrorBody),
        (status = 409, description = "`payment_in_progress`, `cart_completed`, `cart_changed`, …", body = ErrorBody),
        (status = "4XX", body = ErrorBody),
        (status = 502, description = "`processor_unavailable`: the outcome is not known yet", body = ErrorBody)))]
async fn pay(
    State(app): State<AppState>,
    shopper: Shopper,
    Path(id): Path<String>,
    req: Idempotent<PayInput>,
) -> ApiResult<Response> {
    let scope = shopper.idempotency_scope();
    let body = req.body;
    let work = async { checkout::pay(&app, shopper.caller(), &id, body).await };
    req.request.staged(&app, &scope, work).await
}

/// Start a hosted checkout for the cart: `{id, url, client_secret}`; send the buyer to `url`.
/// The buyer comes back to `success_url` with the session id and the session's client secret.
#[utoipa::path(post, path = "/store/carts/{id}/checkout-sessions", tag = "Carts", request_body = CreateSessionInput,
    params(("id" = String, Path), ClientSecretHeader, ClientSecretQuery, IdempotencyKeyHeader),
    security(("publishable_key" = []), ("publishable_key" = [], "customer_jwt" = [])),
    responses((status = 200, body = CheckoutSession), (status = "4XX", body = ErrorBody)))]
async fn create_checkout_session(
    State(app): State<AppState>,
    shopper: Shopper,
    Path(id): Path<String>,
    req: Idempotent<CreateSessionInput>,
) -> ApiResult<Response> {
    let scope = shopper.idempotency_scope();
    let body = req.body;
    let work = async { checkout_sessions::for_cart(&app, shopper.caller(), &id, body).await };
    req.request.staged(&app, &scope, work).await
}

/// Retrieve a checkout session, brought up to date with the processor (call it from the
/// success page: the order may exist before the webhook arrives). Opens with the session's
/// client secret (appended to the success URL) or the cart's.
#[utoipa::path(get, path = "/store/checkout-sessions/{id}", tag = "Carts",
    params(("id" = String, Path), ClientSecretHeader, ClientSecretQuery),
    security(("publishable_key" = []), ("publishable_key" = [], "customer_jwt" = [])),
    responses((status = 200, body = CheckoutSession), (status = "4XX", body = ErrorBody)))]
async fn get_checkout_session(
    State(app): State<AppState>,
    shopper: Shopper,
    Path(id): Path<String>,
) -> ApiResult<Json<CheckoutSession>> {
    Ok(Json(checkout_sessions::get_synced(&app, shopper.caller(), &id).await?))
}

//! Carts: created and changed by shoppers; every change happens under the cart's row lock,
//! recomputes the totals on the server, bumps the version and keeps stock reservations in
//! step with the lines.

use crate::error::{ApiError, ApiResult};
use crate::objects::catalog::TaxRate;
use crate::objects::commerce::{Address, Cart};
use crate::objects::{Metadata, metadata_json};
use crate::services::access::Caller;
use crate::services::catalog::{combined_rate, double_option};
use crate::services::{customers, validate};
use kassa_domain::client_secret;
use kassa_domain::ids::IdKind;
use kassa_domain::lifecycle::cart::CartStatus;
use kassa_domain::money::{Amount, MAX_LINES, MAX_QUANTITY};
use kassa_domain::totals::{self, PricedLine, TaxPolicy};
use kassa_store::carts::{self as db, CartRow, LineRow};
use kassa_store::catalog::{RegionRow, ShippingOptionRow};
use kassa_store::customers::CustomerRow;
use kassa_store::{Store, Tx, catalog, events, orders};
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    pub price: String,
    /// 1 to 1,000,000 (default 1); a line holds at most 1,000,000 units.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub quantity: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCart {
    /// Sets the currency and taxes.
    pub region: String,
    /// A guest's email (without a customer token): finds or creates the guest customer.
    #[schema(format = Email)]
    pub email: Option<String>,
    /// At most 100 lines; the cart's total may be at most `checkout.max_amount`.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub items: Vec<ItemInput>,
    pub shipping_address: Option<Address>,
    pub billing_address: Option<Address>,
    pub shipping_option: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCart {
    #[schema(format = Email)]
    pub email: Option<String>,
    /// Another region with the same currency (or any region while the cart is empty).
    pub region: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Address>)]
    pub shipping_address: Option<Option<Address>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Address>)]
    pub billing_address: Option<Option<Address>>,
    /// A shipping option of the cart's region; `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub shipping_option: Option<Option<String>>,
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLineInput {
    /// 0 to 1,000,000; 0 removes the line.
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub quantity: i64,
}

/// Who is acting on a cart.
pub struct Actor {
    pub customer: Option<CustomerRow>,
    /// The client secret the request presented (see `services::access`).
    pub client_secret: Option<String>,
    pub now: i64,
    pub ttl_secs: i64,
    /// The largest total a cart may reach (`checkout.max_amount`).
    pub max_amount: i64,
}

impl Actor {
    pub fn caller(&self) -> Caller<'_> {
        Caller { customer: self.customer.as_ref(), client_secret: self.client_secret.as_deref() }
    }
}

/// Guest customers created while changing a cart (their processor customer is started
/// after the commit).
pub type NewCustomers = Vec<String>;

fn not_found(id: &str) -> ApiError {
    ApiError::not_found("cart", id)
}

/// Whether the caller may see and change the cart: its customer, signed in, or whoever
/// presents its client secret (see `services::access`).
pub fn may_access(cart: &CartRow, caller: Caller<'_>) -> bool {
    caller.may_reach(cart.customer.as_deref(), &[cart.client_secret_hash.as_deref()])
}

fn country(param: &str, region_countries: &[String], a: &Address) -> ApiResult<Address> {
    let mut a = a.clone();
    a.line1 = validate::text(&format!("{param}.line1"), &a.line1, 200)?;
    a.city = validate::text(&format!("{param}.city"), &a.city, 100)?;
    let c = a.country.trim().to_ascii_uppercase();
    if c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_alphabetic()) {
        return Err(ApiError::invalid(
            format!("{param}.country"),
            "country is an ISO 3166-1 alpha-2 code such as \"US\".",
        ));
    }
    if param == "shipping_address" && !region_countries.is_empty() && !region_countries.contains(&c) {
        return Err(ApiError::invalid(
            format!("{param}.country"),
            format!("The cart's region ships to {} only.", region_countries.join(", ")),
        ));
    }
    a.country = c;
    for (field, value, max) in [
        ("name", &a.name, 200),
        ("line2", &a.line2, 200),
        ("postal_code", &a.postal_code, 20),
        ("state", &a.state, 100),
        ("phone", &a.phone, 40),
    ] {
        validate::optional_text(&format!("{param}.{field}"), value.as_deref(), max)?;
    }
    Ok(a)
}

/// What one change read already, so that it reads each row once.
#[derive(Default)]
pub struct Known {
    region: Option<RegionRow>,
    /// The chosen shipping option's row, when this change looked it up.
    shipping: Option<ShippingOptionRow>,
}

impl Known {
    async fn region(&mut self, tx: &mut Tx, id: &str) -> ApiResult<&RegionRow> {
        if self.region.as_ref().is_none_or(|r| r.id != id) {
            let r =
                catalog::region_cached(tx, id).await?.ok_or_else(|| ApiError::invalid("region", "No such region."))?;
            self.region = Some(r);
        }
        Ok(self.region.as_ref().expect("just set"))
    }

    async fn countries(&mut self, tx: &mut Tx, region: &str) -> ApiResult<Vec<String>> {
        Ok(serde_json::from_str(&self.region(tx, region).await?.countries).unwrap_or_default())
    }

    async fn shipping_amount(&mut self, tx: &mut Tx, id: Option<&str>) -> ApiResult<i64> {
        let Some(id) = id else { return Ok(0) };
        if self.shipping.as_ref().is_none_or(|s| s.id != id) {
            self.shipping = catalog::shipping_option_cached(tx, id).await?;
        }
        Ok(self.shipping.as_ref().map(|s| s.amount).unwrap_or(0))
    }
}

/// 400 `amount_too_large`: a cart's total above what Kassa may charge.
fn too_large(param: Option<String>, max: i64) -> ApiError {
    ApiError::InvalidRequest {
        code: "amount_too_large",
        message: format!("The cart's total would be larger than {max}, the most one payment may be (minor units)."),
        param,
    }
}

/// Refuses a change after which the lines would add up to more than `max`: `extra` is the
/// changed line's new amount, `skip` the line it replaces. Checked before any stock moves.
fn lines_within(lines: &[LineRow], skip: Option<&str>, extra: i128, max: i64, param: &str) -> ApiResult<()> {
    // i128: at most MAX_LINES lines of MAX_QUANTITY × MAX_AMOUNT cannot overflow it.
    let others: i128 =
        lines.iter().filter(|l| Some(l.id.as_str()) != skip).map(|l| l.unit_amount as i128 * l.quantity as i128).sum();
    if others + extra > max as i128 { Err(too_large(Some(param.to_string()), max)) } else { Ok(()) }
}

/// Recomputes the totals from the lines, the shipping option and the region's taxes; a total
/// that grows above `max` (with shipping and tax) is refused. (One above it already, after
/// the bound was lowered, may still shrink.)
async fn recompute(tx: &mut Tx, cart: &mut CartRow, lines: &[LineRow], known: &mut Known, max: i64) -> ApiResult<()> {
    let shipping = known.shipping_amount(tx, cart.shipping_option.as_deref()).await?;
    let region = known.region(tx, &cart.region).await?;
    let rates: Vec<TaxRate> = serde_json::from_str(&region.tax_rates).unwrap_or_default();
    let priced: Vec<PricedLine> = lines
        .iter()
        .map(|l| PricedLine { unit_amount: Amount::new(l.unit_amount).unwrap_or_default(), quantity: l.quantity })
        .collect();
    let policy = TaxPolicy { rate: combined_rate(&rates), inclusive: region.tax_inclusive };
    let before = cart.total;
    let t = totals::compute(&priced, Amount::new(shipping).unwrap_or_default(), policy)
        .ok()
        .filter(|t| t.total <= max || t.total <= before)
        .ok_or_else(|| too_large(None, max))?;
    cart.subtotal = t.subtotal;
    cart.discount_total = t.discount;
    cart.shipping_total = t.shipping;
    cart.tax_total = t.tax;
    cart.total = t.total;
    Ok(())
}

/// Adds `quantity` of `price` to the cart (merging with an existing line of that price),
/// reserving tracked stock. `lines` are the cart's lines, kept up to date; a new line is not
/// inserted here but listed in `new_lines`, for [`finish_as`] to write with the cart.
#[allow(clippy::too_many_arguments)] // The change's state, threaded through each item.
async fn add_units(
    tx: &mut Tx,
    cart: &CartRow,
    lines: &mut Vec<LineRow>,
    new_lines: &mut Vec<String>,
    price_id: &str,
    quantity: i64,
    param: &str,
    actor: &Actor,
) -> ApiResult<()> {
    let now = actor.now;
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(ApiError::invalid(
            format!("{param}.quantity"),
            format!("quantity must be between 1 and {MAX_QUANTITY}."),
        ));
    }
    let price_param = format!("{param}.price");
    let found =
        if IdKind::Price.matches(price_id) { catalog::price_with_product_cached(tx, price_id).await? } else { None };
    let (price, product) =
        found.ok_or_else(|| ApiError::invalid(&price_param, format!("No such price: '{price_id}'")))?;
    if !price.active {
        return Err(ApiError::invalid(&price_param, "This price is not active."));
    }
    if price.kind != "one_time" {
        return Err(ApiError::invalid(
            &price_param,
            "Recurring prices start subscriptions; carts take one-time prices.",
        ));
    }
    if price.currency != cart.currency {
        return Err(ApiError::invalid(
            &price_param,
            format!("The price is in {}, the cart in {}.", price.currency, cart.currency),
        ));
    }
    if !product.active {
        return Err(ApiError::invalid(&price_param, "The price's product is not available."));
    }
    let existing = lines.iter().position(|l| l.price == price.id);
    let new_quantity = existing.map(|i| lines[i].quantity).unwrap_or(0) + quantity;
    if new_quantity > MAX_QUANTITY {
        return Err(ApiError::invalid(
            format!("{param}.quantity"),
            format!("A line holds at most {MAX_QUANTITY} units."),
        ));
    }
    if existing.is_none() && lines.len() >= MAX_LINES {
        return Err(ApiError::invalid(&price_param, format!("A cart holds at most {MAX_LINES} lines.")));
    }
    let line_amount = price.unit_amount as i128 * new_quantity as i128;
    let replaced = existing.map(|i| lines[i].id.clone());
    lines_within(lines, replaced.as_deref(), line_amount, actor.max_amount, &format!("{param}.quantity"))?;
    let mut reserved = existing.map(|i| lines[i].reserved).unwrap_or(0);
    if product.track_inventory {
        if !db::reserve(tx, &product.id, quantity, now).await? {
            // The figures of a copy from memory are not current: read them for the message.
            let available = catalog::get_product(tx.conn(), &product.id)
                .await?
                .map(|p| p.inventory_quantity - p.inventory_reserved)
                .unwrap_or(0);
            return Err(ApiError::conflict(
                "insufficient_inventory",
                format!("Only {available} of '{}' are available.", product.name),
            ));
        }
        reserved += quantity;
    }
    match existing.map(|i| &mut lines[i]) {
        Some(l) => {
            // A line this change adds is written with the cart at the end.
            if !new_lines.contains(&l.id) {
                db::update_line(tx, &l.id, new_quantity, reserved, now).await?;
            }
            l.quantity = new_quantity;
            l.reserved = reserved;
            l.updated = now;
        }
        None => {
            let line = LineRow {
                id: IdKind::LineItem.new_id(),
                cart: cart.id.clone(),
                price: price.id,
                product: product.id,
                name: product.name,
                quantity,
                unit_amount: price.unit_amount,
                reserved,
                created: now,
                updated: now,
                // After every line the cart holds (`lines` are all of them, read this request).
                position: lines.iter().map(|l| l.position + 1).max().unwrap_or(0),
            };
            new_lines.push(line.id.clone());
            lines.push(line);
        }
    }
    Ok(())
}

/// Sets a line's quantity (0 removes it), moving the reservation by the difference.
async fn set_quantity(
    tx: &mut Tx,
    lines: &mut Vec<LineRow>,
    line_id: &str,
    quantity: i64,
    actor: &Actor,
) -> ApiResult<()> {
    let now = actor.now;
    if !(0..=MAX_QUANTITY).contains(&quantity) {
        return Err(ApiError::invalid("quantity", format!("quantity must be between 0 and {MAX_QUANTITY}.")));
    }
    let index = lines.iter().position(|l| l.id == line_id).ok_or_else(|| ApiError::not_found("line_item", line_id))?;
    if quantity > lines[index].quantity {
        let amount = lines[index].unit_amount as i128 * quantity as i128;
        lines_within(lines, Some(line_id), amount, actor.max_amount, "quantity")?;
    }
    let line = &mut lines[index];
    let delta = quantity - line.quantity;
    if delta > 0 {
        let product = catalog::get_product(tx.conn(), &line.product).await?;
        if product.as_ref().is_some_and(|p| p.track_inventory) {
            if !db::reserve(tx, &line.product, delta, now).await? {
                return Err(ApiError::conflict(
                    "insufficient_inventory",
                    format!("Not enough of '{}' is available.", line.name),
                ));
            }
            line.reserved += delta;
        }
    } else if delta < 0 && line.reserved > 0 {
        // Release what the lower quantity no longer needs.
        let give_back = (line.reserved - quantity.max(0)).clamp(0, line.reserved);
        if give_back > 0 {
            db::release(tx, &line.product, give_back, now).await?;
            line.reserved -= give_back;
        }
    }
    if quantity == 0 {
        db::delete_line(tx, line_id).await?;
        lines.remove(index);
    } else {
        line.quantity = quantity;
        line.updated = now;
        let (id, reserved) = (line.id.clone(), line.reserved);
        db::update_line(tx, &id, quantity, reserved, now).await?;
    }
    Ok(())
}

/// Locks an open cart the actor may change; returns it with its lines.
async fn lock_open(tx: &mut Tx, id: &str, actor: &Actor) -> ApiResult<(CartRow, Vec<LineRow>)> {
    validate::id(IdKind::Cart, "cart", id)?;
    let (cart, lines) = db::lock_with_lines(tx, id)
        .await?
        .filter(|(c, _)| may_access(c, actor.caller()))
        .ok_or_else(|| not_found(id))?;
    if cart.status != CartStatus::Open {
        return Err(ApiError::conflict(
            "cart_not_open",
            format!("This cart is {}; it can no longer change.", cart.status),
        ));
    }
    Ok((cart, lines))
}

/// Whether the cart's row is in the database yet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Saved {
    /// Created by this change and not inserted yet: `finish` inserts it.
    New,
    Stored,
}

/// Recomputes, bumps the version, saves (with the lines listed in `new_lines`, inserted in
/// the same statement where the database allows), and returns the cart as the API shows it.
async fn finish(
    tx: &mut Tx,
    cart: CartRow,
    lines: Vec<LineRow>,
    new_lines: &[String],
    known: &mut Known,
    actor: &Actor,
) -> ApiResult<Cart> {
    finish_as(tx, cart, lines, new_lines, known, actor, Saved::Stored).await
}

async fn finish_as(
    tx: &mut Tx,
    mut cart: CartRow,
    lines: Vec<LineRow>,
    new_lines: &[String],
    known: &mut Known,
    actor: &Actor,
    saved: Saved,
) -> ApiResult<Cart> {
    // A signed-in shopper who changes a guest's or an anonymous cart takes it over.
    if let Some(c) = &actor.customer
        && !cart.customer_signed_in
    {
        cart.customer = Some(c.id.clone());
        cart.customer_signed_in = true;
        if cart.email.is_none() {
            cart.email = c.email.clone();
        }
    }
    recompute(tx, &mut cart, &lines, known, actor.max_amount).await?;
    cart.version += 1;
    cart.last_activity = actor.now;
    cart.updated = actor.now;
    let added: Vec<LineRow> = lines.iter().filter(|l| new_lines.contains(&l.id)).cloned().collect();
    match saved {
        Saved::New => db::insert_with_lines(tx, &cart, &added).await?,
        Saved::Stored => db::save_with_lines(tx, &cart, &added).await?,
    }
    Ok(Cart::from_rows(cart, lines, None, actor.ttl_secs))
}

async fn set_email(
    tx: &mut Tx,
    cart: &mut CartRow,
    email: &str,
    actor: &Actor,
    new: &mut NewCustomers,
) -> ApiResult<()> {
    let email = customers::email("email", email)?;
    if actor.customer.is_none() && !cart.customer_signed_in {
        let (guest, created) = customers::guest(tx, actor.now, &email).await?;
        if created {
            new.push(guest.id.clone());
        }
        cart.customer = Some(guest.id);
    }
    cart.email = Some(email);
    Ok(())
}

async fn set_shipping_option(
    tx: &mut Tx,
    cart: &mut CartRow,
    option: Option<&str>,
    known: &mut Known,
) -> ApiResult<()> {
    cart.shipping_option = match option {
        None => None,
        Some(id) => {
            let o =
                if IdKind::ShippingOption.matches(id) { catalog::shipping_option_cached(tx, id).await? } else { None };
            let o = o.filter(|o| o.active && o.region == cart.region).ok_or_else(|| {
                ApiError::invalid("shipping_option", "No active shipping option with this id in the cart's region.")
            })?;
            let id = o.id.clone();
            known.shipping = Some(o);
            Some(id)
        }
    };
    Ok(())
}

fn address_json(param: &str, countries: &[String], a: Option<&Address>) -> ApiResult<Option<String>> {
    Ok(a.map(|a| country(param, countries, a)).transpose()?.map(|a| serde_json::to_string(&a).expect("address")))
}

pub async fn create(tx: &mut Tx, actor: &Actor, input: CreateCart, new: &mut NewCustomers) -> ApiResult<Cart> {
    validate::metadata(&input.metadata)?;
    if input.items.len() > MAX_LINES {
        return Err(ApiError::invalid("items", format!("A cart holds at most {MAX_LINES} lines.")));
    }
    // The configuration (region, shipping option, prices) comes from memory as of the newest
    // version this server has seen, without reading the version first: the cart's insert
    // observes it, and a newer one runs the creation again (`Tx::assume_config_version`).
    tx.assume_config_version();
    let region =
        if IdKind::Region.matches(&input.region) { catalog::region_cached(tx, &input.region).await? } else { None };
    let region = region.ok_or_else(|| ApiError::invalid("region", format!("No such region: '{}'", input.region)))?;
    let countries: Vec<String> = serde_json::from_str(&region.countries).unwrap_or_default();
    let mut known = Known { region: Some(region.clone()), shipping: None };
    let id = IdKind::Cart.new_id();
    let (secret, secret_hash) = client_secret::generate(&id);
    let mut cart = CartRow {
        id,
        customer: actor.customer.as_ref().map(|c| c.id.clone()),
        customer_signed_in: actor.customer.is_some(),
        email: actor.customer.as_ref().and_then(|c| c.email.clone()),
        region: region.id,
        currency: region.currency,
        shipping_option: None,
        shipping_address: address_json("shipping_address", &countries, input.shipping_address.as_ref())?,
        billing_address: address_json("billing_address", &countries, input.billing_address.as_ref())?,
        status: CartStatus::Open,
        version: 0,
        subtotal: 0,
        discount_total: 0,
        shipping_total: 0,
        tax_total: 0,
        total: 0,
        metadata: metadata_json(&input.metadata),
        last_activity: actor.now,
        completed_at: None,
        created: actor.now,
        updated: actor.now,
        client_secret_hash: Some(secret_hash),
    };
    if let Some(e) = &input.email {
        set_email(tx, &mut cart, e, actor, new).await?;
    }
    set_shipping_option(tx, &mut cart, input.shipping_option.as_deref(), &mut known).await?;
    // The cart is inserted once, complete, with its lines, by `finish_as`.
    // Reservations below go in item order; the product rows are locked first, in id order.
    let prices: Vec<&str> = input.items.iter().map(|i| i.price.as_str()).filter(|p| IdKind::Price.matches(p)).collect();
    db::lock_products_of(tx, &prices).await?;
    let (mut lines, mut new_lines) = (Vec::new(), Vec::new());
    for (i, item) in input.items.iter().enumerate() {
        let (price, quantity, param) = (&item.price, item.quantity.unwrap_or(1), format!("items[{i}]"));
        add_units(tx, &cart, &mut lines, &mut new_lines, price, quantity, &param, actor).await?;
    }
    let mut cart = finish_as(tx, cart, lines, &new_lines, &mut known, actor, Saved::New).await?;
    events::record(tx, "cart.created", &cart.id, &cart, actor.now).await?;
    // Shown once, in this answer only (never in events: only the guest gets it).
    cart.client_secret = Some(secret);
    Ok(cart)
}

pub async fn update(
    tx: &mut Tx,
    actor: &Actor,
    id: &str,
    input: UpdateCart,
    new: &mut NewCustomers,
) -> ApiResult<Cart> {
    let (mut cart, lines) = lock_open(tx, id, actor).await?;
    let mut known = Known::default();
    if let Some(region_id) = &input.region {
        let region =
            if IdKind::Region.matches(region_id) { catalog::region_cached(tx, region_id).await? } else { None };
        let region = region.ok_or_else(|| ApiError::invalid("region", format!("No such region: '{region_id}'")))?;
        if region.currency != cart.currency && !lines.is_empty() {
            return Err(ApiError::invalid(
                "region",
                format!("The cart holds items priced in {}; the region uses {}.", cart.currency, region.currency),
            ));
        }
        if cart.region != region.id {
            cart.shipping_option = None;
        }
        cart.region = region.id.clone();
        cart.currency = region.currency.clone();
        known.region = Some(region);
    }
    if let Some(e) = &input.email {
        set_email(tx, &mut cart, e, actor, new).await?;
    }
    if input.shipping_address.is_some() || input.billing_address.is_some() {
        let countries = known.countries(tx, &cart.region).await?;
        if let Some(a) = &input.shipping_address {
            cart.shipping_address = address_json("shipping_address", &countries, a.as_ref())?;
        }
        if let Some(a) = &input.billing_address {
            cart.billing_address = address_json("billing_address", &countries, a.as_ref())?;
        }
    }
    if let Some(o) = &input.shipping_option {
        set_shipping_option(tx, &mut cart, o.as_deref(), &mut known).await?;
    }
    if let Some(m) = &input.metadata {
        validate::metadata(m)?;
        cart.metadata = metadata_json(m);
    }
    finish(tx, cart, lines, &[], &mut known, actor).await
}

pub async fn add_line(tx: &mut Tx, actor: &Actor, id: &str, input: ItemInput) -> ApiResult<Cart> {
    let (cart, mut lines) = lock_open(tx, id, actor).await?;
    let mut new_lines = Vec::new();
    let quantity = input.quantity.unwrap_or(1);
    add_units(tx, &cart, &mut lines, &mut new_lines, &input.price, quantity, "item", actor).await.map_err(|e| {
        match e {
            // Single-item endpoint: the params are top-level.
            ApiError::InvalidRequest { code, message, param } => ApiError::InvalidRequest {
                code,
                message,
                param: param.map(|p| p.trim_start_matches("item.").to_string()),
            },
            other => other,
        }
    })?;
    finish(tx, cart, lines, &new_lines, &mut Known::default(), actor).await
}

pub async fn update_line(tx: &mut Tx, actor: &Actor, id: &str, line: &str, quantity: i64) -> ApiResult<Cart> {
    let (cart, mut lines) = lock_open(tx, id, actor).await?;
    set_quantity(tx, &mut lines, line, quantity, actor).await?;
    finish(tx, cart, lines, &[], &mut Known::default(), actor).await
}

pub async fn get(store: &Store, caller: Caller<'_>, id: &str, ttl_secs: i64) -> ApiResult<Cart> {
    validate::id(IdKind::Cart, "cart", id)?;
    let cart = db::get(store.reader(), id).await?.filter(|c| may_access(c, caller)).ok_or_else(|| not_found(id))?;
    let lines = db::lines(store.reader(), id).await?;
    let order = if cart.status == CartStatus::Completed {
        orders::by_cart(store.reader(), id).await?.map(|o| o.id)
    } else {
        None
    };
    Ok(Cart::from_rows(cart, lines, order, ttl_secs))
}

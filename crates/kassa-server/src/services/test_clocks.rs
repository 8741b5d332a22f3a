//! Test clocks (the test processor only), like Stripe's: customers created on a clock live at
//! its frozen time, and advancing it runs every renewal, retry and expiry of an `incomplete`
//! subscription that falls due for them, in
//! time order, before it answers. Other customers are unaffected.

use crate::error::{ApiError, ApiResult};
use crate::objects::billing::TestClock;
use crate::services::{invoices, subscriptions, validate};
use crate::state::AppState;
use kassa_domain::ids::IdKind;
use kassa_store::billing::{self as db, TestClockRow};
use serde::Deserialize;
use std::time::Duration;
use utoipa::ToSchema;

/// 9999-12-31T23:59:59Z.
const MAX_TIME: i64 = 253_402_300_799;
/// How far one advance may move a clock (Stripe allows two intervals; five years here).
const MAX_ADVANCE_SECS: i64 = 5 * 366 * 86_400;
/// How long an advance waits for work that another server holds (or a processor that does
/// not answer) before it gives up with 502.
const ADVANCE_DEADLINE: Duration = Duration::from_secs(60);
/// The clock's one status (Stripe's `ready`; advancing runs inside the request).
const READY: &str = "ready";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTestClockInput {
    /// Unix seconds the clock starts at.
    pub frozen_time: i64,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvanceInput {
    /// Unix seconds, later than the clock's time, at most five years later.
    pub frozen_time: i64,
}

fn test_processor_only(state: &AppState) -> ApiResult<()> {
    if state.test_processor.is_some() {
        Ok(())
    } else {
        Err(ApiError::Unprocessable {
            code: "test_clocks_unavailable",
            message: "Test clocks exist with the test processor only (processor.kind = \"test\").".into(),
            param: None,
        })
    }
}

pub async fn create(state: &AppState, input: CreateTestClockInput) -> ApiResult<TestClock> {
    test_processor_only(state)?;
    validate::int_in("frozen_time", input.frozen_time, 0..=MAX_TIME)?;
    let name = validate::optional_text("name", input.name.as_deref(), 300)?;
    let now = state.clock.now();
    let row = TestClockRow {
        id: IdKind::TestClock.new_id(),
        name,
        frozen_time: input.frozen_time,
        status: READY.into(),
        created: now,
        updated: now,
    };
    let mut tx = state.store.begin().await?;
    db::insert_test_clock(&mut tx, &row).await?;
    tx.commit().await?;
    Ok(row.into())
}

pub async fn get(state: &AppState, id: &str) -> ApiResult<TestClock> {
    validate::id(IdKind::TestClock, "test_clock", id)?;
    let row =
        db::get_test_clock(state.store.reader(), id).await?.ok_or_else(|| ApiError::not_found("test_clock", id))?;
    Ok(row.into())
}

/// Moves the clock forward to `frozen_time`, stopping at every moment billing work falls due
/// for its customers (a period end, a retry) to do that work at that moment, so a year
/// advanced at once bills as a year lived through. Returns when all of it is done.
pub async fn advance(state: &AppState, id: &str, input: AdvanceInput) -> ApiResult<TestClock> {
    test_processor_only(state)?;
    validate::id(IdKind::TestClock, "test_clock", id)?;
    let current =
        db::get_test_clock(state.store.reader(), id).await?.ok_or_else(|| ApiError::not_found("test_clock", id))?;
    let target = input.frozen_time;
    if target <= current.frozen_time
        || target > current.frozen_time.saturating_add(MAX_ADVANCE_SECS)
        || target > MAX_TIME
    {
        return Err(ApiError::invalid(
            "frozen_time",
            format!(
                "frozen_time must be later than the clock's time ({}) and at most five years later.",
                current.frozen_time
            ),
        ));
    }
    let deadline = tokio::time::Instant::now() + ADVANCE_DEADLINE;
    loop {
        let due = subscriptions::next_due_on_clock(state, id).await?;
        let step = match due {
            Some(t) if t < target => t,
            _ => target,
        };
        move_to(state, id, step).await?;
        drain(state, id, step, deadline).await?;
        if step >= target {
            break;
        }
    }
    get(state, id).await
}

/// Sets the clock's time (never backwards).
async fn move_to(state: &AppState, id: &str, t: i64) -> ApiResult<()> {
    let mut tx = state.store.begin().await?;
    let mut clock = db::lock_test_clock(&mut tx, id).await?.ok_or_else(|| ApiError::not_found("test_clock", id))?;
    if t > clock.frozen_time {
        clock.frozen_time = t;
        clock.updated = state.clock.now();
        db::update_test_clock(&mut tx, &clock).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Does everything due on the clock at time `t`: renewals, expiries of `incomplete`
/// subscriptions, then payment attempts, until
/// nothing is due — including work another server claimed, which it waits for.
async fn drain(state: &AppState, id: &str, t: i64, deadline: tokio::time::Instant) -> ApiResult<()> {
    loop {
        if tokio::time::Instant::now() > deadline {
            return Err(ApiError::ProcessorUnavailable(
                "the test clock's billing did not finish in time (the processor did not answer)".into(),
            ));
        }
        let renewed = subscriptions::renew_due(state, Some(id), 100).await?;
        let expired = subscriptions::expire_incomplete(state, Some(id), 100).await?;
        let (attempted, _) = invoices::collect_due(state, Some(id), 100).await?;
        if renewed > 0 || expired > 0 || attempted > 0 {
            continue;
        }
        match subscriptions::next_due_on_clock(state, id).await? {
            Some(due) if due <= t => {
                // Held by another server's claim (or waiting for the processor): wait for it.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => return Ok(()),
        }
    }
}

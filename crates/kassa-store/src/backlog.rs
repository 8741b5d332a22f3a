//! How much work is due for a background job, for `/metrics`: the rows a job's claim would
//! take now, counted (up to [`COUNT_CAP`], so a huge backlog costs a bounded read) with the
//! earliest of their due times. The server says which rows a job claims (its table, the
//! column its rows fall due by, the filter); this module only reads them.

use crate::Result;
use crate::sql;
use sqlx::{Any, Executor};

/// Backlogs are counted up to this many rows.
pub const COUNT_CAP: i64 = 10_000;

/// A value bound to the filter's placeholders (`$1`, `$2`, … in order).
#[derive(Clone, Copy, Debug)]
pub enum Bind<'a> {
    Text(&'a str),
    Int(i64),
}

/// Where a job's due rows are: `SELECT … FROM {table} WHERE {filter}`, due by `{due}`.
/// Static text only: values go through [`Bind`].
#[derive(Clone, Copy, Debug)]
pub struct DueRows {
    pub table: &'static str,
    pub due: &'static str,
    pub filter: &'static str,
}

/// Due rows counted (at most [`COUNT_CAP`]), and the earliest due value among them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    pub items: i64,
    pub earliest: Option<i64>,
}

pub async fn measure<'e, E: Executor<'e, Database = Any>>(db: E, rows: DueRows, binds: &[Bind<'_>]) -> Result<Backlog> {
    let DueRows { table, due, filter } = rows;
    let limit = binds.len() + 1;
    let text = format!(
        "SELECT COUNT(*), MIN(due) FROM (SELECT {due} AS due FROM {table} WHERE {filter} ORDER BY {due} LIMIT ${limit}) d"
    );
    let mut q = sql::query_as::<(i64, Option<i64>)>(&text);
    for b in binds {
        q = match *b {
            Bind::Text(t) => q.bind(t),
            Bind::Int(i) => q.bind(i),
        };
    }
    let (items, earliest) = q.bind(COUNT_CAP).fetch_one(db).await?;
    Ok(Backlog { items, earliest })
}

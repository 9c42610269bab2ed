//! Statements built and run from code generic over the engine: the
//! [`QueryBuilder`] and the [`Value`]s it binds, [`Exec`] (running one on a
//! connection) and [`Record`] (reading a row by column name). The sqlx
//! capabilities they need are stated once, on their blanket impls.

use crate::domain::page::Scan;
use futures_util::future::BoxFuture;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use std::marker::PhantomData;
use uuid::Uuid;

/// Runs a built statement on a connection. Implemented once for every
/// sqlx database that can bind the values of [`Value`].
pub trait Exec: Database {
    /// Every row.
    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        qb: &'c QueryBuilder<Self>,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>>;

    /// The first row, if any.
    fn fetch_optional<'c>(
        conn: &'c mut Self::Connection,
        qb: &'c QueryBuilder<Self>,
    ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>>;

    /// Runs it for its effect.
    fn execute<'c>(
        conn: &'c mut Self::Connection,
        qb: &'c QueryBuilder<Self>,
    ) -> BoxFuture<'c, Result<(), sqlx::Error>>;
}

impl<DB> Exec for DB
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
{
    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        qb: &'c QueryBuilder<Self>,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>> {
        Box::pin(bind(qb).fetch_all(conn))
    }

    fn fetch_optional<'c>(
        conn: &'c mut Self::Connection,
        qb: &'c QueryBuilder<Self>,
    ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>> {
        Box::pin(bind(qb).fetch_optional(conn))
    }

    fn execute<'c>(
        conn: &'c mut Self::Connection,
        qb: &'c QueryBuilder<Self>,
    ) -> BoxFuture<'c, Result<(), sqlx::Error>> {
        let run = bind(qb).execute(conn);
        Box::pin(async move { run.await.map(drop) })
    }
}

/// The executable query: the text with every value bound in order.
fn bind<DB>(qb: &QueryBuilder<DB>) -> sqlx::query::Query<'_, DB, DB::Arguments<'_>>
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
{
    let mut q = sqlx::query::<DB>(&qb.text);
    for v in &qb.values {
        q = match v.clone() {
            Value::I64(x) => q.bind(x),
            Value::OptI64(x) => q.bind(x),
            Value::Text(x) => q.bind(x),
            Value::OptText(x) => q.bind(x),
            Value::Uuid(x) => q.bind(x),
        };
    }
    q
}

/// A result row read by column name. Implemented once for every sqlx row
/// type that decodes the column types the schemas use.
pub trait Record {
    /// A non-null integer.
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    /// A nullable integer.
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    /// Text.
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    /// Nullable text.
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// A UUID.
    fn uuid(&self, column: &str) -> Result<Uuid, sqlx::Error>;
}

impl<R> Record for R
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Uuid: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.try_get(column)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(column)
    }
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.try_get(column)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(column)
    }
    fn uuid(&self, column: &str) -> Result<Uuid, sqlx::Error> {
        self.try_get(column)
    }
}

/// A value bound to a statement.
#[derive(Debug, Clone)]
pub enum Value {
    /// An integer.
    I64(i64),
    /// A nullable integer.
    OptI64(Option<i64>),
    /// Text.
    Text(String),
    /// Nullable text.
    OptText(Option<String>),
    /// A UUID.
    Uuid(Uuid),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::I64(v)
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Self::OptI64(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Self::OptText(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}
impl From<Uuid> for Value {
    fn from(v: Uuid) -> Self {
        Self::Uuid(v)
    }
}

/// How an engine writes the placeholder of a bound value.
pub trait Placeholders {
    /// Writes the placeholder of the `n`th (1-based) bound value.
    fn placeholder(n: usize, out: &mut String);
}

/// Statement text with its bound values, placeholders written per dialect.
/// (sqlx's own builder cannot be executed from code generic over the database.)
pub struct QueryBuilder<DB> {
    text: String,
    values: Vec<Value>,
    /// Whose placeholders; a function pointer so the builder is `Send + Sync` whatever `DB` is.
    db: PhantomData<fn() -> DB>,
}

impl<DB: Placeholders> QueryBuilder<DB> {
    /// Starts a statement.
    pub fn new(text: &str) -> Self {
        Self { text: text.to_owned(), values: Vec::new(), db: PhantomData }
    }

    /// Appends SQL text.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn push_bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        DB::placeholder(self.values.len(), &mut self.text);
        self
    }

    /// Appends `(v1, v2, …)`.
    pub fn push_values(&mut self, values: Vec<Value>) -> &mut Self {
        self.push("(");
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_bind(v);
        }
        self.push(")")
    }

    /// Prefixes the statement (for `EXPLAIN`).
    pub fn prefix(&mut self, text: &str) -> &mut Self {
        self.text.insert_str(0, text);
        self
    }
}

/// A scan as SQL: the position, the comparison past it, and the order.
pub fn keyset<P>(scan: Scan<P>) -> (Option<P>, &'static str, &'static str) {
    match scan {
        Scan::Older(at) => (at, " < ", " DESC"),
        Scan::Newer(at) => (at, " > ", " ASC"),
    }
}

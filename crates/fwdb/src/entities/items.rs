//! catalog.items: a category subtree through ltree (`<@`, GiST), fuzzy name
//! search through pg_trgm (`%`, GIN), prices as exact decimals.

use crate::error::Result;
use crate::postgres::Executor;
use crate::query::{check, col, val, Entity, LabelPath, Statement, Value, MAX_LIMIT};
use crate::repo::PgRepository;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_query::{Expr, ExprTrait, SelectStatement};
use uuid::Uuid;

/// A catalog item (catalog.items).
#[derive(Debug, Clone, PartialEq, serde::Serialize, crate::Entity)]
#[fwdb(schema = "catalog", table = "items", soft_delete, audit)]
pub struct Item {
    pub id: Uuid,
    #[fwdb(unique = "idx_items_sku", not_blank, length(max = 64), check = "trimmed")]
    pub sku: String,
    #[fwdb(not_blank, length(max = 255))]
    pub name: String,
    #[fwdb(length(max = 1_000_000))]
    pub description: Option<String>,
    pub category_path: LabelPath,
    #[fwdb(check = "price")]
    pub price: Decimal,
    #[fwdb(check = "currency")]
    pub currency: String,
    #[fwdb(check = "super::object")]
    pub attributes: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
}

impl NewItem {
    /// An item in EUR, with no description and no attributes.
    pub fn new(
        sku: impl Into<String>,
        name: impl Into<String>,
        category_path: impl Into<LabelPath>,
        price: Decimal,
    ) -> NewItem {
        NewItem {
            sku: sku.into(),
            name: name.into(),
            description: None,
            category_path: category_path.into(),
            price,
            currency: "EUR".into(),
            attributes: serde_json::json!({}),
        }
    }
}

/// numeric(12, 2): at most 10 integer digits and 2 decimals, never negative.
fn price(p: &Decimal) -> Result<(), &'static str> {
    if p.is_sign_negative() && !p.is_zero() {
        return Err("must not be negative");
    }
    if p.normalize().scale() > 2 {
        return Err("at most 2 decimal places");
    }
    if *p >= Decimal::new(10_000_000_000, 0) {
        return Err("at most 9999999999.99");
    }
    Ok(())
}

fn currency(c: &str) -> Result<(), &'static str> {
    if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("three capital letters (ISO 4217), e.g. EUR");
    }
    Ok(())
}

fn trimmed(s: &str) -> Result<(), &'static str> {
    if s.trim() != s {
        return Err("leading or trailing spaces");
    }
    Ok(())
}

impl PgRepository<Item> {
    /// The statement `search_by_name` runs (for tests).
    pub fn search_statement(text: &str, limit: i64) -> Result<Statement> {
        check::text("name", text, 255)?;
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(check::invalid("limit", &format!("{limit} is out of range 1..={MAX_LIMIT}")));
        }
        let t = Value::String(text.to_string());
        let mut q = SelectStatement::new();
        q.columns(Item::FIELDS.iter().copied())
            .from((Item::SCHEMA, Item::TABLE))
            .and_where(col("name").binary(sea_query::extension::postgres::PgBinOper::Similarity, val(&t)))
            .and_where(Expr::col("deleted_at").is_null())
            .order_by_expr(Expr::cust_with_expr("similarity(name, $1)", val(&t)), sea_query::Order::Desc)
            .order_by("id", sea_query::Order::Asc)
            .limit(limit as u64);
        Ok(Statement::build(&q))
    }

    /// Live items whose name is similar to `text` (pg_trgm `%`, the GIN trigram
    /// index), most similar first: finds "Evening Dress" for "evnig dres".
    pub async fn search_by_name<E: Executor>(&self, exec: &E, text: &str, limit: i64) -> Result<Vec<Item>> {
        let st = Self::search_statement(text, limit)?;
        let rows = exec.read(&st.sql, &st.params(), self.consistency).await?;
        Item::from_rows(&rows)
    }
}

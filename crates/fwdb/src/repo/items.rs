//! catalog.items: a category subtree through ltree (`<@`, GiST), fuzzy name
//! search through pg_trgm (`%`, GIN), prices as exact decimals.

use super::{PgRepository, Record, SqlType};
use crate::error::Result;
use crate::postgres::Executor;
use crate::query::{check, col, val, Column, Entity, LabelPath, Statement, Value, MAX_LIMIT};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_query::{Expr, ExprTrait, SelectStatement};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

/// A catalog item (catalog.items).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Item {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: Option<String>,
    pub category_path: LabelPath,
    pub price: Decimal,
    pub currency: String,
    pub attributes: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
}

impl Item {
    pub const ID: Column<Item, Uuid> = Column::new("id");
    pub const SKU: Column<Item, String> = Column::new("sku");
    pub const NAME: Column<Item, String> = Column::new("name");
    pub const DESCRIPTION: Column<Item, Option<String>> = Column::new("description");
    pub const CATEGORY_PATH: Column<Item, LabelPath> = Column::new("category_path");
    pub const PRICE: Column<Item, Decimal> = Column::new("price");
    pub const CURRENCY: Column<Item, String> = Column::new("currency");
    pub const ATTRIBUTES: Column<Item, serde_json::Value> = Column::new("attributes");
    pub const CREATED_AT: Column<Item, DateTime<Utc>> = Column::new("created_at");
    pub const UPDATED_AT: Column<Item, DateTime<Utc>> = Column::new("updated_at");
    pub const DELETED_AT: Column<Item, Option<DateTime<Utc>>> = Column::new("deleted_at");
    pub const CREATED_BY: Column<Item, Option<Uuid>> = Column::new("created_by");
    pub const UPDATED_BY: Column<Item, Option<Uuid>> = Column::new("updated_by");
}

/// An item to create. `NewItem::new` gives currency EUR, no description, no attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    pub sku: String,
    pub name: String,
    pub description: Option<String>,
    pub category_path: LabelPath,
    pub price: Decimal,
    pub currency: String,
    pub attributes: serde_json::Value,
}

impl NewItem {
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

/// The fields to change; `None` leaves a field as it is; `description: Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemPatch {
    pub sku: Option<String>,
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub category_path: Option<LabelPath>,
    pub price: Option<Decimal>,
    pub currency: Option<String>,
    pub attributes: Option<serde_json::Value>,
}

const FIELDS: &[&str] = &[
    "id",
    "sku",
    "name",
    "description",
    "category_path",
    "price",
    "currency",
    "attributes",
    "created_at",
    "updated_at",
    "deleted_at",
    "created_by",
    "updated_by",
];

impl Entity for Item {
    const SCHEMA: &'static str = "catalog";
    const TABLE: &'static str = "items";
    const FIELDS: &'static [&'static str] = FIELDS;
    const ID: Column<Self, Uuid> = Item::ID;

    fn from_row(r: &Row) -> Result<Self> {
        Ok(Item {
            id: r.try_get(0)?,
            sku: r.try_get(1)?,
            name: r.try_get(2)?,
            description: r.try_get(3)?,
            category_path: LabelPath(r.try_get(4)?),
            price: r.try_get(5)?,
            currency: r.try_get(6)?,
            attributes: r.try_get(7)?,
            created_at: r.try_get(8)?,
            updated_at: r.try_get(9)?,
            deleted_at: r.try_get(10)?,
            created_by: r.try_get(11)?,
            updated_by: r.try_get(12)?,
        })
    }

    fn id(&self) -> Uuid {
        self.id
    }

    fn field_value(&self, field: &str) -> Option<Value> {
        Some(match field {
            "id" => self.id.into(),
            "sku" => self.sku.clone().into(),
            "name" => self.name.clone().into(),
            "description" => self.description.clone().into(),
            "category_path" => self.category_path.clone().into(),
            "price" => self.price.into(),
            "currency" => self.currency.clone().into(),
            "created_at" => self.created_at.into(),
            "updated_at" => self.updated_at.into(),
            "deleted_at" => self.deleted_at.into(),
            "created_by" => self.created_by.into(),
            "updated_by" => self.updated_by.into(),
            _ => return None,
        })
    }
}

/// numeric(12, 2): at most 10 integer digits and 2 decimals, never negative.
fn check_price(p: &Decimal) -> Result<()> {
    if p.is_sign_negative() && !p.is_zero() {
        return Err(check::invalid("price", "must not be negative"));
    }
    if p.normalize().scale() > 2 {
        return Err(check::invalid("price", "at most 2 decimal places"));
    }
    if *p >= Decimal::new(10_000_000_000, 0) {
        return Err(check::invalid("price", "at most 9999999999.99"));
    }
    Ok(())
}

fn check_currency(c: &str) -> Result<()> {
    if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(check::invalid("currency", "three capital letters (ISO 4217), e.g. EUR"));
    }
    Ok(())
}

fn check_sku(s: &str) -> Result<()> {
    check::text("sku", s, 64)?;
    if s.trim() != s {
        return Err(check::invalid("sku", "leading or trailing spaces"));
    }
    Ok(())
}

impl Record for Item {
    type New = NewItem;
    type Patch = ItemPatch;
    const INSERT: &'static [(&'static str, SqlType)] = &[
        ("sku", SqlType::Text),
        ("name", SqlType::Text),
        ("description", SqlType::Text),
        ("category_path", SqlType::Ltree),
        ("price", SqlType::Numeric),
        ("currency", SqlType::Text),
        ("attributes", SqlType::Jsonb),
    ];
    const UNIQUE: &'static [(&'static str, &'static str)] = &[("idx_items_sku", "sku"), ("items_pkey", "id")];

    fn check_new(n: &NewItem) -> Result<()> {
        check_sku(&n.sku)?;
        check::text("name", &n.name, 255)?;
        check::opt_text("description", n.description.as_deref(), 1_000_000)?;
        check::label_path("category_path", n.category_path.as_str())?;
        check_price(&n.price)?;
        check_currency(&n.currency)?;
        check::json_object("attributes", &n.attributes)
    }

    fn new_values(n: &NewItem) -> Vec<Value> {
        vec![
            n.sku.clone().into(),
            n.name.clone().into(),
            n.description.clone().into(),
            n.category_path.clone().into(),
            n.price.into(),
            n.currency.clone().into(),
            n.attributes.clone().into(),
        ]
    }

    type NewParams<'a> = [&'a (dyn ToSql + Sync); 9];
    fn new_params<'a>(n: &'a NewItem, actor: &'a Option<Uuid>) -> Self::NewParams<'a> {
        [&n.sku, &n.name, &n.description, &n.category_path.0, &n.price, &n.currency, &n.attributes, actor, actor]
    }

    fn check_patch(p: &ItemPatch) -> Result<()> {
        if let Some(s) = &p.sku {
            check_sku(s)?;
        }
        if let Some(s) = &p.name {
            check::text("name", s, 255)?;
        }
        if let Some(d) = &p.description {
            check::opt_text("description", d.as_deref(), 1_000_000)?;
        }
        if let Some(c) = &p.category_path {
            check::label_path("category_path", c.as_str())?;
        }
        if let Some(x) = &p.price {
            check_price(x)?;
        }
        if let Some(c) = &p.currency {
            check_currency(c)?;
        }
        if let Some(a) = &p.attributes {
            check::json_object("attributes", a)?;
        }
        Ok(())
    }

    fn patch_values(p: &ItemPatch) -> Vec<(&'static str, Value)> {
        let mut v = Vec::new();
        if let Some(x) = &p.sku {
            v.push(("sku", x.clone().into()));
        }
        if let Some(x) = &p.name {
            v.push(("name", x.clone().into()));
        }
        if let Some(x) = &p.description {
            v.push(("description", x.clone().into()));
        }
        if let Some(x) = &p.category_path {
            v.push(("category_path", x.clone().into()));
        }
        if let Some(x) = &p.price {
            v.push(("price", (*x).into()));
        }
        if let Some(x) = &p.currency {
            v.push(("currency", x.clone().into()));
        }
        if let Some(x) = &p.attributes {
            v.push(("attributes", x.clone().into()));
        }
        v
    }
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
        q.columns(FIELDS.iter().copied())
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
        rows.iter().map(Item::from_row).collect()
    }
}

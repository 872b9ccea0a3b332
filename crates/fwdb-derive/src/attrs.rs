//! The `#[fwdb(...)]` attributes of a struct and its fields, parsed and checked
//! before any code is generated, so every mistake is reported at its own span.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Expr, Fields, Ident, Lit, LitStr, Path, Result, Type, Visibility};

/// What `#[fwdb(...)]` on the struct says.
pub struct Table {
    pub schema: String,
    pub table: String,
    pub soft_delete: bool,
    pub audit: bool,
    pub new_name: Ident,
    pub patch_name: Ident,
}

/// One declared validation rule.
pub enum Rule {
    NotBlank,
    Email,
    Length { min: Option<Box<Expr>>, max: Option<Box<Expr>> },
    Range { min: Option<Lit>, max: Option<Lit> },
    Check(Path),
}

/// One field and what `#[fwdb(...)]` on it says.
pub struct Column {
    pub ident: Ident,
    pub ty: Type,
    pub column: String,
    pub id: bool,
    pub generated: bool,
    pub unique: Vec<String>,
    pub rules: Vec<Rule>,
}

/// The audit fields `audit` asks for: written by the server or from the actor, never by `create`.
pub const AUDIT_FIELDS: [&str; 4] = ["created_at", "updated_at", "created_by", "updated_by"];

pub struct Entity {
    pub ident: Ident,
    pub vis: Visibility,
    pub table: Table,
    pub columns: Vec<Column>,
}

impl Entity {
    pub fn parse(input: &DeriveInput) -> Result<Entity> {
        let Data::Struct(data) = &input.data else {
            return Err(syn::Error::new(input.ident.span(), "#[derive(Entity)] needs a struct with named fields"));
        };
        let Fields::Named(fields) = &data.fields else {
            return Err(syn::Error::new(input.ident.span(), "#[derive(Entity)] needs a struct with named fields"));
        };
        let table = parse_table(input)?;
        let columns = fields.named.iter().map(parse_column).collect::<Result<Vec<_>>>()?;
        let entity = Entity { ident: input.ident.clone(), vis: input.vis.clone(), table, columns };
        entity.check_shape()?;
        Ok(entity)
    }

    /// The primary key: the field marked `id`, else the one named `id`.
    pub fn id(&self) -> &Column {
        let marked = self.columns.iter().find(|c| c.id);
        marked.or_else(|| self.columns.iter().find(|c| c.ident == "id")).unwrap_or(&self.columns[0])
    }

    /// Whether `create` and `update` leave this field to the server (or the actor).
    pub fn server_written(&self, c: &Column) -> bool {
        c.generated
            || std::ptr::eq(c, self.id())
            || (self.table.audit && AUDIT_FIELDS.contains(&c.column.as_str()))
            || (self.table.soft_delete && c.column == "deleted_at")
    }

    /// The fields `create` writes and `update` may change.
    pub fn writable(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| !self.server_written(c))
    }

    fn check_shape(&self) -> Result<()> {
        let ids: Vec<&Column> = self.columns.iter().filter(|c| c.id).collect();
        if ids.len() > 1 {
            return Err(syn::Error::new(ids[1].ident.span(), "only one field may be #[fwdb(id)]"));
        }
        if ids.is_empty() && !self.columns.iter().any(|c| c.ident == "id") {
            let msg = format!("{} has no primary key: name a field `id` or mark one #[fwdb(id)]", self.ident);
            return Err(syn::Error::new(self.ident.span(), msg));
        }
        let mut needed: Vec<&str> = Vec::new();
        if self.table.audit {
            needed.extend(AUDIT_FIELDS);
        }
        if self.table.soft_delete {
            needed.push("deleted_at");
        }
        for name in needed {
            if !self.columns.iter().any(|c| c.column == name) {
                let why = if name == "deleted_at" { "soft_delete" } else { "audit" };
                let msg = format!("#[fwdb({why})] needs a field `{name}` on {}", self.ident);
                return Err(syn::Error::new(self.ident.span(), msg));
            }
        }
        if let Some(c) = self.columns.iter().find(|c| self.server_written(c) && !c.rules.is_empty()) {
            let msg = format!("`{}` is written by the server, never by create or update: it takes no rules", c.ident);
            return Err(syn::Error::new(c.ident.span(), msg));
        }
        Ok(())
    }
}

fn parse_table(input: &DeriveInput) -> Result<Table> {
    let (mut schema, mut table, mut soft_delete, mut audit) = (None, None, false, false);
    let (mut new_name, mut patch_name) = (None, None);
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("fwdb")) {
        attr.parse_nested_meta(|m| {
            if m.path.is_ident("schema") {
                schema = Some(m.value()?.parse::<LitStr>()?.value());
            } else if m.path.is_ident("table") {
                table = Some(m.value()?.parse::<LitStr>()?.value());
            } else if m.path.is_ident("soft_delete") {
                soft_delete = true;
            } else if m.path.is_ident("audit") {
                audit = true;
            } else if m.path.is_ident("new") {
                new_name = Some(m.value()?.parse::<LitStr>()?.parse::<Ident>()?);
            } else if m.path.is_ident("patch") {
                patch_name = Some(m.value()?.parse::<LitStr>()?.parse::<Ident>()?);
            } else {
                return Err(m.error(
                    "unknown fwdb attribute on a struct: expected schema, table, soft_delete, audit, new or patch",
                ));
            }
            Ok(())
        })?;
    }
    let name = &input.ident;
    let Some(table) = table else {
        let msg = format!("#[derive(Entity)] needs the table: #[fwdb(schema = \"...\", table = \"...\")] on {name}");
        return Err(syn::Error::new(name.span(), msg));
    };
    Ok(Table {
        schema: schema.unwrap_or_else(|| "public".into()),
        table,
        soft_delete,
        audit,
        new_name: new_name.unwrap_or_else(|| Ident::new(&format!("New{name}"), Span::call_site())),
        patch_name: patch_name.unwrap_or_else(|| Ident::new(&format!("{name}Patch"), Span::call_site())),
    })
}

fn parse_column(f: &syn::Field) -> Result<Column> {
    let ident = f.ident.clone().ok_or_else(|| syn::Error::new(f.span(), "a field needs a name"))?;
    let mut c = Column {
        column: ident.to_string(),
        ident,
        ty: f.ty.clone(),
        id: false,
        generated: false,
        unique: Vec::new(),
        rules: Vec::new(),
    };
    for attr in f.attrs.iter().filter(|a| a.path().is_ident("fwdb")) {
        attr.parse_nested_meta(|m| {
            let p = &m.path;
            if p.is_ident("id") {
                c.id = true;
            } else if p.is_ident("generated") {
                c.generated = true;
            } else if p.is_ident("column") {
                c.column = m.value()?.parse::<LitStr>()?.value();
            } else if p.is_ident("unique") {
                c.unique.push(m.value()?.parse::<LitStr>()?.value());
            } else if p.is_ident("not_blank") {
                c.rules.push(Rule::NotBlank);
            } else if p.is_ident("email") {
                c.rules.push(Rule::Email);
            } else if p.is_ident("check") {
                c.rules.push(Rule::Check(m.value()?.parse::<LitStr>()?.parse::<Path>()?));
            } else if p.is_ident("length") {
                let (mut min, mut max) = (None, None);
                m.parse_nested_meta(|b| {
                    let v: Box<Expr> = Box::new(b.value()?.parse()?);
                    match () {
                        _ if b.path.is_ident("min") => min = Some(v),
                        _ if b.path.is_ident("max") => max = Some(v),
                        _ => return Err(b.error("length takes min and max")),
                    }
                    Ok(())
                })?;
                c.rules.push(Rule::Length { min, max });
            } else if p.is_ident("range") {
                let (mut min, mut max) = (None, None);
                m.parse_nested_meta(|b| {
                    let v = range_bound(b.value()?.parse()?)?;
                    match () {
                        _ if b.path.is_ident("min") => min = Some(v),
                        _ if b.path.is_ident("max") => max = Some(v),
                        _ => return Err(b.error("range takes min and max")),
                    }
                    Ok(())
                })?;
                c.rules.push(Rule::Range { min, max });
            } else {
                return Err(m.error(
                    "unknown fwdb attribute on a field: expected id, generated, column, unique, not_blank, \
                     email, length(min, max), range(min, max) or check",
                ));
            }
            Ok(())
        })?;
    }
    Ok(c)
}

/// A range bound is a number literal, negative ones included.
fn range_bound(e: Expr) -> Result<Lit> {
    match e {
        Expr::Lit(l) if matches!(l.lit, Lit::Int(_) | Lit::Float(_)) => Ok(l.lit),
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => match *u.expr {
            Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. }) => {
                Ok(Lit::Int(syn::LitInt::new(&format!("-{}", i.base10_digits()), i.span())))
            }
            Expr::Lit(syn::ExprLit { lit: Lit::Float(f), .. }) => {
                Ok(Lit::Float(syn::LitFloat::new(&format!("-{}", f.base10_digits()), f.span())))
            }
            other => Err(syn::Error::new(other.span(), "a range bound is a number")),
        },
        other => Err(syn::Error::new(other.span(), "a range bound is a number")),
    }
}

use fwdb::Uuid;

#[derive(fwdb::Entity)]
#[fwdb(table = "orders", audit)]
pub struct Order {
    pub id: Uuid,
    pub note: String,
}

fn main() {}

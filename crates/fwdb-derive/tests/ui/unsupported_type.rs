use fwdb::Uuid;

#[derive(fwdb::Entity)]
#[fwdb(schema = "shop", table = "orders")]
pub struct Order {
    pub id: Uuid,
    pub placed: std::time::Instant,
}

fn main() {}

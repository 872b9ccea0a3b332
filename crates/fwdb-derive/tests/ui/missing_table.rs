use fwdb::Uuid;

#[derive(fwdb::Entity)]
#[fwdb(schema = "shop")]
pub struct Order {
    pub id: Uuid,
}

fn main() {}

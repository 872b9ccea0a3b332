use fwdb::Uuid;

#[derive(fwdb::Entity)]
#[fwdb(table = "orders")]
pub struct Order {
    pub id: Uuid,
    #[fwdb(lenght(max = 10))]
    pub note: String,
}

fn main() {}

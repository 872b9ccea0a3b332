use fwdb::Uuid;

#[derive(fwdb::Entity)]
#[fwdb(schema = "shop", table = "orders")]
pub struct Order {
    pub id: Uuid,
    pub customer: String,
}

fn main() {
    let _ = Order::CUSTOMER.eq(42);
}

#[anosys::logger(sorce = "x")]
fn f() {}

fn main() {}

#[anosys::logger(source = billing)]
fn f() {}

fn main() {}

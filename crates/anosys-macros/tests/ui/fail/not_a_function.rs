#[anosys::logger]
struct NotAFunction;

fn main() {}

//! The `#[anosys::logger]` surface: what compiles, and readable errors for
//! misuse. (Here rather than in `anosys`: trybuild builds its cases with
//! the tested crate's dev-dependencies, and this crate's are few.)

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

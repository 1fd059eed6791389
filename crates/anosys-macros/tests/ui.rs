//! The `#[anosys::logger]` surface: what compiles, and readable errors for
//! misuse. (Here rather than in `anosys`: trybuild builds its cases with
//! the tested crate's dev-dependencies, and this crate's are few.)

#[test]
fn ui() {
    // trybuild builds the cases' dependencies in a target directory of its
    // own, with full debug info by default (the workspace's profile, which
    // gives dependencies none, is not its): a fifth of that build's time,
    // for nothing the cases need. Its cargo inherits this process's
    // environment.
    // SAFETY: this binary's only test, which sets the variable before any
    // thread of its own reads the environment.
    unsafe { std::env::set_var("CARGO_PROFILE_DEV_DEBUG", "false") };
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

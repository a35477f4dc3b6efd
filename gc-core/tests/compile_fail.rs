//! Compile-fail tests (trybuild): what the type system must reject for the API to be sound.
//! Each `tests/ui/*.rs` says in its first comment what it checks; the expected compiler output
//! is beside it in `*.stderr`.

#[test]
#[cfg_attr(miri, ignore)]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

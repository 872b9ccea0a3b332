//! What a service author sees when a table's declaration is wrong: each
//! mistake is a compile error at the offending field or attribute, with a
//! message that says what to do (the expected output is in `ui/*.stderr`).

#[test]
fn mistakes_in_a_declaration_are_compile_errors_at_their_place() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

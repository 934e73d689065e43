//! Mismatched node types are rejected by rustc, not at run time (inventory case 3).
#[test]
fn edge_type_mismatch_does_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

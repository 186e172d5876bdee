//! Pack loading: the built-in pack compiles; broken packs are refused with file:line:col.

use super::*;

fn omikai() -> Pack {
    PackSource::Builtin.load("omikai").unwrap_or_else(|e| panic!("{e}"))
}

/// Loads the built-in pack with `mapping.toml` edited by `f`.
fn with_mapping(f: impl Fn(&str) -> String) -> Result<Pack, PackError> {
    let src = PackSource::Builtin;
    let template = src.template("omikai")?;
    let (f1, t1) = src.read("omikai", "v1.sql")?;
    let (f2, t2) = src.read("omikai", "v2.sql")?;
    let (_, tm) = src.read("omikai", "mapping.toml")?;
    compile_pack("omikai", template, ddl::parse(&f1, &t1)?, ddl::parse(&f2, &t2)?, "mapping.toml", &f(&tm))
}

fn loc(text: &str, needle: &str, extra: usize) -> String {
    let off = text.find(needle).expect("needle") + extra;
    let (l, c) = line_col(text, off);
    format!("mapping.toml:{l}:{c}")
}

#[test]
fn builtin_pack_compiles_in_dependency_order() {
    let p = omikai();
    let pos = |n: &str| p.entity_index(n).unwrap();
    assert!(pos("customer") < pos("contact"));
    assert!(pos("job") < pos("job_edition"));
    assert!(pos("invoice") < pos("invoice_line"));
    assert!(pos("quote") < pos("document") && pos("job") < pos("document"));
    assert_eq!(p.entities.len(), 19);
    let layout = &p.entities[pos("layout")];
    assert!(layout.target.is_none() && layout.not_migrated.is_some());
    let inv = &p.entities[pos("invoice")];
    assert_eq!(inv.columns.last().unwrap().0, "LINES_TOTAL");
    assert_eq!(p.entities[pos("quote_line")].key.len(), 2);
}

#[test]
fn unknown_column_is_located() {
    let src = |t: &str| t.replace("name = \"trim(NAME)\"\naddress_line1", "name = \"trim(NAAME)\"\naddress_line1");
    let e = with_mapping(src).unwrap_err();
    let text = src(&PackSource::Builtin.read("omikai", "mapping.toml").unwrap().1);
    assert_eq!(e.file, loc(&text, "trim(NAAME)", 5));
    assert!(e.message.contains("unknown column 'NAAME'"), "{}", e.message);
}

#[test]
fn type_mismatch_is_located() {
    let src = |t: &str| t.replace("customer_number = \"CUSTNO\"", "customer_number = \"trim(NAME)\"");
    let e = with_mapping(src).unwrap_err();
    let text = src(&PackSource::Builtin.read("omikai", "mapping.toml").unwrap().1);
    assert_eq!(e.file, loc(&text, "trim(NAME)\"", 0));
    assert!(
        e.message.contains("customer.customer_number: type mismatch: the expression gives text, int is expected"),
        "{}",
        e.message
    );
}

#[test]
fn bad_toml_is_located() {
    let e =
        with_mapping(|t| t.replacen("[[entity]]\nname = \"contact\"", "[[entity]\nname = \"contact\"", 1)).unwrap_err();
    assert!(e.file.starts_with("mapping.toml:"), "{}", e.file);
    let (l, _) = e.file["mapping.toml:".len()..].split_once(':').unwrap();
    assert!(l.parse::<usize>().unwrap() > 1);
    let e = with_mapping(|t| t.replacen("scope = \"customer\"\n", "scope = \"customer\"\ncolour = \"blue\"\n", 1))
        .unwrap_err();
    assert!(e.message.contains("unknown field `colour`"), "{}", e.message);
}

#[test]
fn unknown_tables_columns_and_cycles_are_refused() {
    let e = with_mapping(|t| t.replace("source = \"CONTACT\"", "source = \"CONTACTS\"")).unwrap_err();
    assert!(e.message.contains("v1 table 'CONTACTS' is not in v1.sql"), "{}", e.message);
    let e = with_mapping(|t| t.replace("target = \"contact\"", "target = \"contacts\"")).unwrap_err();
    assert!(e.message.contains("v2 table 'contacts' is not in v2.sql"), "{}", e.message);
    let e = with_mapping(|t| {
        t.replace("is_primary = \"PRIMARY_YN == 'Y'\"", "is_primary = \"PRIMARY_YN == 'Y'\"\nfavourite = \"1\"")
    })
    .unwrap_err();
    assert!(e.message.contains("has no column 'favourite'"), "{}", e.message);
    let e = with_mapping(|t| t.replace("is_primary = \"PRIMARY_YN == 'Y'\"", "")).unwrap_err();
    assert!(e.message.contains("contact.is_primary is NOT NULL"), "{}", e.message);
    let e = with_mapping(|t| {
        t.replacen("target = \"customer\"\n", "target = \"customer\"\ndepends_on = [\"invoice\"]\n", 1)
    })
    .unwrap_err();
    assert!(e.message.contains("dependency cycle"), "{}", e.message);
    assert!(e.message.contains("customer"), "{}", e.message);
    let e = with_mapping(|t| t.replace("depends_on = [\"quote\"]", "depends_on = [\"qoute\"]")).unwrap_err();
    assert!(e.message.contains("unknown entity 'qoute'"), "{}", e.message);
    let e = with_mapping(|t| t.replace("reason = \"deleted_in_v1\"", "reason = \"Deleted!\"")).unwrap_err();
    assert!(e.message.contains("snake_case"), "{}", e.message);
}

#[test]
fn a_v2_table_has_one_entity() {
    // The supplier entity is pointed at the customer table as well.
    let src = |t: &str| t.replace("target = \"supplier\"", "target = \"customer\"");
    let e = with_mapping(src).unwrap_err();
    let text = src(&PackSource::Builtin.read("omikai", "mapping.toml").unwrap().1);
    let second = text.match_indices("target = \"customer\"").nth(1).unwrap().0;
    let (line, _) = line_col(&text, second);
    assert!(e.file.starts_with(&format!("mapping.toml:{line}:")), "{} vs line {line}", e.file);
    assert!(e.message.contains("v2 table 'customer' is already the target of entity 'customer'"), "{}", e.message);
}

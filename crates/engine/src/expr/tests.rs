//! Expression language tests: parsing, type errors with positions, evaluation.

use time::macros::date;

use super::*;

struct NoParents;
impl Lookup for NoParents {
    fn lookup(&self, _: usize, key: &Value) -> Result<Value, Fail> {
        match key {
            Value::Int(1) => Ok(Value::Uuid(uuid::Uuid::nil())),
            Value::Int(2) => {
                Err(Fail::Cascade { reason: "deleted_in_v1".into(), message: "parent customer 2 is excluded".into() })
            }
            other => Err(Fail::reject("orphan", format!("parent customer {other} does not exist"))),
        }
    }
}

fn cols() -> Vec<(String, Type)> {
    vec![
        ("NAME".into(), Type::Text),
        ("CREATED".into(), Type::Text),
        ("PRICE".into(), Type::Float),
        ("QTY".into(), Type::Int),
        ("COUNTRY".into(), Type::Text),
        ("CUSTNO".into(), Type::Int),
    ]
}

fn maps() -> Vec<ValueMap> {
    let mut entries = MapEntries::default();
    entries.insert("NORGE".to_owned(), Value::Text("NO".into()));
    entries.insert("NORWAY".to_owned(), Value::Text("NO".into()));
    vec![ValueMap {
        name: "country".into(),
        entries,
        ty: Type::Text,
        unknown_reason: "unknown_country".into(),
        case_insensitive: true,
    }]
}

fn eval_with(src: &str, row: &[Value]) -> Result<Value, Fail> {
    let c = cols();
    let m = maps();
    let lookups = vec![("customer".to_owned(), 0)];
    let options = vec!["merge".to_owned()];
    let env = Env { columns: &c, maps: &m, lookups: &lookups, options: &options };
    let (node, _) = compile(src, &env, None).unwrap_or_else(|e| panic!("{src}: {e} at {}", e.offset));
    let opts = vec!["yes".to_owned()];
    let cx = EvalCtx { cutoff: date!(2019 - 11 - 24), options: &opts, maps: &m, lookup: &NoParents };
    node.eval(row, &cx)
}

fn row() -> Vec<Value> {
    vec![
        Value::Text("  Hansen, Kari ".into()),
        Value::Text("31.02.2019".into()),
        Value::Float(2.675),
        Value::Int(3),
        Value::Text(" norge".into()),
        Value::Int(1),
    ]
}

fn ev(src: &str) -> Value {
    eval_with(src, &row()).unwrap_or_else(|f| panic!("{src}: {f:?}"))
}

fn compile_err(src: &str) -> ExprError {
    let c = cols();
    let m = maps();
    let lookups = vec![("customer".to_owned(), 0)];
    let env = Env { columns: &c, maps: &m, lookups: &lookups, options: &[] };
    compile(src, &env, Some(Type::Text)).expect_err(src)
}

#[test]
fn text_functions() {
    assert_eq!(ev("trim(NAME)"), Value::Text("Hansen, Kari".into()));
    assert_eq!(ev("upper(trim(NAME))"), Value::Text("HANSEN, KARI".into()));
    assert_eq!(ev("first_name(NAME)"), Value::Text("Kari".into()));
    assert_eq!(ev("last_name(NAME)"), Value::Text("Hansen".into()));
    assert_eq!(ev("last_name('Kari Nordmann')"), Value::Text("Nordmann".into()));
    assert_eq!(ev("concat('a', QTY, null, 'b')"), Value::Text("a3b".into()));
    assert_eq!(ev("'x' || QTY"), Value::Text("x3".into()));
    assert_eq!(ev("split_part('4+0', '+', 2)"), Value::Text("0".into()));
    assert_eq!(ev("int(split_part('4+1', '+', 1)) + 1"), Value::Int(5));
    assert_eq!(ev("coalesce(null, nullif(trim('  '), ''), 'z')"), Value::Text("z".into()));
    assert_eq!(ev("replace('NO 123', ' ', '')"), Value::Text("NO123".into()));
}

#[test]
fn maps_dates_money_lookups() {
    assert_eq!(ev("map(COUNTRY, 'country')"), Value::Text("NO".into()));
    assert_eq!(ev("in_map('Sverige', 'country')"), Value::Bool(false));
    let f = eval_with("map('Narnia', 'country')", &row()).unwrap_err();
    assert!(matches!(&f, Fail::Reject { reason, .. } if reason == "unknown_country"), "{f:?}");
    assert_eq!(ev("date('24.11.2026', 'DD.MM.YYYY', 'YYYY-MM-DD')"), Value::Date(date!(2026 - 11 - 24)));
    assert_eq!(ev("date('2026-11-24', 'DD.MM.YYYY', 'YYYY-MM-DD')"), Value::Date(date!(2026 - 11 - 24)));
    for bad in ["CREATED", "'0000-00-00'", "'2019-13-01'", "'1.1.19'"] {
        let f = eval_with(&format!("date({bad}, 'DD.MM.YYYY', 'YYYY-MM-DD')"), &row()).unwrap_err();
        assert!(matches!(&f, Fail::Reject { reason, .. } if reason == "invalid_date"), "{bad}: {f:?}");
    }
    assert_eq!(ev("date('', 'YYYY-MM-DD')"), Value::Null);
    assert_eq!(ev("date('2018-01-01', 'YYYY-MM-DD') < @cutoff"), Value::Bool(true));
    assert_eq!(ev("minor(PRICE)"), Value::Int(268));
    assert_eq!(ev("minor(PRICE * QTY)"), Value::Int(803));
    assert_eq!(ev("lookup('customer', CUSTNO)"), Value::Uuid(uuid::Uuid::nil()));
    assert!(matches!(eval_with("lookup('customer', 2)", &row()), Err(Fail::Cascade { .. })));
    assert!(
        matches!(eval_with("lookup('customer', 9)", &row()), Err(Fail::Reject { reason, .. }) if reason == "orphan")
    );
    assert_eq!(ev("lookup_opt('customer', null)"), Value::Null);
    assert_eq!(ev("option('merge') == 'yes'"), Value::Bool(true));
}

#[test]
fn conditions() {
    assert_eq!(ev("QTY > 2 and not (NAME is null)"), Value::Bool(true));
    assert_eq!(ev("QTY in (1, 2)"), Value::Bool(false));
    assert_eq!(ev("trim(COUNTRY) in ('norge', 'no')"), Value::Bool(true));
    assert_eq!(ev("null == null"), Value::Bool(true));
    assert_eq!(ev("QTY == null"), Value::Bool(false));
    assert_eq!(ev("if(QTY > 5, 'big', 'small')"), Value::Text("small".into()));
    // The branch not taken is not evaluated: no date error here.
    assert_eq!(ev("if(false, text(date(CREATED, 'DD.MM.YYYY')), 'ok')"), Value::Text("ok".into()));
    assert_eq!(ev("matches('a@b.no', '^[^@]+@[^@]+$')"), Value::Bool(true));
    assert_eq!(ev("starts_with(lower('HTTP://x'), 'http://')"), Value::Bool(true));
    assert!(
        matches!(eval_with("email('not an address')", &row()), Err(Fail::Reject { reason, .. }) if reason == "invalid_email")
    );
    assert_eq!(ev("email(' Kari@Firma.NO ')"), Value::Text("kari@firma.no".into()));
}

#[test]
fn errors_point_at_the_fault() {
    let e = compile_err("trim(NAMEE)");
    assert_eq!((e.offset, e.message.as_str()), (5, "unknown column 'NAMEE'"));
    let e = compile_err("trim(name)");
    assert!(e.message.contains("did you mean NAME?"), "{}", e.message);
    let e = compile_err("upper(QTY)");
    assert_eq!(e.offset, 6);
    assert!(e.message.contains("argument 1 is int, expected text"), "{}", e.message);
    let e = compile_err("QTY + 1");
    assert!(e.message.contains("type mismatch: the expression gives int, text is expected"), "{}", e.message);
    assert!(compile_err("map(COUNTRY, 'land')").message.contains("unknown map 'land'"));
    assert!(compile_err("lookup('job', QTY)").message.contains("not a dependency"));
    assert!(compile_err("frobnicate(NAME)").message.contains("unknown function"));
    assert!(compile_err("trim(NAME").message.contains("expected ',' or ')'"));
    assert!(compile_err("NAME = 'x'").message.contains("use '=='"));
    assert!(compile_err("'open").message.contains("unterminated"));
    assert!(compile_err("date(CREATED, 'MM/DD/YY')").message.contains("unknown date format"));
    assert!(compile_err("QTY == 'x'").message.contains("cannot compare int with text"));
    assert!(compile_err("trim(NAME) trim(NAME)").message.contains("after the end"));
    assert!(compile_err("matches(NAME, '(')").message.contains("bad pattern"));
}

#[test]
fn arithmetic_overflow_is_a_rejection_not_a_panic() {
    assert!(
        matches!(eval_with("9223372036854775807 + QTY", &row()), Err(Fail::Reject { reason, .. }) if reason == "invalid_number")
    );
    assert_eq!(ev("QTY / 0"), Value::Null);
}

#[test]
fn deep_or_long_expressions_are_refused_not_overflowed() {
    let c = cols();
    let m = maps();
    let env = Env { columns: &c, maps: &m, lookups: &[], options: &[] };
    for src in [
        format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("{}true", "not ".repeat(100_000)),
        format!("{}1", "-".repeat(100_000)),
        format!("{}1{}", "abs(".repeat(1000), ")".repeat(1000)),
    ] {
        let e = compile(&src, &env, None).unwrap_err();
        assert!(e.message.contains("nests deeper") || e.message.contains("longer than"), "{}", e.message);
    }
    let e = compile(&vec!["QTY"; 1000].join(" + "), &env, None).unwrap_err();
    assert!(e.message.contains("longer than 2000"), "{}", e.message);
    // Within the limits, deep enough for any real rule.
    let src = format!("{}QTY{}", "(".repeat(30), ")".repeat(30));
    assert!(compile(&src, &env, None).is_ok());
}

#[test]
fn trim_is_str_trim() {
    for s in [
        "",
        " ",
        "a",
        " a",
        "a ",
        "\ta\n",
        "ab cd",
        "\u{a0}x\u{a0}",
        "x\u{3000}",
        "\u{2003}",
        "é",
        " é ",
        "é x",
        "x é",
        "~!",
        "\r\n",
    ] {
        assert_eq!(trim(s), s.trim(), "{s:?}");
    }
}

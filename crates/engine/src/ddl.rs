//! A reader for the CREATE TABLE statements of a pack's schema files: enough to know every
//! table's columns, types and NOT NULL constraints at pack load, before any database is touched.

use crate::pack::PackError;
use crate::value::Type;

/// A column of a table.
#[derive(Debug, Clone)]
pub struct Column {
    /// Name as written.
    pub name: String,
    /// Type.
    pub ty: Type,
    /// NOT NULL (or PRIMARY KEY).
    pub not_null: bool,
}

/// A table.
#[derive(Debug, Clone)]
pub struct Table {
    /// Name as written.
    pub name: String,
    /// Columns in order.
    pub columns: Vec<Column>,
}

impl Table {
    /// A column by name (case-insensitive, as SQL is).
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// The tables of a schema file and its statements, to be executed as they are.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// Tables in file order.
    pub tables: Vec<Table>,
    /// Every statement, comments removed.
    pub statements: Vec<String>,
}

impl Schema {
    /// A table by name (case-insensitive).
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name.eq_ignore_ascii_case(name))
    }
}

/// Parses a schema file.
pub fn parse(file: &str, text: &str) -> Result<Schema, PackError> {
    let mut schema = Schema::default();
    let clean: String = text.lines().map(|l| l.split("--").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let mut depth = 0i32;
    let mut quote = false;
    let mut start = 0;
    let bytes = clean.as_bytes();
    let mut stmts = Vec::new();
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b'\'' => quote = !quote,
            b'(' if !quote => depth += 1,
            b')' if !quote => depth -= 1,
            b';' if !quote && depth == 0 => {
                stmts.push((start, &clean[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    if !clean[start..].trim().is_empty() {
        stmts.push((start, &clean[start..]));
    }
    for (offset, stmt) in stmts {
        let s = stmt.trim();
        if s.is_empty() {
            continue;
        }
        schema.statements.push(s.to_owned());
        let upper = s.to_ascii_uppercase();
        if !upper.starts_with("CREATE TABLE") {
            continue;
        }
        let line = clean[..offset + stmt.len() - stmt.trim_start().len()].matches('\n').count() + 1;
        let bad = |m: String| PackError { file: format!("{file}:{line}:1"), message: m };
        let open = s.find('(').ok_or_else(|| bad("CREATE TABLE without a column list".into()))?;
        let close =
            s.rfind(')').filter(|&c| c > open).ok_or_else(|| bad("CREATE TABLE without a closing ')'".into()))?;
        let name = s["CREATE TABLE".len()..open]
            .trim()
            .trim_start_matches("IF NOT EXISTS")
            .trim()
            .trim_matches('"')
            .to_owned();
        let mut columns = Vec::new();
        for item in split_top(&s[open + 1..close]) {
            let item = item.trim();
            let mut words = item.split_whitespace();
            let (Some(first), Some(ty)) = (words.next(), words.next()) else { continue };
            let first_up = first.to_ascii_uppercase();
            if ["CONSTRAINT", "PRIMARY", "FOREIGN", "CHECK", "UNIQUE"].contains(&first_up.as_str())
                || first.starts_with('(')
            {
                continue;
            }
            let ty =
                Type::from_sql(ty).ok_or_else(|| bad(format!("column {name}.{first}: unsupported type '{ty}'")))?;
            let up = item.to_ascii_uppercase();
            columns.push(Column {
                name: first.trim_matches('"').to_owned(),
                ty,
                not_null: up.contains("NOT NULL") || up.contains("PRIMARY KEY"),
            });
        }
        schema.tables.push(Table { name, columns });
    }
    Ok(schema)
}

/// A CREATE TABLE statement with its primary key and unique constraints taken out, and the
/// `CREATE UNIQUE INDEX` statements that enforce them instead. SQLite cannot drop a constraint
/// declared in the table, but can drop an index and build it again from sorted data, which is
/// what a first load into an empty database does. An `INTEGER PRIMARY KEY` (the rowid) stays.
/// Other statements come back unchanged, without indexes.
pub fn keys_as_indexes(stmt: &str) -> (String, Vec<String>) {
    let upper = stmt.trim_start().to_ascii_uppercase();
    let (Some(open), Some(close)) = (stmt.find('('), stmt.rfind(')')) else { return (stmt.to_owned(), Vec::new()) };
    if !upper.starts_with("CREATE TABLE") || close < open {
        return (stmt.to_owned(), Vec::new());
    }
    let name = stmt.trim_start()["CREATE TABLE".len()..]
        .split('(')
        .next()
        .unwrap_or("")
        .trim()
        .trim_start_matches("IF NOT EXISTS")
        .trim()
        .trim_matches('"')
        .to_owned();
    let quote = |n: &str| format!("\"{}\"", n.replace('"', "\"\""));
    let mut items = Vec::new();
    let mut indexes = Vec::new();
    let mut add_index = |cols: &[String], pkey: bool, own: Option<String>| {
        let idx =
            own.unwrap_or_else(|| if pkey { format!("{name}_pkey") } else { format!("{name}_{}_key", cols.join("_")) });
        let list: Vec<String> = cols.iter().map(|c| quote(c)).collect();
        indexes.push(format!("CREATE UNIQUE INDEX {} ON {} ({})", quote(&idx), quote(&name), list.join(", ")));
    };
    let cols_of = |text: &str| -> Vec<String> {
        let inner = text.split_once('(').and_then(|(_, r)| r.rsplit_once(')')).map_or("", |(l, _)| l);
        inner.split(',').map(|c| c.trim().trim_matches('"').to_owned()).filter(|c| !c.is_empty()).collect()
    };
    for item in split_top(&stmt[open + 1..close]) {
        let words: Vec<&str> = item.split_whitespace().collect();
        let up: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
        let (own, at) = match up.first().map(String::as_str) {
            Some("CONSTRAINT") if words.len() > 2 => (Some(words[1].trim_matches('"').to_owned()), 2),
            _ => (None, 0),
        };
        match up.get(at).map(String::as_str) {
            Some("PRIMARY") if up.get(at + 1).is_some_and(|w| w.starts_with("KEY")) => {
                add_index(&cols_of(item), true, own);
                continue;
            }
            Some(w) if w == "UNIQUE" || w.starts_with("UNIQUE(") => {
                add_index(&cols_of(item), false, own);
                continue;
            }
            Some("CHECK" | "FOREIGN") => {
                items.push(item.trim().to_owned());
                continue;
            }
            _ if own.is_some() => {
                items.push(item.trim().to_owned());
                continue;
            }
            _ => {}
        }
        // A column: its own PRIMARY KEY or UNIQUE, outside parentheses and quotes.
        let (Some(col), Some(ty)) = (words.first(), up.get(1)) else {
            items.push(item.trim().to_owned());
            continue;
        };
        let col = col.trim_matches('"').to_owned();
        let mut kept: Vec<&str> = Vec::new();
        let (mut depth, mut pkey, mut unique) = (0i32, false, false);
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            let wu = &up[i];
            if depth == 0 && i >= 2 && wu == "PRIMARY" && up.get(i + 1).is_some_and(|k| k == "KEY") && ty != "INTEGER" {
                pkey = true;
                i += 2;
                continue;
            }
            if depth == 0 && i >= 2 && wu == "UNIQUE" {
                unique = true;
                i += 1;
                continue;
            }
            depth += w.matches('(').count() as i32 - w.matches(')').count() as i32;
            kept.push(w);
            i += 1;
        }
        let mut def = kept.join(" ");
        if pkey {
            if !up.iter().any(|w| w == "NULL") {
                def.push_str(" NOT NULL");
            }
            add_index(std::slice::from_ref(&col), true, None);
        }
        if unique {
            add_index(std::slice::from_ref(&col), false, None);
        }
        items.push(def);
    }
    let head = &stmt[..open];
    (format!("{}({})", head, items.join(", ")), indexes)
}

/// A statement with every `column IN (constant, …)` written as `(column = constant OR …)`
/// and every `column NOT IN (…)` as `(column <> constant AND …)`, which SQL's three-valued
/// logic makes the same test (NULLs included). SQLite evaluates an IN list of more than two
/// constants through a small table it builds again for each statement it runs; a CHECK
/// constraint with one pays that on every INSERT (TPC-H's order lines have four such checks:
/// SQLite→SQLite at scale 0.5 went from 22.4-26.7 s to 19.6-22.6 s, four alternated pairs;
/// an `INSERT … SELECT` of the 3 M rows, 7.3 s of CPU against 2.1 s). Anything else (a subquery,
/// an expression left of IN or in the list, a qualified name) is left as written.
pub fn in_lists_as_comparisons(stmt: &str) -> String {
    let toks = tokens(stmt);
    let mut out = String::with_capacity(stmt.len());
    let mut copied = 0;
    let mut i = 0;
    while i < toks.len() {
        if let Some((end, text)) = in_list_at(stmt, &toks, i) {
            out.push_str(&stmt[copied..toks[i].start]);
            out.push_str(&text);
            copied = toks[end].end;
            i = end + 1;
        } else {
            i += 1;
        }
    }
    out.push_str(&stmt[copied..]);
    out
}

/// Whether a BETWEEN comes before token `p` within its parentheses (whose AND `p` may be).
fn between_before(s: &str, toks: &[Token], p: usize) -> bool {
    let mut depth = 0;
    for t in toks[..p].iter().rev() {
        match t.kind {
            Tok::Punct(b')') => depth += 1,
            Tok::Punct(b'(') if depth == 0 => return false,
            Tok::Punct(b'(') => depth -= 1,
            Tok::Word if depth == 0 && is_word(s, t, "BETWEEN") => return true,
            _ => {}
        }
    }
    false
}

/// A CREATE TABLE statement with `TEXT` added to the type of its UUID and DATE columns
/// (`id UUID TEXT NOT NULL`). SQLite gives a column declared UUID or DATE numeric affinity,
/// and so tries every value written to it as a number first, which a UUID or a date in text
/// never is (TPC-H SQLite→SQLite: a sixth of the writer thread's time went to that, UUIDs
/// whose hex digits read like an exponent the dearest); with TEXT in the name the affinity is
/// text, and the values are stored as they were before. Other statements come back unchanged.
pub fn text_affinity(stmt: &str) -> String {
    let toks = tokens(stmt);
    let word = |t: &Token, w: &str| is_word(stmt, t, w);
    if !(toks.len() > 2 && word(&toks[0], "CREATE") && word(&toks[1], "TABLE")) {
        return stmt.to_owned();
    }
    const NOT_COLUMNS: [&str; 5] = ["CONSTRAINT", "PRIMARY", "FOREIGN", "CHECK", "UNIQUE"];
    let mut out = String::with_capacity(stmt.len() + 64);
    let mut copied = 0;
    let mut depth = 0;
    let mut item_start = false;
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            Tok::Punct(b'(') => {
                depth += 1;
                item_start = depth == 1;
                continue;
            }
            Tok::Punct(b')') => depth -= 1,
            Tok::Punct(b',') if depth == 1 => {
                item_start = true;
                continue;
            }
            _ => {}
        }
        let column = t.kind == Tok::Quoted || (t.kind == Tok::Word && !NOT_COLUMNS.iter().any(|k| word(t, k)));
        if item_start && column {
            let ty = toks.get(i + 1).filter(|ty| word(ty, "UUID") || word(ty, "DATE"));
            let already = toks.get(i + 2).is_some_and(|n| word(n, "TEXT"));
            if let Some(ty) = ty.filter(|_| !already) {
                out.push_str(&stmt[copied..ty.end]);
                out.push_str(" TEXT");
                copied = ty.end;
            }
        }
        item_start = false;
    }
    out.push_str(&stmt[copied..]);
    out
}

/// Whether token `t` of `s` is the bare word `w`, in any case.
fn is_word(s: &str, t: &Token, w: &str) -> bool {
    t.kind == Tok::Word && s[t.start..t.end].eq_ignore_ascii_case(w)
}

/// A token of a statement: its kind and where it is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    /// A bare word: a keyword or a name.
    Word,
    /// A name in double quotes or backticks.
    Quoted,
    /// A string literal.
    Str,
    /// A number.
    Num,
    /// Any other character.
    Punct(u8),
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Tok,
    start: usize,
    end: usize,
}

fn tokens(s: &str) -> Vec<Token> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'\'' | b'"' | b'`' => {
                // A doubled quote is the quote itself; an unclosed one runs to the end.
                i += 1;
                while i < b.len() {
                    if b[i] == c {
                        if b.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i = (i + 1).min(b.len());
                if c == b'\'' { Tok::Str } else { Tok::Quoted }
            }
            c if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                Tok::Num
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80) {
                    i += 1;
                }
                Tok::Word
            }
            c => {
                i += 1;
                Tok::Punct(c)
            }
        };
        out.push(Token { kind, start, end: i });
    }
    out
}

/// `name [NOT] IN (constant, …)` starting at token `i`: the index of its closing parenthesis
/// and the comparisons to write instead.
fn in_list_at(s: &str, toks: &[Token], i: usize) -> Option<(usize, String)> {
    let word = |t: &Token, w: &str| is_word(s, t, w);
    let name = toks.get(i)?;
    const KEYWORDS: [&str; 8] = ["NOT", "IN", "AND", "OR", "NULL", "CHECK", "COLLATE", "IS"];
    match name.kind {
        Tok::Quoted => {}
        Tok::Word if !KEYWORDS.iter().any(|k| word(name, k)) => {}
        _ => return None,
    }
    // Nothing before the name may bind to it ahead of IN: only an opening parenthesis, OR, an
    // AND that is not a BETWEEN's (`x BETWEEN 1 AND s IN (…)` is `(x BETWEEN 1 AND s) IN (…)`),
    // or a NOT with one of those before it (`a IS NOT s IN (…)` is `(a IS NOT s) IN (…)`).
    let opens = |p: usize| {
        let t = &toks[p];
        t.kind == Tok::Punct(b'(') || word(t, "OR") || (word(t, "AND") && !between_before(s, toks, p))
    };
    let before_ok = match i.checked_sub(1) {
        Some(p) if word(&toks[p], "NOT") => p.checked_sub(1).is_some_and(opens),
        Some(p) => opens(p),
        None => false,
    };
    if !before_ok {
        return None;
    }
    let mut j = i + 1;
    let negated = toks.get(j).is_some_and(|t| word(t, "NOT"));
    if negated {
        j += 1;
    }
    if !toks.get(j).is_some_and(|t| word(t, "IN")) || toks.get(j + 1)?.kind != Tok::Punct(b'(') {
        return None;
    }
    j += 2;
    let mut values = Vec::new();
    loop {
        let t = toks.get(j)?;
        let lit_start = t.start;
        let sign = matches!(t.kind, Tok::Punct(b'-' | b'+'));
        if sign {
            j += 1;
        }
        let v = toks.get(j)?;
        match v.kind {
            Tok::Num => {}
            Tok::Str | Tok::Word if !sign && (v.kind == Tok::Str || word(v, "NULL")) => {}
            _ => return None,
        }
        values.push(&s[lit_start..v.end]);
        j += 1;
        match toks.get(j)?.kind {
            Tok::Punct(b',') => j += 1,
            Tok::Punct(b')') => break,
            _ => return None,
        }
    }
    let column = &s[name.start..name.end];
    let (op, join) = if negated { ("<>", " AND ") } else { ("=", " OR ") };
    let parts: Vec<String> = values.iter().map(|v| format!("{column} {op} {v}")).collect();
    Some((j, format!("({})", parts.join(join))))
}

fn split_top(body: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, false, 0);
    for (i, c) in body.char_indices() {
        match c {
            '\'' => quote = !quote,
            '(' if !quote => depth += 1,
            ')' if !quote => depth -= 1,
            ',' if !quote && depth == 0 => {
                out.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&body[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tables_columns_and_constraints() {
        let s = parse(
            "v2.sql",
            "-- c\nCREATE TABLE a (id UUID PRIMARY KEY, n TEXT NOT NULL, x DOUBLE PRECISION, CHECK (x > 0), UNIQUE (n, x));\nCREATE INDEX i ON a (n);",
        )
        .unwrap();
        let t = s.table("A").unwrap();
        assert_eq!(t.columns.len(), 3);
        assert!(t.column("id").unwrap().not_null);
        assert_eq!(t.column("x").unwrap().ty, Type::Float);
        assert!(!t.column("x").unwrap().not_null);
        assert_eq!(s.statements.len(), 2);
    }

    #[test]
    fn keys_become_indexes_of_their_own() {
        let (t, idx) = keys_as_indexes(
            "CREATE TABLE a (\n id UUID PRIMARY KEY,\n n TEXT NOT NULL UNIQUE,\n k INTEGER NOT NULL REFERENCES b (id),\n s TEXT CHECK (s IN ('UNIQUE', 'x')),\n UNIQUE (k, n),\n CONSTRAINT own UNIQUE (s)\n)",
        );
        assert_eq!(
            t,
            "CREATE TABLE a (id UUID NOT NULL, n TEXT NOT NULL, k INTEGER NOT NULL REFERENCES b (id), s TEXT CHECK (s IN ('UNIQUE', 'x')))"
        );
        assert_eq!(
            idx,
            [
                "CREATE UNIQUE INDEX \"a_pkey\" ON \"a\" (\"id\")",
                "CREATE UNIQUE INDEX \"a_n_key\" ON \"a\" (\"n\")",
                "CREATE UNIQUE INDEX \"a_k_n_key\" ON \"a\" (\"k\", \"n\")",
                "CREATE UNIQUE INDEX \"own\" ON \"a\" (\"s\")",
            ]
        );
        // The rowid stays a key; a composite key becomes an index; other statements pass.
        let (t, idx) = keys_as_indexes("CREATE TABLE r (n INTEGER PRIMARY KEY, a TEXT, b TEXT, PRIMARY KEY (a, b))");
        assert_eq!(t, "CREATE TABLE r (n INTEGER PRIMARY KEY, a TEXT, b TEXT)");
        assert_eq!(idx, ["CREATE UNIQUE INDEX \"r_pkey\" ON \"r\" (\"a\", \"b\")"]);
        assert_eq!(keys_as_indexes("CREATE INDEX i ON a (n)"), ("CREATE INDEX i ON a (n)".to_owned(), Vec::new()));
    }

    #[test]
    fn in_lists_become_comparisons() {
        let stmt = "CREATE TABLE a (s TEXT NOT NULL CHECK (s IN ('x', 'it''s', 'in (y)')), \"n\" INT CHECK (\"n\" NOT IN (1, -2, NULL)), CHECK (s <> 'a' AND n in(3,4)))";
        assert_eq!(
            in_lists_as_comparisons(stmt),
            "CREATE TABLE a (s TEXT NOT NULL CHECK ((s = 'x' OR s = 'it''s' OR s = 'in (y)')), \"n\" INT CHECK ((\"n\" <> 1 AND \"n\" <> -2 AND \"n\" <> NULL)), CHECK (s <> 'a' AND (n = 3 OR n = 4)))"
        );
        // A BETWEEN inside parentheses of its own, or finished in another group, does not stop it.
        assert_eq!(
            in_lists_as_comparisons("CHECK ((x BETWEEN 1 AND 2) AND NOT s IN (1, 2))"),
            "CHECK ((x BETWEEN 1 AND 2) AND NOT (s = 1 OR s = 2))"
        );
        // Left as written: a subquery, an expression on either side, a qualified or collated
        // name, an empty list, text that only looks like a list, an unfinished statement.
        for same in [
            "CHECK (s IN (SELECT x FROM t))",
            "CHECK (s || 'a' IN ('x', 'y'))",
            "CHECK (s IN ('x', upper('y')))",
            "CHECK (t.s IN ('x', 'y'))",
            "CHECK (s COLLATE NOCASE IN ('x', 'y'))",
            "CHECK (s IN ())",
            "DEFAULT 'a IN (1, 2)'",
            "CHECK (s IN ('x', 'y'",
            "CHECK (s IN ('x' 'y'))",
            "CHECK (x BETWEEN 1 AND s IN (1, 2))",
            "CHECK (a IS NOT s IN (1, 2))",
            "CHECK (a = NOT s IN (1, 2))",
        ] {
            assert_eq!(in_lists_as_comparisons(same), same);
        }
    }

    #[test]
    fn uuid_and_date_columns_get_text_affinity() {
        let stmt = "CREATE TABLE \"a\" (id UUID NOT NULL, \"on\" date, n BIGINT, t UUID TEXT, d DATE CHECK (d > '2000-01-01'), CONSTRAINT c CHECK (x IN (1, 2)), UNIQUE (id, n))";
        assert_eq!(
            text_affinity(stmt),
            "CREATE TABLE \"a\" (id UUID TEXT NOT NULL, \"on\" date TEXT, n BIGINT, t UUID TEXT, d DATE TEXT CHECK (d > '2000-01-01'), CONSTRAINT c CHECK (x IN (1, 2)), UNIQUE (id, n))"
        );
        for same in ["CREATE INDEX i ON a (uuid)", "CREATE TABLE", "INSERT INTO a VALUES (1)"] {
            assert_eq!(text_affinity(same), same);
        }
        // In SQLite: text affinity, and a UUID that reads like a number stays the same text.
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(&text_affinity("CREATE TABLE a (id UUID NOT NULL, d DATE)")).unwrap();
        c.execute("INSERT INTO a VALUES ('1e100000-0000-0000-0000-000000000000', '2024-02-29')", []).unwrap();
        let (id, d): (String, String) =
            c.query_row("SELECT id || typeof(id), d || typeof(d) FROM a", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!((id.as_str(), d.as_str()), ("1e100000-0000-0000-0000-000000000000text", "2024-02-29text"));
    }

    #[test]
    fn in_lists_and_comparisons_give_the_same_answers() {
        // In SQLite itself, for values in and out of the list and NULL, with NULL in the list.
        let c = rusqlite::Connection::open_in_memory().unwrap();
        for list in ["('a', 'b', 'c')", "('a', NULL, 'c')", "(1, 2.5, -3)"] {
            for neg in ["", "NOT "] {
                let test = format!("CHECK (v {neg}IN {list})");
                let rewritten = in_lists_as_comparisons(&test);
                assert_ne!(rewritten, test);
                let (a, b) = (&test[7..test.len() - 1], &rewritten[7..rewritten.len() - 1]);
                for v in ["'a'", "'b'", "'z'", "NULL", "1", "'1'", "2.5", "-3", "3"] {
                    let q = format!("SELECT ({a}) IS ({b}) FROM (SELECT {v} AS v)");
                    let same: bool = c.query_row(&q, [], |r| r.get(0)).unwrap();
                    assert!(same, "{q}");
                }
            }
        }
    }

    #[test]
    fn a_closing_parenthesis_before_the_opening_one_is_an_error() {
        // Found by the `schema` fuzz target: it used to slice backwards and panic.
        let e = parse("v2.sql", "CREATE TABLE t) x (").unwrap_err();
        assert!(e.message.contains("without a closing ')'"), "{}", e.message);
    }

    #[test]
    fn unknown_types_are_refused_with_the_line() {
        let e = parse("v1.sql", "\n\nCREATE TABLE a (g GEOMETRY);").unwrap_err();
        assert_eq!(e.file, "v1.sql:3:1");
        assert!(e.message.contains("unsupported type 'GEOMETRY'"));
    }
}

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
        let close = s.rfind(')').ok_or_else(|| bad("CREATE TABLE without a closing ')'".into()))?;
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
    fn unknown_types_are_refused_with_the_line() {
        let e = parse("v1.sql", "\n\nCREATE TABLE a (g GEOMETRY);").unwrap_err();
        assert_eq!(e.file, "v1.sql:3:1");
        assert!(e.message.contains("unsupported type 'GEOMETRY'"));
    }
}

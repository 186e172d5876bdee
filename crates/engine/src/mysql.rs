//! MariaDB and MySQL as v1 sources (`mysql://` or `mariadb://` URLs), and loading a v1 schema
//! and its rows into one: demo data, tests and the benchmark put Omikai 1 there.

use sqlx::mysql::{MySqlConnectOptions, MySqlRow};
use sqlx::{Column as _, ConnectOptions as _, Connection as _, Row as _, TypeInfo as _};
use time::Date;

use crate::connect::{ConnectorError, Dialect, Scan, Source, SourceRow, masked, q, runtime, select_sql, stream_rows};
use crate::ddl::Schema;
use crate::value::{Type, Value};

/// Whether a URL names MariaDB or MySQL.
pub fn is_mysql_url(url: &str) -> bool {
    url.starts_with("mysql://") || url.starts_with("mariadb://")
}

fn connect(rt: &tokio::runtime::Runtime, url: &str) -> Result<sqlx::MySqlConnection, ConnectorError> {
    let open = |e: sqlx::Error| ConnectorError::Open { what: masked(url), reason: e.to_string() };
    // sqlx knows the mysql:// scheme only; MariaDB speaks the same protocol.
    let url = url.strip_prefix("mariadb://").map_or_else(|| url.to_owned(), |rest| format!("mysql://{rest}"));
    let opts: MySqlConnectOptions = url.parse().map_err(open)?;
    let mut conn = rt.block_on(opts.disable_statement_logging().connect()).map_err(open)?;
    // A server gives up on a client that does not take the rows it sends within
    // `net_write_timeout` (60 s by default) and drops the connection: a scan whose run waits
    // longer (a slow v2, a lock held there) would end halfway. Its statement timeouts are set
    // for its applications' queries, not for reading a whole table (each server knows one of
    // the two names). As PostgreSQL's sessions, these take as long as the data does.
    let set = "SET SESSION net_write_timeout = 31536000";
    rt.block_on(sqlx::query(set).execute(&mut conn)).map_err(|e| q(set)(e.to_string()))?;
    for sql in ["SET SESSION max_statement_time = 0", "SET SESSION max_execution_time = 0"] {
        if let Err(e) = rt.block_on(sqlx::query(sql).execute(&mut conn)) {
            tracing::debug!(statement = sql, error = %e, "not a setting of this server");
        }
    }
    Ok(conn)
}

/// A MariaDB or MySQL v1 database.
#[derive(Debug)]
pub struct MysqlSource {
    rt: tokio::runtime::Runtime,
    conn: sqlx::MySqlConnection,
}

impl MysqlSource {
    /// Connects, in a transaction that reads every table as v1 was when it began.
    pub fn open(url: &str) -> Result<Self, ConnectorError> {
        let rt = runtime()?;
        let mut conn = connect(&rt, url)?;
        // As PostgreSQL's source: one snapshot for every table while the legacy application
        // goes on writing, as `mysqldump --single-transaction` takes (InnoDB; a MyISAM table
        // has no snapshot to give and is read as it is).
        for sql in [
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        ] {
            rt.block_on(sqlx::query(sql).execute(&mut conn)).map_err(|e| q(sql)(e.to_string()))?;
        }
        Ok(Self { rt, conn })
    }
}

/// A value as the server sends it, by the column's type.
fn mysql_value(r: &MySqlRow, i: usize) -> Result<Value, sqlx::Error> {
    let ty = r.column(i).type_info().name().to_ascii_uppercase();
    let ty = ty.trim_end_matches(" UNSIGNED");
    Ok(match ty {
        "NULL" => Value::Null,
        "BOOLEAN" | "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "INTEGER" | "BIGINT" | "YEAR" => {
            r.try_get::<Option<i64>, _>(i)?.map_or(Value::Null, Value::Int)
        }
        "FLOAT" => r.try_get::<Option<f32>, _>(i)?.map_or(Value::Null, |v| Value::Float(f64::from(v))),
        "DOUBLE" | "REAL" => r.try_get::<Option<f64>, _>(i)?.map_or(Value::Null, Value::Float),
        "DATE" => match r.try_get::<Option<Date>, _>(i) {
            Ok(d) => d.map_or(Value::Null, Value::Date),
            // A zero date ('0000-00-00') is no date: the mapping sees its text and decides.
            Err(_) => Value::Text("0000-00-00".into()),
        },
        "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" | "BINARY" | "VARBINARY" | "BIT" => {
            r.try_get::<Option<Vec<u8>>, _>(i)?.map_or(Value::Null, Value::Bytes)
        }
        _ => match r.try_get::<Option<String>, _>(i) {
            Ok(s) => s.map_or(Value::Null, Value::Text),
            // Bytes that are not text in the connection's character set: kept as they are, so
            // that the record is rejected with what it held.
            Err(_) => r.try_get::<Option<Vec<u8>>, _>(i)?.map_or(Value::Null, Value::Bytes),
        },
    })
}

impl Source for MysqlSource {
    fn dialect(&self) -> Dialect {
        Dialect::Mysql
    }
    fn table_columns(&mut self, table: &str) -> Result<Vec<String>, ConnectorError> {
        let rows = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
                     WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
                )
                .bind(table)
                .fetch_all(&mut self.conn),
            )
            .map_err(|e| q(format!("columns of {table}"))(e.to_string()))?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(|e| q(format!("columns of {table}"))(e.to_string())))
            .collect()
    }
    fn count(&mut self, table: &str) -> Result<u64, ConnectorError> {
        let sql = format!("SELECT COUNT(*) FROM {}", Dialect::Mysql.ident(table));
        let row = self
            .rt
            .block_on(sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(&mut self.conn))
            .map_err(|e| q(format!("counting {table}"))(e.to_string()))?;
        row.try_get::<i64, _>(0).map(|n| n as u64).map_err(|e| q(format!("counting {table}"))(e.to_string()))
    }
    fn scan(
        &mut self,
        s: &Scan<'_>,
        f: &mut dyn FnMut(&SourceRow) -> Result<(), ConnectorError>,
    ) -> Result<(), ConnectorError> {
        let sql = select_sql(Dialect::Mysql, s);
        let stream = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut self.conn);
        stream_rows(&self.rt, stream, s, mysql_value, f)
    }
}

/// The column type a value of `ty` is stored in.
fn column_type(ty: Type) -> &'static str {
    match ty {
        Type::Int => "BIGINT",
        Type::Float => "DOUBLE",
        Type::Bool => "BOOLEAN",
        Type::Date => "DATE",
        Type::Bytes => "LONGBLOB",
        Type::Uuid => "CHAR(36)",
        Type::Text | Type::Null => "LONGTEXT",
    }
}

/// Creates the tables of `schema` in the MariaDB or MySQL database at `url` (replacing them) and
/// copies every row of `source` into them, in one transaction per table. The tables get no
/// keys, as a legacy database's often have none. Returns the rows copied.
pub fn load_tables(schema: &Schema, source: &mut dyn Source, url: &str) -> Result<u64, ConnectorError> {
    let rt = runtime()?;
    let mut conn = connect(&rt, url)?;
    let d = Dialect::Mysql;
    let mut copied = 0u64;
    for t in &schema.tables {
        let cols: Vec<(String, Type)> = t.columns.iter().map(|c| (c.name.clone(), c.ty)).collect();
        let defs: Vec<String> = cols.iter().map(|(n, ty)| format!("{} {}", d.ident(n), column_type(*ty))).collect();
        let names: Vec<String> = cols.iter().map(|(n, _)| d.ident(n)).collect();
        let table = d.ident(&t.name);
        let err = |e: sqlx::Error| q(format!("loading {} into {}", t.name, masked(url)))(e.to_string());
        rt.block_on(async {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}"))).execute(&mut conn).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE {table} ({}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                defs.join(", ")
            )))
            .execute(&mut conn)
            .await
            .map(|_| ())
        })
        .map_err(err)?;
        let mut rows: Vec<Vec<Value>> = Vec::new();
        let order = vec![cols[0].0.clone()];
        let flush = |rows: &mut Vec<Vec<Value>>, conn: &mut sqlx::MySqlConnection| -> Result<(), ConnectorError> {
            if rows.is_empty() {
                return Ok(());
            }
            let one = format!("({})", vec!["?"; cols.len()].join(", "));
            let sql = format!("INSERT INTO {table} ({}) VALUES {}", names.join(", "), vec![one; rows.len()].join(", "));
            rt.block_on(async {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for r in rows.iter() {
                    for v in r {
                        query = match v {
                            Value::Null => query.bind(None::<String>),
                            Value::Bool(b) => query.bind(*b),
                            Value::Int(i) => query.bind(*i),
                            Value::Float(f) => query.bind(*f),
                            Value::Text(s) => query.bind(s.clone()),
                            Value::Date(dt) => query.bind(*dt),
                            Value::Bytes(b) => query.bind(b.clone()),
                            Value::Uuid(u) => query.bind(u.hyphenated().to_string()),
                        };
                    }
                }
                query.execute(&mut *conn).await
            })
            .map_err(err)?;
            rows.clear();
            Ok(())
        };
        let mut bad = None;
        source.scan(
            &Scan { table: &t.name, columns: &cols, extra: &[], order_by: &order, lazy: None },
            &mut |row| {
                if let Some((_, why)) = &row.bad {
                    bad.get_or_insert_with(|| why.clone());
                }
                rows.push(row.values.clone());
                copied += 1;
                if rows.len() >= 500 { flush(&mut rows, &mut conn) } else { Ok(()) }
            },
        )?;
        flush(&mut rows, &mut conn)?;
        if let Some(why) = bad {
            return Err(q(format!("copying {}", t.name))(why));
        }
    }
    let _ = rt.block_on(conn.close());
    Ok(copied)
}

/// Makes a MariaDB or MySQL v1 database read-only: MySQL 8 marks the schema `READ ONLY`;
/// MariaDB has no such mark, so the accounts granted writes on this database lose them.
/// Accounts with server-wide privileges keep theirs: the seal is what shows a change then.
pub fn freeze(url: &str) -> Result<String, ConnectorError> {
    let rt = runtime()?;
    let mut c = connect(&rt, url)?;
    let err = |e: sqlx::Error| q("making v1 read-only")(e.to_string());
    let said = rt.block_on(async {
        let db: String = sqlx::query("SELECT CAST(DATABASE() AS CHAR)").fetch_one(&mut c).await?.try_get(0)?;
        let ident = Dialect::Mysql.ident(&db);
        if sqlx::query(sqlx::AssertSqlSafe(format!("ALTER SCHEMA {ident} READ ONLY = 1"))).execute(&mut c).await.is_ok() {
            return Ok(format!("database {db} is read-only (READ ONLY)"));
        }
        let grantees: Vec<String> = sqlx::query(
            "SELECT DISTINCT CAST(grantee AS CHAR) FROM information_schema.schema_privileges \
             WHERE table_schema = ? AND privilege_type IN ('INSERT', 'UPDATE', 'DELETE')",
        )
        .bind(&db)
        .fetch_all(&mut c)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
        for g in &grantees {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "REVOKE INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX ON {ident}.* FROM {g}"
            )))
            .execute(&mut c)
            .await?;
        }
        Ok::<_, sqlx::Error>(if grantees.is_empty() {
            format!("database {db}: no account holds write privileges on it alone; server-wide ones are left, the seal shows any change")
        } else {
            format!("database {db}: write privileges revoked from {}; server-wide ones are left, the seal shows any change", grantees.join(", "))
        })
    });
    let _ = rt.block_on(c.close());
    said.map_err(err)
}

//! The v1 archive at go-live: made read-only, and sealed with a SHA-256 of every table's rows,
//! so that any later change to the archive is detected (root ignores file modes; the seal does not).

use sha2::{Digest, Sha256};
use sqlx::Connection;

use crate::connect::{ConnectorError, Scan, Source, SourceConfig};
use crate::ddl::Schema;
use crate::value::{Type, Value};

/// A table's checksum.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableSeal {
    /// v1 table.
    pub table: String,
    /// Rows.
    pub rows: u64,
    /// SHA-256 over every row in a fixed order.
    pub sha256: String,
}

fn feed(h: &mut Sha256, v: &Value) {
    match v {
        Value::Null => h.update([0]),
        Value::Bool(b) => h.update([1, u8::from(*b)]),
        Value::Int(i) => {
            h.update([2]);
            h.update(i.to_le_bytes());
        }
        Value::Float(f) => {
            h.update([3]);
            h.update(f.to_bits().to_le_bytes());
        }
        Value::Text(s) => {
            h.update([4]);
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        Value::Bytes(b) => {
            h.update([6]);
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        }
        other => {
            let s = other.to_string();
            h.update([7]);
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
    }
}

/// Checksums of every table of the v1 schema, rows in the order of all their columns.
pub fn seal(schema: &Schema, source: &mut dyn Source) -> Result<Vec<TableSeal>, ConnectorError> {
    let mut out = Vec::new();
    for t in &schema.tables {
        let cols: Vec<(String, Type)> = t.columns.iter().map(|c| (c.name.clone(), c.ty)).collect();
        let order: Vec<String> = cols.iter().map(|c| c.0.clone()).collect();
        let mut h = Sha256::new();
        let mut rows = 0u64;
        source.scan(&Scan { table: &t.name, columns: &cols, extra: &[], order_by: &order, lazy: None }, &mut |r| {
            rows += 1;
            for (i, v) in r.values.iter().enumerate() {
                // A value that does not fit its type is hashed as what it was read as: nothing is skipped.
                match &r.bad {
                    Some((bi, why)) if *bi == i => feed(&mut h, &Value::Text(why.clone())),
                    _ => feed(&mut h, v),
                }
            }
            h.update([0xff]);
            Ok(())
        })?;
        out.push(TableSeal {
            table: t.name.clone(),
            rows,
            sha256: h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        });
    }
    Ok(out)
}

/// Makes the v1 database read-only: a write-protected file, or a read-only PostgreSQL database
/// with write privileges revoked. Doing it twice is harmless.
pub fn freeze(config: &SourceConfig) -> Result<String, ConnectorError> {
    match config {
        SourceConfig::Sqlite { path } => {
            let err = |e: std::io::Error| ConnectorError::Query {
                what: format!("write-protecting {}", path.display()),
                reason: e.to_string(),
            };
            let mut perms = std::fs::metadata(path).map_err(err)?.permissions();
            perms.set_readonly(true);
            std::fs::set_permissions(path, perms).map_err(err)?;
            Ok(format!("{} is write-protected and opened read-only", path.display()))
        }
        SourceConfig::Postgres { url } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| ConnectorError::Open { what: "runtime".into(), reason: e.to_string() })?;
            rt.block_on(async {
                let q = |e: sqlx::Error| ConnectorError::Query {
                    what: "making v1 read-only".into(),
                    reason: e.to_string(),
                };
                let mut c = sqlx::PgConnection::connect(url)
                    .await
                    .map_err(|e| ConnectorError::Open { what: cutover_core::mask_url(url), reason: e.to_string() })?;
                let (db,): (String,) =
                    sqlx::query_as("SELECT current_database()::text").fetch_one(&mut c).await.map_err(q)?;
                let ident = format!("\"{}\"", db.replace('"', "\"\""));
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public FROM PUBLIC, CURRENT_USER; \
                     ALTER DATABASE {ident} SET default_transaction_read_only = on"
                )))
                .execute(&mut c)
                .await
                .map_err(q)?;
                let _ = c.close().await;
                Ok(format!(
                    "database {db} is read-only (default_transaction_read_only) and write privileges are revoked"
                ))
            })
        }
        SourceConfig::Mysql { url } => crate::mysql::freeze(url),
    }
}

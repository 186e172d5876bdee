//! Benchmark driver: runs the engine in-process on a v1 SQLite file and prints one JSON line
//! with wall time, v1 rows per second and peak resident memory (VmHWM); seeds a store with many
//! projects for the portal benchmark.
//!
//! `cutover-bench engine V1.db [none|V2-URL] [--ledger drop|keep]`
//! `cutover-bench scan V1.db PACK ENTITY [--lazy] [--sql]` (the v1 reader alone: one entity's scan, rows
//! counted; `--lazy` as a final migration reads it, the key decoded and the rest as stored;
//! `--sql` every row through SQL rather than from the table's pages)
//! `cutover-bench portal-seed STORE-URL PROJECTS`

use std::collections::BTreeMap;
use std::time::Instant;

mod portal;

use anyhow::{Context, Result, bail};
use cutover_engine::connect::{SourceConfig, Target, TargetConfig};
use cutover_engine::pack::PackSource;
use cutover_engine::run::{RunSpec, run};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(cmd), Some(v1)) = (args.first(), args.get(1)) else {
        bail!("usage: cutover-bench engine V1.db [none|V2-URL] [--ledger drop|keep] | portal-seed STORE-URL PROJECTS");
    };
    if cmd == "portal-seed" {
        let n: u32 = args.get(2).context("how many projects")?.parse().context("PROJECTS must be a number")?;
        return portal::seed(v1, n);
    }
    if cmd == "scan" {
        let (Some(pack), Some(entity)) = (args.get(2), args.get(3)) else {
            bail!("usage: cutover-bench scan V1.db PACK ENTITY [--lazy] [--sql]");
        };
        return scan(v1, pack, entity, args.iter().any(|a| a == "--lazy"), args.iter().any(|a| a == "--sql"));
    }
    if cmd != "engine" {
        bail!("unknown command {cmd}");
    }
    let v2 = args.get(2).filter(|a| *a != "none");
    let keep = args.iter().any(|a| a == "keep");
    let pack = PackSource::Builtin.load("omikai")?;
    let included: Vec<String> = pack.template.entities.iter().map(|e| e.name.clone()).collect();
    let opts = BTreeMap::new();
    let spec = RunSpec {
        pack: &pack,
        account_key: "bench",
        account_name: "Bench",
        included: &included,
        cutoff: cutover_demo::DEFAULT_CUTOFF,
        options: &opts,
        progress: false,
        cancel: None,
    };
    let mut src = SourceConfig::from_url(v1)?.build()?;
    let mut tgt = v2.map(|u| TargetConfig::from_url(u).and_then(|c| c.build())).transpose()?;
    let mut kept = 0usize;
    let mut held = Vec::new();
    let started = Instant::now();
    let report = run(&spec, src.as_mut(), tgt.as_deref_mut().map(|t| t as &mut dyn Target), &mut |batch| {
        kept += batch.len();
        if keep {
            held.extend(batch);
        }
        Ok(())
    })
    .context("run")?;
    let secs = started.elapsed().as_secs_f64();
    let read = report.totals().read;
    println!(
        "{{\"target\":\"{}\",\"rows\":{read},\"seconds\":{secs:.3},\"rows_per_s\":{:.0},\"ledger\":{kept},\"peak_rss_mib\":{:.1}}}",
        v2.map_or("none", |_| if v2.is_some_and(|u| u.starts_with("postgres")) { "postgres" } else { "sqlite" }),
        read as f64 / secs,
        peak_rss_kib() as f64 / 1024.0
    );
    Ok(())
}

/// Times one entity's v1 scan with nothing done to the rows: the reader's own speed.
fn scan(v1: &str, pack: &str, entity: &str, lazy: bool, sql: bool) -> Result<()> {
    let pack = PackSource::Builtin.load(pack)?;
    let ent = pack.entities.iter().find(|e| e.name == entity).with_context(|| format!("no entity {entity}"))?;
    let keys = ent.key_columns();
    let mut src: Box<dyn cutover_engine::connect::Source> = if sql {
        // Every row through SQL, as a comparison for the rows read from the table's pages.
        let mut s = cutover_engine::connect::SqliteSource::open(std::path::Path::new(v1))?;
        s.set_read_pages(false);
        Box::new(s)
    } else {
        SourceConfig::from_url(v1)?.build()?
    };
    let mut rows = 0u64;
    let started = Instant::now();
    let scan = cutover_engine::connect::Scan {
        table: &ent.source,
        columns: &ent.columns,
        extra: &ent.extra,
        order_by: &keys,
        lazy: lazy.then_some(ent.key.as_slice()),
    };
    src.scan(&scan, &mut |_| {
        rows += 1;
        Ok(())
    })?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"entity\":\"{entity}\",\"rows\":{rows},\"seconds\":{secs:.3},\"rows_per_s\":{:.0}}}",
        rows as f64 / secs
    );
    Ok(())
}

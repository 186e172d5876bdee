//! Deterministic Omikai 1 demo data: every case of the pack brief planted at known rates.
//!
//! While writing, the generator records the bucket each record must end in, derived from the
//! facts it planted and the precedence the pack documents (exclude rules, reject rules, then
//! fields in order, where a parent lookup cascades an exclusion or rejects an orphan, then
//! warn rules). That [`Manifest`] is the ground truth tests compare the engine against: it
//! comes from what was planted, never from running the mapping.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, params};
use serde::Serialize;
use time::{Date, Duration};

/// The v1 schema the data is written in.
pub const V1_SQL: &str = include_str!("../../../packs/omikai/v1.sql");

/// Errors of the generator.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The output file could not be written.
    #[error("cannot write demo data to {path}: {reason}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Number of customers; everything else scales with it.
    pub customers: u32,
    /// Seed of the pseudo-random choices.
    pub seed: u64,
    /// The history cut-off the manifest's expectations are computed for.
    pub cutoff: Date,
}

/// The default cut-off of the demo: seven years before the data's last month.
pub const DEFAULT_CUTOFF: Date = time::macros::date!(2019 - 11 - 01);

/// Expected counts of one entity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Expected {
    /// Records written.
    pub read: u64,
    /// `migrated`, or `bucket:reason` → count.
    pub outcomes: BTreeMap<String, u64>,
}

impl Expected {
    /// Count of `bucket:reason` (or `migrated`).
    pub fn get(&self, k: &str) -> u64 {
        self.outcomes.get(k).copied().unwrap_or(0)
    }
    /// Records in a bucket (`migrated` counts warned records too).
    pub fn bucket(&self, bucket: &str) -> u64 {
        self.outcomes
            .iter()
            .filter(|(k, _)| match bucket {
                "migrated" => *k == "migrated" || k.starts_with("warned:"),
                b => k.starts_with(&format!("{b}:")),
            })
            .map(|(_, v)| v)
            .sum()
    }
}

/// Expected outcome of every entity, for one cut-off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// Customers generated.
    pub customers: u32,
    /// Seed.
    pub seed: u64,
    /// Cut-off the expectations hold for.
    pub cutoff: String,
    /// Pack entity → expectations.
    pub entities: BTreeMap<String, Expected>,
}

impl Manifest {
    /// Total rows written.
    pub fn rows(&self) -> u64 {
        self.entities.values().map(|e| e.read).sum()
    }
    fn add(&mut self, entity: &str, o: &Outcome) {
        let e = self.entities.entry(entity.to_owned()).or_default();
        e.read += 1;
        *e.outcomes.entry(o.key()).or_default() += 1;
    }
}

/// What becomes of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Migrated,
    Warned(&'static str),
    Excluded(&'static str),
    Rejected(&'static str),
}

impl Outcome {
    fn key(&self) -> String {
        match self {
            Outcome::Migrated => "migrated".into(),
            Outcome::Warned(r) => format!("warned:{r}"),
            Outcome::Excluded(r) => format!("excluded:{r}"),
            Outcome::Rejected(r) => format!("rejected:{r}"),
        }
    }
    /// What a child's lookup of this parent yields.
    fn as_parent(&self) -> Parent {
        match self {
            Outcome::Migrated | Outcome::Warned(_) => Parent::Ok,
            // A merged duplicate answers with its survivor: children are re-pointed, not lost.
            Outcome::Excluded("merged_duplicate") => Parent::Ok,
            Outcome::Excluded(r) => Parent::Excluded(r),
            Outcome::Rejected(_) => Parent::Rejected,
        }
    }
}

/// A parent as a child's lookup sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parent {
    Ok,
    Excluded(&'static str),
    Rejected,
    Missing,
}

/// Applies a lookup in field order: `Some` when it decides the record.
fn through(p: Parent) -> Option<Outcome> {
    match p {
        Parent::Ok => None,
        Parent::Excluded(r) => Some(Outcome::Excluded(r)),
        Parent::Rejected | Parent::Missing => Some(Outcome::Rejected("orphan")),
    }
}

/// SplitMix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `per_mille`/1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn money(&mut self, max_whole: u64) -> f64 {
        (self.below(max_whole * 100) as f64) / 100.0
    }
}

const FIRST: &[&str] =
    &["Kari", "Ola", "Ingrid", "Lars", "Sofie", "Anders", "Emma", "Jonas", "Nora", "Erik", "Astrid", "Magnus"];
const LAST: &[&str] = &[
    "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Berg", "Dahl", "Lund", "Haugen",
    "Bakken",
];
const TOWNS: &[&str] = &["Oslo", "Bergen", "Trondheim", "Stavanger", "Göteborg", "Stockholm", "Tromsø", "Ålesund"];
const GOOD_COUNTRIES: &[&str] = &["Norway", "NORGE", "no", "Sverige", "SE", "Danmark", "Finland", ""];
const BAD_COUNTRIES: &[&str] = &["Narnia", "Nordland", "Atlantis", "Scandinavia"];
const BAD_EMAILS: &[&str] = &["post(at)firma.no", "kari@", "ingen e-post", "ola@@trykk.no", "@trykk.no"];
const BAD_DATES: &[&str] = &["31.02.2019", "2019-13-45", "00.00.0000", "0000-00-00", "32.01.2020"];
const PAYTERMS: &[&str] = &["10D", "14D", "30D", "60D", "CASH", "PREPAY"];
const CURRENCIES: &[&str] = &["NOK", "NOK", "NOK", "SEK", "EUR", "nok"];
const COLORS: &[&str] = &["4+4", "4+0", "1+1", "2+0", "1+0", "4+1"];

/// First and last day of generated activity.
const FROM: Date = time::macros::date!(2012 - 01 - 01);
const DAYS: i64 = 5418; // to 2026-10-31

fn date_text(d: Date, rng: &mut Rng) -> String {
    if rng.chance(500) { format!("{:02}.{:02}.{}", d.day(), u8::from(d.month()), d.year()) } else { d.to_string() }
}

fn bad_date(rng: &mut Rng) -> String {
    (*rng.pick(BAD_DATES)).to_owned()
}

/// Generates the database at `path` (replacing it) and returns what the migration must make of it.
pub fn generate(path: &Path, spec: Spec) -> Result<Manifest, DemoError> {
    let werr = |e: rusqlite::Error| DemoError::Write { path: path.display().to_string(), reason: e.to_string() };
    if path.exists() {
        std::fs::remove_file(path)
            .map_err(|e| DemoError::Write { path: path.display().to_string(), reason: e.to_string() })?;
    }
    let mut conn = Connection::open(path).map_err(werr)?;
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;").map_err(werr)?;
    conn.execute_batch(V1_SQL).map_err(werr)?;
    let tx = conn.transaction().map_err(werr)?;
    let manifest = write_all(&tx, spec).map_err(werr)?;
    tx.commit().map_err(werr)?;
    Ok(manifest)
}

#[allow(clippy::too_many_lines)]
fn write_all(tx: &rusqlite::Transaction<'_>, spec: Spec) -> rusqlite::Result<Manifest> {
    let mut rng = Rng(spec.seed ^ 0x005e_ed0f_c07e_0001);
    let mut m =
        Manifest { customers: spec.customers, seed: spec.seed, cutoff: spec.cutoff.to_string(), ..Default::default() };
    let n = u64::from(spec.customers);
    let day = |rng: &mut Rng| FROM.saturating_add(Duration::days(rng.below(DAYS as u64) as i64));

    let mut ins_cust =
        tx.prepare("INSERT INTO CUST VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)")?;
    let mut ins_contact = tx.prepare("INSERT INTO CONTACT VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
    let mut ins_user = tx.prepare("INSERT INTO USERS VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
    let mut ins_supp = tx.prepare("INSERT INTO SUPPLIER VALUES (?1, ?2, ?3, ?4, ?5)")?;
    let mut ins_mat = tx.prepare("INSERT INTO MATERIAL VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?;
    let mut ins_quote = tx.prepare("INSERT INTO QUOTE VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
    let mut ins_qline = tx.prepare("INSERT INTO QUOTELINE VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
    let mut ins_job = tx.prepare("INSERT INTO JOB VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")?;
    let mut ins_ed = tx.prepare("INSERT INTO JOBEDITION VALUES (?1, ?2, ?3, ?4, ?5)")?;
    let mut ins_sig = tx.prepare("INSERT INTO JOBSIG VALUES (?1, ?2, ?3, ?4, ?5)")?;
    let mut ins_po = tx.prepare("INSERT INTO PO VALUES (?1, ?2, ?3, ?4, ?5)")?;
    let mut ins_poline = tx.prepare("INSERT INTO POLINE VALUES (?1, ?2, ?3, ?4, ?5)")?;
    let mut ins_del = tx.prepare("INSERT INTO DELIVERY VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?;
    let mut ins_inv = tx.prepare("INSERT INTO INVOICE VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?;
    let mut ins_invline = tx.prepare("INSERT INTO INVLINE VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
    let mut ins_doc = tx.prepare("INSERT INTO DOCS VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;

    // Users, suppliers and materials first: they do not depend on customers.
    let users = 5 + n / 100;
    for id in 1..=users {
        let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
        let bad = rng.chance(100);
        let email = if bad {
            (*rng.pick(BAD_EMAILS)).to_owned()
        } else {
            format!("{}.{}{id}@trykk.no", first.to_lowercase(), last.to_lowercase())
        };
        let active = if rng.chance(800) { "Y" } else { "N" };
        let role = *rng.pick(&["ADM", "SALES", "PROD", "ACC"]);
        ins_user.execute(params![
            id,
            format!("{}{id}", first.to_lowercase()),
            format!("{first} {last}"),
            email,
            role,
            active,
            format!("{:032x}", rng.next())
        ])?;
        m.add("user", &if bad { Outcome::Warned("invalid_email") } else { Outcome::Migrated });
    }
    let suppliers = 10 + n / 50;
    for id in 1..=suppliers {
        let bad = rng.chance(100);
        let country = if bad { *rng.pick(BAD_COUNTRIES) } else { *rng.pick(GOOD_COUNTRIES) };
        ins_supp.execute(params![
            id,
            format!("{} Papir AS", rng.pick(LAST)),
            country,
            format!("ordre{id}@papir.no"),
            rng.pick(PAYTERMS)
        ])?;
        m.add("supplier", &if bad { Outcome::Warned("unknown_country") } else { Outcome::Migrated });
    }
    let materials = 30 + n / 20;
    for id in 1..=materials {
        let (kind, unit) = *rng.pick(&[("PAPER", "SHEET"), ("PAPER", "KG"), ("INK", "KG"), ("PLATE", "PCS")]);
        let supp: Option<u64> = if rng.chance(50) { None } else { Some(1 + rng.below(suppliers)) };
        ins_mat.execute(params![
            format!("M-{id:05}"),
            format!("{kind} {}", rng.below(400)),
            kind,
            80 + rng.below(300),
            700,
            1000,
            unit,
            rng.money(500),
            supp
        ])?;
        m.add("material", &Outcome::Migrated);
    }

    let (mut contno, mut quoteno, mut jobno, mut pono, mut delno, mut invno, mut docno) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    // Customers that survive a merge, with their VAT numbers: duplicates copy one of these.
    let mut survivors: Vec<String> = Vec::new();

    for cust in 1..=n {
        // ---- the customer
        let r = rng.below(1000);
        let mut status = if rng.chance(100) { "I" } else { "A" };
        let mut country = (*rng.pick(GOOD_COUNTRIES)).to_owned();
        let mut vat: Option<String> =
            if rng.chance(100) { None } else { Some(format!("NO {} MVA", 900_000_000 + cust * 7)) };
        let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
        let mut email = format!("post@{}{cust}.no", last.to_lowercase());
        let created_day = day(&mut rng);
        let mut created = date_text(created_day, &mut rng);
        let outcome = if r < 40 {
            status = "X";
            Outcome::Excluded("deleted_in_v1")
        } else if r < 70 && !survivors.is_empty() {
            // Same VAT number written differently: the merge key ignores case and spaces.
            let v = survivors[rng.below(survivors.len() as u64) as usize].replace(' ', "").to_lowercase();
            vat = Some(v);
            Outcome::Excluded("merged_duplicate")
        } else if r < 120 {
            country = (*rng.pick(BAD_COUNTRIES)).to_owned();
            Outcome::Warned("unknown_country")
        } else if r < 170 {
            email = (*rng.pick(BAD_EMAILS)).to_owned();
            Outcome::Warned("invalid_email")
        } else if r < 190 {
            created = bad_date(&mut rng);
            Outcome::Warned("invalid_date")
        } else {
            Outcome::Migrated
        };
        if matches!(outcome, Outcome::Migrated | Outcome::Warned(_))
            && let Some(v) = &vat
        {
            survivors.push(v.clone());
        }
        ins_cust.execute(params![
            cust,
            format!("{last} {} AS", rng.pick(&["Trykk", "Grafisk", "Media", "Reklame"])),
            format!("{} gate {}", rng.pick(LAST), 1 + rng.below(90)),
            Option::<String>::None,
            format!("{:04}", rng.below(9999)),
            rng.pick(TOWNS),
            country,
            vat,
            email,
            format!("+47 {}", 40_000_000 + rng.below(9_999_999)),
            rng.pick(PAYTERMS),
            rng.pick(CURRENCIES),
            rng.money(100_000),
            status,
            created,
            if rng.chance(200) { Some(format!("Contact {first} before delivery")) } else { None }
        ])?;
        m.add("customer", &outcome);
        let cust_p = outcome.as_parent();

        // ---- contacts (and now and then an orphan pointing at no customer)
        let mut contacts: Vec<u64> = Vec::new();
        let count = rng.below(4);
        let extra_orphan = rng.chance(10);
        for k in 0..count + u64::from(extra_orphan) {
            contno += 1;
            let orphan = extra_orphan && k == count;
            let bad_mail = rng.chance(40);
            let name = if rng.chance(500) {
                format!("{}, {}", rng.pick(LAST), rng.pick(FIRST))
            } else {
                format!("{} {}", rng.pick(FIRST), rng.pick(LAST))
            };
            let mail = if bad_mail { (*rng.pick(BAD_EMAILS)).to_owned() } else { format!("c{contno}@kunde.no") };
            let owner = if orphan { 10_000_000 + contno } else { cust };
            ins_contact.execute(params![
                contno,
                owner,
                name,
                mail,
                Option::<String>::None,
                if k == 0 { "Y" } else { "N" }
            ])?;
            let o = if orphan {
                Outcome::Rejected("orphan")
            } else {
                through(cust_p).unwrap_or(if bad_mail { Outcome::Warned("invalid_email") } else { Outcome::Migrated })
            };
            if !orphan && cust_p == Parent::Ok {
                contacts.push(contno);
            }
            m.add("contact", &o);
        }

        // ---- quotes and their lines
        let mut quotes: Vec<(u64, Parent)> = Vec::new();
        for _ in 0..rng.below(3) {
            quoteno += 1;
            let bad_date_q = rng.chance(10);
            let qd = day(&mut rng);
            let cont = if contacts.is_empty() || rng.chance(300) {
                None
            } else {
                Some(contacts[rng.below(contacts.len() as u64) as usize])
            };
            let qdate = if bad_date_q { bad_date(&mut rng) } else { date_text(qd, &mut rng) };
            ins_quote.execute(params![
                quoteno,
                cust,
                cont,
                format!("Brosjyre {}", rng.below(100)),
                qdate,
                date_text(qd.saturating_add(Duration::days(30)), &mut rng),
                rng.pick(&["OPEN", "WON", "LOST", "EXP"])
            ])?;
            let o = through(cust_p).unwrap_or(if bad_date_q {
                Outcome::Rejected("invalid_date")
            } else {
                Outcome::Migrated
            });
            m.add("quote", &o);
            quotes.push((quoteno, o.as_parent()));
            for line in 1..=(1 + rng.below(3)) {
                ins_qline.execute(params![
                    quoteno,
                    line,
                    "Trykk 4+4",
                    100 * (1 + rng.below(50)),
                    rng.money(20),
                    rng.pick(&[0.0, 5.0, 12.5])
                ])?;
                m.add("quote_line", &through(o.as_parent()).unwrap_or(Outcome::Migrated));
            }
        }

        // ---- jobs and everything hanging off them
        for j in 0..(4 + rng.below(8)) {
            jobno += 1;
            let orphan = j == 0 && rng.chance(5);
            let mut status = match rng.below(100) {
                0..5 => "10",
                5..12 => "20",
                12..30 => "30",
                30..55 => "40",
                55..95 => "50",
                _ => "90",
            };
            if orphan {
                status = "20";
            }
            let od = day(&mut rng);
            let bad_order_date = !orphan && rng.chance(10);
            let bad_due = rng.chance(10);
            let quote = if !quotes.is_empty() && rng.chance(300) {
                Some(quotes[rng.below(quotes.len() as u64) as usize])
            } else {
                None
            };
            let colors = *rng.pick(COLORS);
            ins_job.execute(params![
                jobno,
                if orphan { 10_000_000 + jobno } else { cust },
                quote.map(|q| q.0),
                format!("Jobb {jobno}"),
                if bad_order_date { bad_date(&mut rng) } else { date_text(od, &mut rng) },
                if bad_due { bad_date(&mut rng) } else { date_text(od.saturating_add(Duration::days(14)), &mut rng) },
                status,
                500 * (1 + rng.below(40)),
                4 * (1 + rng.below(16)),
                *rng.pick(&["A4", "A5", "A3", "210x297"]),
                colors,
                rng.money(80_000)
            ])?;
            let done = ["30", "40", "50", "90"].contains(&status);
            let job_o = if done && bad_order_date {
                Outcome::Rejected("invalid_date")
            } else if done && od < spec.cutoff {
                Outcome::Excluded("history_cutoff")
            } else if orphan {
                Outcome::Rejected("orphan")
            } else if let Some(o) = through(cust_p).or_else(|| quote.and_then(|q| through(q.1))) {
                o
            } else if bad_order_date {
                Outcome::Rejected("invalid_date")
            } else if bad_due {
                Outcome::Warned("invalid_date")
            } else {
                Outcome::Migrated
            };
            m.add("job", &job_o);
            let job_p = job_o.as_parent();
            let child = through(job_p).unwrap_or(Outcome::Migrated);
            if rng.chance(200) {
                for ed in 1..=(1 + rng.below(3)) {
                    ins_ed.execute(params![jobno, ed, format!("Utgave {ed}"), 1000 * ed, date_text(od, &mut rng)])?;
                    m.add("job_edition", &child);
                }
            }
            for sig in 1..=(1 + rng.below(3)) {
                let c = *rng.pick(COLORS);
                let plates: u64 =
                    c.split('+').map(|p| p.parse::<u64>().unwrap_or(0)).sum::<u64>() + u64::from(rng.chance(100));
                ins_sig.execute(params![jobno, sig, 16, c, plates])?;
                m.add("job_signature", &child);
            }
            if rng.chance(250) {
                pono += 1;
                let standalone = rng.chance(200);
                let bad_po_date = rng.chance(10);
                ins_po.execute(params![
                    pono,
                    1 + rng.below(suppliers),
                    if standalone { None } else { Some(jobno) },
                    if bad_po_date { bad_date(&mut rng) } else { date_text(od, &mut rng) },
                    rng.pick(&["OPEN", "ORDERED", "RECEIVED", "CANCELLED"])
                ])?;
                let po_o = (if standalone { None } else { through(job_p) }).unwrap_or(if bad_po_date {
                    Outcome::Rejected("invalid_date")
                } else {
                    Outcome::Migrated
                });
                m.add("purchase_order", &po_o);
                for line in 1..=(1 + rng.below(3)) {
                    let mat = if rng.chance(100) { None } else { Some(format!("M-{:05}", 1 + rng.below(materials))) };
                    ins_poline.execute(params![pono, line, mat, (1 + rng.below(20)) as f64, rng.money(300)])?;
                    m.add("purchase_order_line", &through(po_o.as_parent()).unwrap_or(Outcome::Migrated));
                }
            }
            if status == "40" || status == "50" {
                delno += 1;
                let bad_ship = rng.chance(10);
                ins_del.execute(params![
                    delno,
                    jobno,
                    rng.pick(&["Bring", "PostNord", "DHL", "Egen bil"]),
                    format!(
                        "{} gate {}\n{:04} {}",
                        rng.pick(LAST),
                        1 + rng.below(90),
                        rng.below(9999),
                        rng.pick(TOWNS)
                    ),
                    if bad_ship {
                        bad_date(&mut rng)
                    } else {
                        date_text(od.saturating_add(Duration::days(10)), &mut rng)
                    },
                    1 + rng.below(20),
                    rng.money(500),
                    format!("TRK{:010}", rng.below(9_999_999_999))
                ])?;
                let o = through(job_p).unwrap_or(if bad_ship {
                    Outcome::Warned("invalid_date")
                } else {
                    Outcome::Migrated
                });
                m.add("delivery", &o);
            }
            if status == "50" {
                invno += 1;
                write_invoice(
                    &mut ins_inv,
                    &mut ins_invline,
                    &mut rng,
                    &mut m,
                    invno,
                    cust,
                    Some(jobno),
                    od,
                    cust_p,
                    job_p,
                )?;
            }
            if rng.chance(100) {
                docno += 1;
                write_doc(&mut ins_doc, &mut rng, &mut m, docno, "JOB", jobno, job_p)?;
            }
        }
        // An invoice now and then whose customer does not exist.
        if rng.chance(5) {
            invno += 1;
            let d = day(&mut rng);
            write_invoice(
                &mut ins_inv,
                &mut ins_invline,
                &mut rng,
                &mut m,
                invno,
                10_000_000 + invno,
                None,
                d,
                Parent::Missing,
                Parent::Ok,
            )?;
        }
        if rng.chance(600) {
            docno += 1;
            write_doc(&mut ins_doc, &mut rng, &mut m, docno, "CUST", cust, cust_p)?;
        }
        for (q, qp) in &quotes {
            if rng.chance(100) {
                docno += 1;
                write_doc(&mut ins_doc, &mut rng, &mut m, docno, "QUOTE", *q, *qp)?;
            }
        }
    }

    // Report layouts are never migrated; webhooks and settings have their own rules.
    for id in 1..=(5 + n / 500) {
        tx.execute(
            "INSERT INTO LAYOUT VALUES (?1, ?2, ?3)",
            params![id, format!("Faktura {id}"), "<layout version=\"3\"/>"],
        )?;
        m.add("layout", &Outcome::Excluded("not_supported_in_v2"));
    }
    let hooks = [
        ("https://erp.kunde.no/hooks/order", "ORDER_CREATED", true),
        ("http://intranett.local/order-done", "ORDER_DONE", false),
        ("https://regnskap.no/api/invoice", "INVOICE_SENT", true),
        ("HTTP://gammel.server/faktura", "INVOICE_SENT", false),
        ("https://lager.kunde.no/job", "ORDER_DONE", true),
        ("https://crm.kunde.no/new", "ORDER_CREATED", true),
    ];
    for (i, (url, ev, ok)) in hooks.iter().enumerate() {
        tx.execute("INSERT INTO WEBHOOK VALUES (?1, ?2, ?3, ?4)", params![i + 1, url, ev, "Y"])?;
        m.add("webhook", &if *ok { Outcome::Migrated } else { Outcome::Rejected("insecure_url") });
    }
    let settings = [
        ("COMPANY_NAME", "Trykkeriet AS", true),
        ("COMPANY_VATNO", "NO 987654321 MVA", true),
        ("DEFAULT_CURRENCY", "NOK", true),
        ("INVOICE_DUE_DAYS", "14", true),
        ("INVOICE_FOOTER", "Takk for handelen", true),
        ("DEFAULT_PAYTERMS", "14D", true),
        ("TIMEZONE", "Europe/Oslo", true),
        ("LANGUAGE", "nb", true),
        ("PRINTER_PORT", "LPT1", false),
        ("FAX_MODEM", "COM2", false),
        ("LAST_BACKUP_TAPE", "T-0042", false),
        ("SCREEN_COLORS", "green", false),
    ];
    for (k, v, known) in settings {
        tx.execute("INSERT INTO SETTINGS VALUES (?1, ?2)", params![k, v])?;
        m.add("setting", &if known { Outcome::Migrated } else { Outcome::Excluded("unknown_setting") });
    }
    Ok(m)
}

#[allow(clippy::too_many_arguments)]
fn write_invoice(
    ins_inv: &mut rusqlite::Statement<'_>,
    ins_line: &mut rusqlite::Statement<'_>,
    rng: &mut Rng,
    m: &mut Manifest,
    invno: u64,
    custno: u64,
    jobno: Option<u64>,
    day: Date,
    cust_p: Parent,
    job_p: Parent,
) -> rusqlite::Result<()> {
    let bad_date_i = rng.chance(10);
    let mismatch = rng.chance(20);
    let lines = 1 + rng.below(4);
    let mut sum = 0.0f64;
    let mut rows = Vec::new();
    for line in 1..=lines {
        let (qty, price) = ((1 + rng.below(10)) as f64, rng.money(900));
        sum += qty * price;
        rows.push((line, qty, price));
    }
    let total = (sum * 100.0).round() / 100.0 + if mismatch { 100.0 } else { 0.0 };
    let due = day.saturating_add(Duration::days(14));
    let dtxt = if bad_date_i { bad_date(rng) } else { date_text(day, rng) };
    let due_txt = date_text(due, rng);
    ins_inv.execute(params![
        invno,
        custno,
        jobno,
        dtxt,
        due_txt,
        *rng.pick(&["NOK", "NOK", "SEK", "EUR"]),
        *rng.pick(&["SENT", "PAID", "PAID", "DRAFT", "CREDIT"]),
        total,
        (total * 25.0).round() / 100.0
    ])?;
    let o = through(cust_p).or_else(|| through(job_p)).unwrap_or(if bad_date_i {
        Outcome::Rejected("invalid_date")
    } else if mismatch {
        Outcome::Warned("total_mismatch")
    } else {
        Outcome::Migrated
    });
    m.add("invoice", &o);
    for (line, qty, price) in rows {
        ins_line.execute(params![invno, line, "Trykksak", qty, price, *rng.pick(&["H", "H", "H", "M", "F"])])?;
        m.add("invoice_line", &through(o.as_parent()).unwrap_or(Outcome::Migrated));
    }
    Ok(())
}

fn write_doc(
    ins: &mut rusqlite::Statement<'_>,
    rng: &mut Rng,
    m: &mut Manifest,
    docno: u64,
    owner_type: &str,
    owner: u64,
    owner_p: Parent,
) -> rusqlite::Result<()> {
    let lost = rng.chance(30);
    let content: Option<Vec<u8>> =
        if lost { None } else { Some(format!("%PDF-1.4 demo document {docno} {}", rng.next()).into_bytes()) };
    ins.execute(params![docno, owner_type, owner, format!("dok{docno}.pdf"), "application/pdf", content])?;
    // Reject rules come before the owner lookup.
    let o = if lost { Outcome::Rejected("content_missing") } else { through(owner_p).unwrap_or(Outcome::Migrated) };
    m.add("document", &o);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data_and_every_case_is_planted() {
        let dir = std::env::temp_dir().join(format!("cutover-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = Spec { customers: 400, seed: 7, cutoff: DEFAULT_CUTOFF };
        let a = generate(&dir.join("a.db"), spec).unwrap();
        let b = generate(&dir.join("b.db"), spec).unwrap();
        assert_eq!(a, b);
        let dump = |p: &Path| {
            let c = Connection::open(p).unwrap();
            c.query_row(
                "SELECT group_concat(CUSTNO || NAME || COALESCE(VATNO, '') || CREATED, ';') FROM CUST",
                [],
                |r| r.get::<_, String>(0),
            )
            .unwrap()
        };
        assert_eq!(dump(&dir.join("a.db")), dump(&dir.join("b.db")));
        for (entity, key) in [
            ("customer", "excluded:deleted_in_v1"),
            ("customer", "excluded:merged_duplicate"),
            ("customer", "warned:unknown_country"),
            ("customer", "warned:invalid_email"),
            ("customer", "warned:invalid_date"),
            ("contact", "rejected:orphan"),
            ("contact", "excluded:deleted_in_v1"),
            ("job", "excluded:history_cutoff"),
            ("job", "rejected:invalid_date"),
            ("invoice", "warned:total_mismatch"),
            ("invoice", "rejected:orphan"),
            ("document", "rejected:content_missing"),
            ("layout", "excluded:not_supported_in_v2"),
            ("webhook", "rejected:insecure_url"),
            ("setting", "excluded:unknown_setting"),
        ] {
            assert!(a.entities[entity].get(key) > 0, "{entity} {key} not planted");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A record of the hostile corpus that must end in a particular bucket and reason. For a
/// duplicate key, exactly one of the records with that key ends so (which one is first is up
/// to the database: they are planted so that either order gives the same buckets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planted {
    /// v1 table.
    pub table: &'static str,
    /// Its key, as the ledger shows it.
    pub key: String,
    /// What is wrong with it.
    pub what: &'static str,
    /// `bucket:reason` it must end in, or `migrated`.
    pub outcome: &'static str,
}

/// The injection strings the hostile corpus plants in names and notes.
pub const INJECTIONS: [&str; 4] = [
    "Robert'); DROP TABLE CUST;--",
    "<script>alert('cutover')</script>",
    "\"><img src=x onerror=alert(1)>",
    "{{7*7}} ${7*7} %s%n",
];

/// Generates demo data at `path` as a legacy database that has lost its primary keys and
/// holds what twenty years of a real one do: invalid UTF-8, NULLs where v1 has no constraint,
/// a 10 MB text, negative and huge numbers, duplicate and empty keys, `0000-00-00` dates,
/// control characters, and SQL, HTML and template injection strings in names. Returns the
/// records whose outcome is known.
pub fn hostile(path: &Path, spec: Spec) -> Result<Vec<Planted>, DemoError> {
    generate(path, spec)?;
    let werr = |e: rusqlite::Error| DemoError::Write { path: path.display().to_string(), reason: e.to_string() };
    let mut conn = Connection::open(path).map_err(werr)?;
    let tx = conn.transaction().map_err(werr)?;
    // The same tables, without their keys.
    let sql: String = V1_SQL.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    for stmt in sql.split(';').map(str::trim).filter(|s| s.starts_with("CREATE TABLE")) {
        let Some(name) = stmt["CREATE TABLE".len()..].split('(').next().map(str::trim) else { continue };
        let mut keyless = stmt.replace(" PRIMARY KEY", "");
        if let Some(at) = keyless.find(", (") {
            // What was `, PRIMARY KEY (A, B)` is now `, (A, B)`.
            if let Some(end) = keyless[at..].find(')') {
                keyless.replace_range(at..=at + end, "");
            }
        }
        tx.execute_batch(&format!(
            "ALTER TABLE {name} RENAME TO {name}_keyed; {keyless}; INSERT INTO {name} SELECT * FROM {name}_keyed; DROP TABLE {name}_keyed;"
        ))
        .map_err(werr)?;
    }
    let max = |t: &str, k: &str| -> Result<i64, DemoError> {
        tx.query_row(&format!("SELECT COALESCE(MAX({k}), 0) FROM {t}"), [], |r| r.get(0)).map_err(werr)
    };
    let (cust, job, contact) = (max("CUST", "CUSTNO")?, max("JOB", "JOBNO")?, max("CONTACT", "CONTNO")?);
    let first: i64 = tx.query_row("SELECT MIN(CUSTNO) FROM CUST", [], |r| r.get(0)).map_err(werr)?;
    let mut planted = Vec::new();
    let mut plant = |table, key: Option<i64>, what, outcome| {
        let key = key.map_or_else(|| "null".to_owned(), |k| k.to_string());
        planted.push(Planted { table, key, what, outcome });
    };
    let cust_row = "INSERT INTO CUST (CUSTNO, NAME, COUNTRY, PAYTERMS, CURRENCY, STATUS, CREATED, NOTE, CREDITLIMIT) \
                    VALUES (?1, ?2, 'Norway', '30D', 'NOK', 'A', '2024-01-02', ?3, ?4)";
    let ins = |key: Option<i64>, name: Option<&str>, note: Option<&str>, limit: Option<f64>| {
        tx.execute(cust_row, rusqlite::params![key, name, note, limit]).map(|_| ()).map_err(werr)
    };
    // A second customer with the first one's number.
    ins(Some(first), Some("Second With The Same Number AS"), None, None)?;
    plant("CUST", Some(first), "the same key as another customer", "rejected:duplicate_key");
    ins(None, Some(INJECTIONS[1]), None, None)?;
    plant("CUST", None, "no key", "rejected:missing_key");
    ins(Some(cust + 1), None, None, None)?;
    plant("CUST", Some(cust + 1), "no name (NULL where v1 has no constraint)", "rejected:missing_value");
    tx.execute("INSERT INTO CUST (CUSTNO, NAME, PAYTERMS, CURRENCY, STATUS) VALUES (?1, CAST(X'4fc328e2' AS TEXT), '30D', 'NOK', 'A')", [cust + 2])
        .map_err(werr)?;
    plant("CUST", Some(cust + 2), "a name that is not UTF-8", "rejected:invalid_value");
    let big = "x".repeat(10 << 20);
    ins(Some(cust + 3), Some("Ten Megabytes AS"), Some(&big), Some(50_000.0))?;
    plant("CUST", Some(cust + 3), "a 10 MB note", "migrated");
    for (i, name) in INJECTIONS.iter().enumerate() {
        let key = cust + 4 + i as i64;
        ins(Some(key), Some(name), Some(name), Some(-1.0))?;
        plant("CUST", Some(key), "an injection string for a name", "migrated");
    }
    ins(Some(cust + 10), Some("Ctrl\u{1}\u{7}\u{1b}[31mred\u{7f} AS"), None, Some(1.0e300))?;
    plant(
        "CUST",
        Some(cust + 10),
        "control characters in the name, a credit limit of 1e300",
        "rejected:invalid_number",
    );
    ins(Some(cust + 11), Some("Nul\0byte AS"), None, None)?;
    plant("CUST", Some(cust + 11), "a NUL character in the name", "rejected:invalid_value");
    ins(Some(i64::MAX), Some("Largest Key AS"), None, Some(-5_000.0))?;
    plant("CUST", Some(i64::MAX), "the largest key and a negative credit limit", "migrated");
    tx.execute(
        "INSERT INTO CUST (CUSTNO, NAME, PAYTERMS, CURRENCY, STATUS, CREATED) VALUES (?1, 'Zero Date AS', '30D', 'NOK', 'A', '0000-00-00')",
        [cust + 12],
    )
    .map_err(werr)?;
    plant("CUST", Some(cust + 12), "a 0000-00-00 creation date", "warned:invalid_date");
    // Orders and contacts with the same kinds of trouble.
    let job_row = "INSERT INTO JOB (JOBNO, CUSTNO, TITLE, ORDERDATE, DUEDATE, STATUS, QTY, PAGES, FORMAT, COLORS, PRICE) \
                   VALUES (?1, ?2, ?3, ?4, '2026-12-01', '20', ?5, 8, 'A4', '4+4', ?6)";
    tx.execute(job_row, rusqlite::params![job + 4, first, "zero order date", "0000-00-00", 100, 10.0]).map_err(werr)?;
    plant("JOB", Some(job + 4), "a 0000-00-00 order date", "rejected:invalid_date");
    tx.execute(job_row, rusqlite::params![job + 1, first, "an order", "2026-01-05", 1, 1.0]).map_err(werr)?;
    tx.execute(job_row, rusqlite::params![job + 2, Option::<i64>::None, INJECTIONS[2], "2026-01-05", 100, 10.0])
        .map_err(werr)?;
    plant("JOB", Some(job + 2), "no customer (NULL)", "rejected:orphan");
    tx.execute(job_row, rusqlite::params![job + 3, first, INJECTIONS[0], "2026-01-05", i64::MAX, -5.0e9])
        .map_err(werr)?;
    plant("JOB", Some(job + 3), "the largest quantity and a negative price", "migrated");
    tx.execute(job_row, rusqlite::params![job + 1, first, "the same number again", "2026-01-05", 1, 1.0])
        .map_err(werr)?;
    plant("JOB", Some(job + 1), "the same key as another order", "rejected:duplicate_key");
    tx.execute(
        "INSERT INTO CONTACT (CONTNO, CUSTNO, NAME, EMAIL, PHONE, PRIMARY_YN) VALUES (?1, ?2, ?3, ?4, NULL, 'N')",
        rusqlite::params![contact + 1, 999_999_999, INJECTIONS[3], "<b>@x"],
    )
    .map_err(werr)?;
    plant("CONTACT", Some(contact + 1), "a customer that does not exist", "rejected:orphan");
    tx.commit().map_err(werr)?;
    Ok(planted)
}

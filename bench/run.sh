#!/usr/bin/env bash
# The go-live benchmark: cutover against the tools a vendor would pick instead, on the TPC-H
# pack (packs/tpch), on this machine, in one run. Every figure is the median of --reps runs,
# and every ratio compares two figures measured side by side in this run.
#
#   bench/run.sh [--scale SF] [--reps N]        (defaults: scale 0.5, 3 repetitions)
#
# Writes bench/results.json and the table in docs/benchmarks.md. Installs what it needs
# (tpchgen-cli and reladiff from PyPI, pgloader from Debian). PostgreSQL at $CUTOVER_BENCH_PG
# (default postgres://postgres@127.0.0.1:5432/postgres); it creates and drops its own databases.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
SCALE=0.5
REPS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    *) echo "usage: bench/run.sh [--scale SF] [--reps N]" >&2; exit 2 ;;
  esac
done
PG="${CUTOVER_BENCH_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
PGBASE="${PG%/*}"

# ------------------------------------------------------------------ tools
need_apt=()
command -v pgloader >/dev/null || need_apt+=(pgloader)
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
command -v psql >/dev/null || need_apt+=(postgresql-client)
[ -x /usr/bin/time ] || need_apt+=(time)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore tpchgen-cli 'reladiff[postgresql]' >/dev/null
cargo build --release -q -p cutover
BIN="$ROOT/target/release/cutover"
# The code measured is the code built now: report.py records it, whatever changes meanwhile.
CUTOVER_BENCH_CODE="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || true)"
if [ -n "$CUTOVER_BENCH_CODE" ] && [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no -- crates packs bench/run.sh bench/lib.sh)" ]; then
  CUTOVER_BENCH_CODE="$CUTOVER_BENCH_CODE with uncommitted changes"
fi
export CUTOVER_BENCH_CODE

WORK="$(mktemp -d)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
DBS=(cutover_bench_v2 cutover_bench_pgloader cutover_bench_copy cutover_bench_floor)
cleanup() {
  for d in "${DBS[@]}"; do psql "$PG" -qc "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
fresh_db() { psql "$PG" -qc "DROP DATABASE IF EXISTS $1" -qc "CREATE DATABASE $1" >/dev/null 2>&1; }

# ------------------------------------------------------------------ data
TABLES=(region nation supplier part partsupp customer orders lineitem)
echo "generating TPC-H at scale $SCALE"
tpch_v1 "$SCALE"
V1="$WORK/v1.db"
ROWS=$(for t in "${TABLES[@]}"; do sqlite3 "$V1" "SELECT COUNT(*) FROM ${t^^}"; done | paste -sd+ | bc)
echo "v1: $ROWS rows, $(du -h "$V1" | cut -f1)"

RESULTS="$WORK/results.tsv"  # name, rep, seconds, peak KiB
: >"$RESULTS"
# name, rep, whether the final migration took the operator's preview as kept (v2's change stamp
# unchanged since) rather than taking it again: report.py says how often it did.
export CUTOVER_BENCH_KEPT="$WORK/kept.tsv"
: >"$CUTOVER_BENCH_KEPT"
kept() { # name rep: of the final migration just timed (its JSON output in $WORK/out)
  local run
  run=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['run'])" "$WORK/out")
  "$BIN" report bench --run "$run" --format json |
    python3 -c "import json,sys; print(sys.argv[1], sys.argv[2], str(json.load(sys.stdin)['preview_reused']).lower(), sep='\t')" "$1" "$2" >>"$CUTOVER_BENCH_KEPT"
}
timed() { # name rep command… : wall seconds and peak RSS into $RESULTS
  local name="$1" rep="$2"; shift 2
  # Shell functions run in a bash of their own, so that /usr/bin/time can measure them.
  if [ "$(type -t "$1")" = function ]; then set -- bash -c "$1"; fi
  # Every run starts with nothing of the one before still to write: no run pays for another's
  # writeback or checkpoint.
  psql "$PG" -qc CHECKPOINT >/dev/null && sync
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" >"$WORK/out" 2>"$WORK/err" || {
    echo "$name failed:" >&2; cat "$WORK/err" >&2; exit 1
  }
  read -r secs kb <"$WORK/t"
  printf '%s\t%s\t%s\t%s\n' "$name" "$rep" "$secs" "$kb" >>"$RESULTS"
  printf '  %-28s %8.2f s %8d MiB\n' "$name" "$secs" $((kb / 1024))
}

# psql \copy of the same rows from CSV into tables with the v1 columns and no indexes.
COPY_DDL=$(sed -e 's/ REAL/ DOUBLE PRECISION/g' -e 's/INTEGER PRIMARY KEY/BIGINT/g' -e 's/, PRIMARY KEY ([A-Z_, ]*)//' "$ROOT/packs/tpch/v1.sql")
copy_all() {
  for t in $TABLES_LIST; do echo "\\copy $t FROM '$WORK/csv/$t.csv' WITH (FORMAT csv, HEADER true)"; done |
    psql "$PGBASE/cutover_bench_copy" -q -v ON_ERROR_STOP=1
}
sqlite_copy() {
  rm -f "$WORK/copy.db"
  {
    echo "ATTACH '$V1' AS v1;"
    for t in $TABLES_LIST; do echo "CREATE TABLE ${t^^} AS SELECT * FROM v1.${t^^};"; done
  } | sqlite3 "$WORK/copy.db"
}

# PostgreSQL's own tools producing the same v2: the rows cutover maps (exported once
# as CSV) with `psql \copy` into the v2 tables without keys, then building the v2 schema's
# keys, unique constraints and foreign keys (pg_dump's post-data), as any tool producing this v2 must.
V2TABLES=(region nation supplier part part_supplier customer sales_order order_line)
cp "$V1" "$WORK/v1-run.db"
fresh_db cutover_bench_v2
new_project "$PGBASE/cutover_bench_v2"
"$BIN" migrate bench --first --json >/dev/null
mkdir -p "$WORK/v2csv"
for t in account "${V2TABLES[@]}"; do
  psql "$PGBASE/cutover_bench_v2" -qc "\\copy $t TO '$WORK/v2csv/$t.csv' WITH (FORMAT csv)"
done
pg_dump -s --section=pre-data -T cutover_state "$PGBASE/cutover_bench_v2" >"$WORK/v2-pre.sql"
pg_dump -s --section=post-data -T cutover_state "$PGBASE/cutover_bench_v2" >"$WORK/v2-post.sql"
floor_load() {
  {
    for t in account $V2TABLES_LIST; do echo "\copy $t FROM '$WORK/v2csv/$t.csv' WITH (FORMAT csv)"; done
    cat "$WORK/v2-post.sql"
  } | psql "$PGBASE/cutover_bench_floor" -q -v ON_ERROR_STOP=1 >/dev/null
}

# sqlite3 producing the same v2: the rows cutover mapped (the v2 file of the run just before),
# copied into the same tables without their indexes by INSERT … SELECT (same columns and
# checks, so SQLite copies each record as it is stored, without decoding or checking it: the
# fastest way SQLite has), then the v2 indexes built. No row state, no reading of v1.
sqlite_floor_prepare() {
  sqlite3 "$WORK/v2.db" "SELECT sql || ';' FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name <> 'cutover_state'" >"$WORK/sqlite-post.sql"
  rm -f "$WORK/floor.db"
  sqlite3 "$WORK/v2.db" "SELECT sql || ';' FROM sqlite_master WHERE type = 'table' AND name <> 'cutover_state'" | sqlite3 "$WORK/floor.db"
}
sqlite_floor() {
  {
    echo "ATTACH '$WORK/v2.db' AS v2; BEGIN;"
    for t in account $V2TABLES_LIST; do echo "INSERT INTO main.$t SELECT * FROM v2.$t;"; done
    cat "$WORK/sqlite-post.sql"
    echo "COMMIT;"
  } | sqlite3 -bail "$WORK/floor.db"
}

export -f copy_all sqlite_copy floor_load sqlite_floor
export WORK V1 PGBASE BIN
export TABLES_LIST="${TABLES[*]}" V2TABLES_LIST="${V2TABLES[*]}"
for rep in $(seq 1 "$REPS"); do
  echo "repetition $rep of $REPS"
  cp "$V1" "$WORK/v1-run.db"
  fresh_db cutover_bench_v2
  new_project "$PGBASE/cutover_bench_v2"
  timed "cutover first SQLite→PG" "$rep" "$BIN" migrate bench --first --json
  fresh_db cutover_bench_pgloader
  # Its default of 100,000 prefetched rows ran out of its 1 GiB heap here in one run of three.
  timed "pgloader SQLite→PG" "$rep" pgloader --quiet --with "prefetch rows = 25000" "sqlite://$V1" "$PGBASE/cutover_bench_pgloader"
  fresh_db cutover_bench_copy
  echo "$COPY_DDL" | psql "$PGBASE/cutover_bench_copy" -q
  timed "psql \\copy CSV→PG" "$rep" copy_all
  fresh_db cutover_bench_floor
  psql "$PGBASE/cutover_bench_floor" -q -v ON_ERROR_STOP=1 -f "$WORK/v2-pre.sql" >/dev/null
  timed "psql \\copy of the mapped v2 rows + v2 keys" "$rep" floor_load
  rm -f "$WORK/v2.db"
  new_project "$WORK/v2.db"
  timed "cutover first SQLite→SQLite" "$rep" "$BIN" migrate bench --first --json
  timed "sqlite3 ATTACH copy" "$rep" sqlite_copy
  sqlite_floor_prepare
  timed "sqlite3 of the mapped v2 rows + v2 keys" "$rep" sqlite_floor
  # The embedded default's go-live window: 1 % of v1 changed, the operator's preview of the
  # SQLite v2, then the final migration into it.
  ready_for_final $((ROWS / 100))
  timed "cutover overwrite preview, SQLite v2" "$rep" "$BIN" preview bench --json
  id=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['id'])" "$WORK/out")
  timed "cutover final into SQLite v2, 1 % changed" "$rep" "$BIN" migrate bench --final --ack-overwrite "$id" --json
  kept "cutover final into SQLite v2, 1 % changed" "$rep"
done

# ------------------------------------------------------------------ verify vs reladiff
# 0.1 % of the v2 rows change (order lines' comments) after the first migration into PostgreSQL.
cp "$V1" "$WORK/v1-run.db"
fresh_db cutover_bench_v2
new_project "$PGBASE/cutover_bench_v2"
"$BIN" migrate bench --first --json >/dev/null
V2DB="$PGBASE/cutover_bench_v2"
export V2DB
CHANGED=$((ROWS / 1000))
# reladiff compares two copies of each v2 table in one database (its joindiff: one SQL join
# per table, the fastest way it has); the copies are taken before the change.
for t in "${V2TABLES[@]}"; do psql "$V2DB" -qc "CREATE TABLE snap_$t AS SELECT * FROM $t" >/dev/null; done
psql "$V2DB" -qc "UPDATE order_line SET comment = coalesce(comment, '') || ' (edited in v2)' WHERE id IN (SELECT id FROM order_line ORDER BY legacy_ref LIMIT $CHANGED)" >/dev/null
psql "$V2DB" -qc "VACUUM ANALYZE" >/dev/null
verify_run() { # exit code 5: differences found, which is the point here
  "$BIN" verify bench --sample 0 --json || [ $? = 5 ]
}
reladiff_all() {
  # reladiff knows the postgresql:// scheme only, and logs its errors with exit code 0.
  for t in $V2TABLES_LIST; do
    reladiff "postgresql://${V2DB#*://}" "snap_$t" "$t" -k id -c '%' -j 2 --assume-unique-key --json \
      >>"$WORK/reladiff.jsonl" 2>"$WORK/reladiff.err"
    if grep -q ERROR "$WORK/reladiff.err"; then cat "$WORK/reladiff.err" >&2; return 1; fi
  done
}
export -f verify_run reladiff_all
for rep in $(seq 1 "$REPS"); do
  : >"$WORK/reladiff.jsonl"
  timed "cutover verify (row level)" "$rep" verify_run
  cp "$WORK/out" "$WORK/verify.json"
  timed "reladiff (joindiff, 2 threads)" "$rep" reladiff_all
done
VERIFY_FOUND=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['report']['differences_total'])" "$WORK/verify.json")
# Its JSON lines may wrap; the differing keys are the ids after each "-" or "+".
RELADIFF_FOUND=$(python3 -c "import re,sys; print(len(set(re.findall(r'\[\"[-+]\",\s*\[\"([0-9a-f-]{36})\"', open(sys.argv[1]).read()))))" "$WORK/reladiff.jsonl")
echo "  changed $CHANGED rows: cutover verify found $VERIFY_FOUND, reladiff $RELADIFF_FOUND"
if [ "$VERIFY_FOUND" != "$CHANGED" ] || [ "$RELADIFF_FOUND" != "$CHANGED" ]; then
  echo "the tools must find exactly the $CHANGED changed rows" >&2
  exit 1
fi
for t in "${V2TABLES[@]}"; do psql "$V2DB" -qc "DROP TABLE snap_$t" >/dev/null; done

# ------------------------------------------------------------------ go-live, v2 edited, server busy
# Once, on the verify run's v2, edited as a customer would in the parallel phase: the order lines
# changed above, and 20 more deleted. 1 % of v1 changes, the operator takes the preview, and
# another database of the server is written before the final migration: the server's change
# stamp moves, so the run counts the account's rows again to take the preview as kept.
V1CHANGED=$((ROWS / 100))
psql "$V2DB" -qc "DELETE FROM order_line WHERE id IN (SELECT id FROM order_line ORDER BY legacy_ref DESC LIMIT 20)" >/dev/null
ready_for_final "$V1CHANGED"
timed "cutover overwrite preview, v2 edited" 1 "$BIN" preview bench --json
id=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['id'])" "$WORK/out")
psql "$PGBASE/postgres" -qc "CREATE TEMP TABLE written_elsewhere (x integer)" >/dev/null
timed "cutover final, v2 edited, server busy" 1 "$BIN" migrate bench --final --ack-overwrite "$id" --json
kept "cutover final, v2 edited, server busy" 1

# ------------------------------------------------------------------ final migration
# 1 % of the v1 rows change (order lines' comments), then the final migration.
FINAL_V2DB="$V2DB"
for rep in $(seq 1 "$REPS"); do
  cp "$V1" "$WORK/v1-run.db"
  fresh_db cutover_bench_v2
  new_project "$FINAL_V2DB"
  # Timed too: the final migration's share of a first migration taken minutes before it, as well
  # as of the first migrations' median above (the machine's speed can change within a run).
  timed "cutover first SQLite→PG, before the final" "$rep" "$BIN" migrate bench --first --json
  ready_for_final "$V1CHANGED"
  timed "cutover overwrite preview" "$rep" "$BIN" preview bench --json
  id=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['id'])" "$WORK/out")
  timed "cutover final, 1 % changed" "$rep" "$BIN" migrate bench --final --ack-overwrite "$id" --json
  kept "cutover final, 1 % changed" "$rep"
done

# ------------------------------------------------------------------ results
python3 "$ROOT/bench/report.py" "$RESULTS" "$ROOT/bench/results.json" "$ROOT/docs/benchmarks.md" \
  "$SCALE" "$REPS" "$ROWS" "$CHANGED" "$VERIFY_FOUND" "$RELADIFF_FOUND" "$V1CHANGED"

#!/usr/bin/env bash
# Benchmark of the migration engine: a generated Omikai 1 database (default 20 000 customers,
# about 1.07 M rows) taken through the real CLI (engine + ledger into the control-plane store),
# SQLite→SQLite and SQLite→PostgreSQL: first migration, row-level verify, then 1 % of the v1
# rows change and the overwrite preview and the final migration run. Reports wall time, v1
# rows/s and peak RSS, and as the reference measured in the same run: sqlite3 reading every
# v1 row to /dev/null.
#
#   bench/engine.sh [CUSTOMERS]        (PostgreSQL at $CUTOVER_BENCH_PG, default postgres://postgres@127.0.0.1:5432/postgres)
set -euo pipefail
cd "$(dirname "$0")/.."
CUSTOMERS="${1:-20000}"
PG="${CUTOVER_BENCH_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo build --release -q -p cutover
BIN="$PWD/target/release/cutover"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"; psql "$PG" -qc "DROP DATABASE IF EXISTS cutover_bench_v2" >/dev/null 2>&1 || true' EXIT

"$BIN" demo-data --customers "$CUSTOMERS" --seed 1 --out "$WORK/v1.db" >/dev/null
ROWS=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(sum(e['read'] for e in m['entities'].values()))" "$WORK/v1.db.manifest.json")
CUTOFF=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['cutoff'])" "$WORK/v1.db.manifest.json")
echo "v1: $ROWS rows ($CUSTOMERS customers), $(du -h "$WORK/v1.db" | cut -f1)"

# Reference: sqlite3 reading every row of every v1 table.
TABLES=$(sqlite3 "$WORK/v1.db" "SELECT name FROM sqlite_master WHERE type='table'")
ref_start=$(date +%s.%N)
for t in $TABLES; do sqlite3 -csv "$WORK/v1.db" "SELECT * FROM \"$t\"" >/dev/null; done
ref_end=$(date +%s.%N)
REF=$(python3 -c "print(f'{$ref_end - $ref_start:.2f}')")

timed() { # label command… → prints seconds, keeps peak KiB in $WORK/kb
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" >/dev/null
  read -r secs kb <"$WORK/t"
  echo "$kb" >"$WORK/kb"
  echo "$secs"
}

run_one() { # name v2-url
  local name="$1" v2="$2" store="$WORK/store-$1.db" v1="$WORK/v1-$1.db"
  cp "$WORK/v1.db" "$v1"
  export CUTOVER_DB="$store" CUTOVER_USER=vera@bench.example
  "$BIN" init --email vera@bench.example --name Vera >/dev/null
  "$BIN" user add --email cora@acme.example --name Cora --party customer --org Acme --role admin >/dev/null
  "$BIN" project create bench --org Acme --name Bench --v1 "$v1" --v2 "$v2" >/dev/null
  "$BIN" scope set bench --cutoff "$CUTOFF" >/dev/null
  for k in migration license; do
    "$BIN" contract sign bench --kind "$k" >/dev/null
    "$BIN" contract sign bench --kind "$k" --as cora@acme.example >/dev/null
  done
  first=$(timed "$BIN" migrate bench --first --json); first_kb=$(cat "$WORK/kb")
  verify=$(timed "$BIN" verify bench --sample 0); verify_kb=$(cat "$WORK/kb")
  # 1 % of the v1 rows change before the final migration.
  sqlite3 "$v1" "UPDATE JOB SET TITLE = TITLE || ' (rev)' WHERE rowid IN (SELECT rowid FROM JOB ORDER BY JOBNO LIMIT $((ROWS / 100)))"
  "$BIN" checklist show bench --json | python3 -c "import json,sys; [print(i['id'], i['kind']) for i in json.load(sys.stdin)['items'] if i['status'] != 'passed']" | while read -r id kind; do
    if [ "$kind" = vendor ]; then "$BIN" checklist set bench "$id" --status passed >/dev/null; else "$BIN" checklist set bench "$id" --status passed --as cora@acme.example >/dev/null; fi
  done
  "$BIN" checklist accept bench >/dev/null; "$BIN" checklist accept bench --as cora@acme.example >/dev/null
  "$BIN" contract sign bench --kind go-live >/dev/null; "$BIN" contract sign bench --kind go-live --as cora@acme.example >/dev/null
  preview=$(timed "$BIN" preview bench)
  id=$("$BIN" preview bench --json | python3 -c "import json,sys; print(json.load(sys.stdin)['id'])")
  final=$(timed "$BIN" migrate bench --final --ack-overwrite "$id" --json); final_kb=$(cat "$WORK/kb")
  python3 - "$name" "$ROWS" "$REF" "$first" "$first_kb" "$verify" "$verify_kb" "$preview" "$final" "$final_kb" <<'PY'
import sys
name, rows, ref = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
first, fkb, verify, vkb, preview, final, fikb = map(float, sys.argv[4:11])
print(f"| {name}: first migration | {first:.2f} s | {rows/first:,.0f} rows/s | {fkb/1024:.0f} MiB | {first/ref:.2f}x |")
print(f"| {name}: verify (row level) | {verify:.2f} s | {rows/verify:,.0f} rows/s | {vkb/1024:.0f} MiB | {verify/ref:.2f}x |")
print(f"| {name}: preview | {preview:.2f} s | - | - | {preview/ref:.2f}x |")
print(f"| {name}: final migration, 1 % of v1 changed | {final:.2f} s ({final/first:.0%} of the first) | {rows/final:,.0f} rows/s | {fikb/1024:.0f} MiB | {final/ref:.2f}x |")
PY
}

echo
echo "| run | wall | v1 rows/s | peak RSS | wall / reference |"
echo "|---|---|---|---|---|"
echo "| reference: sqlite3 reads every v1 row | $REF s | $(python3 -c "print(f'{$ROWS/$REF:,.0f}')") rows/s | - | 1.00x |"
run_one "SQLite→SQLite" "$WORK/v2.db"
psql "$PG" -qc "DROP DATABASE IF EXISTS cutover_bench_v2" -qc "CREATE DATABASE cutover_bench_v2" >/dev/null
run_one "SQLite→PostgreSQL" "${PG%/*}/cutover_bench_v2"

#!/usr/bin/env bash
# Benchmark of the migration engine: a generated Omikai 1 database (default 20 000 customers,
# about 1.06 M rows) migrated through the real CLI (engine + ledger into the control-plane
# store), SQLite→SQLite and SQLite→PostgreSQL. Reports wall time, v1 rows/s and peak RSS, and
# as the reference measured in the same run: sqlite3 reading every v1 row to /dev/null.
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

run_one() { # name v2-url
  local name="$1" v2="$2" store="$WORK/store-$1.db"
  export CUTOVER_DB="$store" CUTOVER_USER=vera@bench.example
  "$BIN" init --email vera@bench.example --name Vera >/dev/null
  "$BIN" user add --email cora@acme.example --name Cora --party customer --org Acme --role admin >/dev/null
  "$BIN" project create bench --org Acme --name Bench --v1 "$WORK/v1.db" --v2 "$v2" >/dev/null
  "$BIN" scope set bench --cutoff "$CUTOFF" >/dev/null
  for k in migration license; do
    "$BIN" contract sign bench --kind "$k" >/dev/null
    "$BIN" contract sign bench --kind "$k" --as cora@acme.example >/dev/null
  done
  /usr/bin/time -f "%e %M" -o "$WORK/time-$name" "$BIN" migrate bench --first --json >"$WORK/out-$name.json"
  read -r secs kb <"$WORK/time-$name"
  python3 - "$name" "$secs" "$kb" "$ROWS" "$REF" <<'PY'
import sys
name, secs, kb, rows, ref = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
print(f"| {name} | {secs:.2f} s | {rows/secs:,.0f} rows/s | {kb/1024:.0f} MiB | {secs/ref:.2f}x |")
PY
}

echo
echo "| run | wall | v1 rows/s | peak RSS | wall / reference |"
echo "|---|---|---|---|---|"
echo "| reference: sqlite3 reads every v1 row | $REF s | $(python3 -c "print(f'{$ROWS/$REF:,.0f}')") rows/s | - | 1.00x |"
run_one "SQLite→SQLite" "$WORK/v2.db"
psql "$PG" -qc "DROP DATABASE IF EXISTS cutover_bench_v2" -qc "CREATE DATABASE cutover_bench_v2" >/dev/null
run_one "SQLite→PostgreSQL" "${PG%/*}/cutover_bench_v2"

#!/usr/bin/env bash
# Peak RSS of each cutover step at one TPC-H scale, for the "under 300 MiB at every scale"
# target: run.sh measures time at one scale; this measures memory at others, cutover only.
#
#   bench/rss.sh [--scale SF] [--bin PATH]      (defaults: scale 1, target/release/cutover)
#
# Prints one line per step: the step, its wall time and its peak RSS. PostgreSQL at
# $CUTOVER_BENCH_PG (default postgres://postgres@127.0.0.1:5432/postgres); it creates and
# drops its own database.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
SCALE=1
BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    *) echo "usage: bench/rss.sh [--scale SF] [--bin PATH]" >&2; exit 2 ;;
  esac
done
PG="${CUTOVER_BENCH_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
PGBASE="${PG%/*}"
for c in sqlite3 psql /usr/bin/time; do
  command -v "$c" >/dev/null || { echo "bench/rss.sh needs $c (bench/run.sh installs it)" >&2; exit 2; }
done
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore tpchgen-cli >/dev/null
if [ -z "$BIN" ]; then cargo build --release -q -p cutover; BIN="$ROOT/target/release/cutover"; fi

WORK="$(mktemp -d)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
V2DB=cutover_bench_rss
cleanup() { psql "$PG" -qc "DROP DATABASE IF EXISTS $V2DB" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

echo "generating TPC-H at scale $SCALE"
tpch_v1 "$SCALE"
V1="$WORK/v1.db"
rm -rf "$WORK/csv"

step() { # name command…
  local name="$1"; shift
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" >"$WORK/out" 2>"$WORK/err" || {
    echo "$name failed:" >&2; cat "$WORK/err" >&2; exit 1
  }
  read -r secs kb <"$WORK/t"
  printf '  %-28s %8.2f s %8d MiB\n' "$name" "$secs" $((kb / 1024))
}
echo "v1: $(du -h "$V1" | cut -f1); peak RSS of each step:"
cp "$V1" "$WORK/v1-run.db"
new_project "$WORK/v2.db"
step "first SQLite→SQLite" "$BIN" migrate bench --first --json
# The parallel phase: the customer edits 500 order lines in v2 and deletes 20.
EDIT="UPDATE order_line SET comment = comment || ' (v2)' WHERE id IN (SELECT id FROM order_line ORDER BY random() LIMIT 500); \
DELETE FROM order_line WHERE id IN (SELECT id FROM order_line ORDER BY random() LIMIT 20);"
sqlite3 "$WORK/v2.db" "$EDIT"
CHANGED=$(sqlite3 "$WORK/v1-run.db" "SELECT (SELECT COUNT(*) FROM LINEITEM) / 100")
ready_for_final "$CHANGED"
step "preview, SQLite v2 edited" "$BIN" preview bench --json
id=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['id'])" "$WORK/out")
step "final into SQLite v2, 1 % changed" "$BIN" migrate bench --final --ack-overwrite "$id" --json
rm -f "$WORK/v2.db"
psql "$PG" -qc "DROP DATABASE IF EXISTS $V2DB" -qc "CREATE DATABASE $V2DB" >/dev/null 2>&1
cp "$V1" "$WORK/v1-run.db"
new_project "$PGBASE/$V2DB"
step "first SQLite→PG" "$BIN" migrate bench --first --json
# Exit code 5 says differences were found; none are expected here.
step "verify (row level)" "$BIN" verify bench --sample 0 --json
# 1 % of the v1 rows change, as in run.sh, then the gates of a final migration are passed.
ready_for_final "$CHANGED"
psql "$PGBASE/$V2DB" -qc "$EDIT" >/dev/null
step "preview, v2 edited" "$BIN" preview bench --json
id=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['id'])" "$WORK/out")
step "final, 1 % changed" "$BIN" migrate bench --final --ack-overwrite "$id" --json

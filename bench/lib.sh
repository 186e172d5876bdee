# Shared by bench/run.sh and bench/rss.sh (sourced): the TPC-H v1 file and the cutover
# project steps both scripts take. Expects ROOT, WORK and BIN to be set.

# tpch_v1 SCALE: TPC-H CSV files in $WORK/csv, loaded into the legacy SQLite v1 at $WORK/v1.db.
tpch_v1() {
  tpchgen-cli csv -s "$1" --output-dir "$WORK/csv" >/dev/null
  sqlite3 "$WORK/v1.db" <"$ROOT/packs/tpch/v1.sql"
  {
    echo "PRAGMA journal_mode=OFF;"
    for t in region nation supplier part partsupp customer orders lineitem; do
      echo ".import --csv --skip 1 $WORK/csv/$t.csv ${t^^}"
    done
  } | sqlite3 "$WORK/v1.db" >/dev/null
}

# new_project V2: a fresh control-plane store with a project on the tpch pack over
# $WORK/v1-run.db, contracts signed.
new_project() {
  export CUTOVER_DB="$WORK/store.db" CUTOVER_USER=vera@bench.example CUTOVER_RECOVERY="$WORK/recovery"
  rm -rf "$CUTOVER_DB" "$CUTOVER_RECOVERY"
  "$BIN" init --email vera@bench.example --name Vera >/dev/null
  "$BIN" user add --email cora@acme.example --name Cora --party customer --org Acme --role admin >/dev/null
  "$BIN" project create bench --pack tpch --org Acme --name Bench --v1 "$WORK/v1-run.db" --v2 "$1" >/dev/null
  # TPC-H orders start in 1992: every record is in scope, as with the tools compared.
  "$BIN" scope set bench --cutoff 1992-01-01 >/dev/null
  for k in migration license; do
    "$BIN" contract sign bench --kind "$k" >/dev/null
    "$BIN" contract sign bench --kind "$k" --as cora@acme.example >/dev/null
  done
}

# ready_for_final N: N v1 order lines' comments change, then the checklist, its acceptance and
# the go-live contract are passed by both parties, as a final migration requires.
ready_for_final() {
  sqlite3 "$WORK/v1-run.db" "UPDATE LINEITEM SET L_COMMENT = L_COMMENT || ' (rev)' WHERE rowid IN (SELECT rowid FROM LINEITEM ORDER BY random() LIMIT $1)"
  "$BIN" checklist show bench --json | python3 -c "import json,sys; [print(i['id'], i['kind']) for i in json.load(sys.stdin)['items'] if i['status'] != 'passed']" |
    while read -r id kind; do
      if [ "$kind" = vendor ]; then "$BIN" checklist set bench "$id" --status passed >/dev/null
      else "$BIN" checklist set bench "$id" --status passed --as cora@acme.example >/dev/null; fi
    done
  "$BIN" checklist accept bench >/dev/null
  "$BIN" checklist accept bench --as cora@acme.example >/dev/null
  "$BIN" contract sign bench --kind go-live >/dev/null
  "$BIN" contract sign bench --kind go-live --as cora@acme.example >/dev/null
}

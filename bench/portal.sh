#!/usr/bin/env bash
# Benchmark of the portal: a store with PROJECTS projects (default 1000) seeded through the
# application services, `cutover serve` on loopback, and wrk (Debian package) measuring
# latency of the dashboard and project pages as a vendor (all projects) and as a customer
# (its organisation's). The reference, measured in the same run, is the same server answering
# its static style sheet: the floor of HTTP on loopback on this machine.
#
#   bench/portal.sh [PROJECTS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
PROJECTS="${1:-1000}"
SECS="${2:-10}"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release -q -p cutover -p cutover-bench
WORK="$(mktemp -d)"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT

seed_start=$(date +%s.%N)
target/release/cutover-bench portal-seed "$WORK/cutover.db" "$PROJECTS" >/dev/null
seed_end=$(date +%s.%N)
echo "seeded $PROJECTS projects in $(python3 -c "print(f'{$seed_end - $seed_start:.1f}')") s ($(du -h "$WORK/cutover.db" | cut -f1))"

target/release/cutover --db "$WORK/cutover.db" serve --addr "127.0.0.1:$PORT" 2>"$WORK/serve.log" &
SERVER=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/login" && break; sleep 0.1; done

cookie() { # email → "cutover_session=…"
  curl -s -D - -o /dev/null -X POST -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"bench-password-1\"}" "http://127.0.0.1:$PORT/api/login" |
    tr -d '\r' | sed -n 's/^set-cookie: \(cutover_session=[^;]*\).*/\1/Ip'
}
VENDOR=$(cookie vera@vendor.example)
CUSTOMER=$(cookie admin@c00.example)
RSS_BEFORE=$(awk '/VmRSS/{print $2}' /proc/$SERVER/status)
# The first dashboard after start computes every project's summary (a cold cache); later ones
# recompute only projects whose version or day changed.
COLD=$(curl -s -o /dev/null -w '%{time_total}' -H "Cookie: $VENDOR" "http://127.0.0.1:$PORT/")
echo "first vendor dashboard after start (cold): $(python3 -c "print(f'{$COLD * 1000:.0f}')") ms"

# wrk: 2 threads, 8 connections, SECS seconds; prints p50 / p99 in ms and requests/s.
measure() { # label cookie path
  local out
  out=$(wrk -t2 -c8 -d"${SECS}s" --latency -H "Cookie: $2" "http://127.0.0.1:$PORT$3")
  python3 - "$1" "$3" "$out" <<'PY'
import re, sys
label, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[u]
lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
print(f"{label}\t{path}\t{ms(lat['50']):.2f}\t{ms(lat['99']):.2f}\t{float(rps):.0f}\t{errors.group(1) if errors else 0}")
PY
}
{
  echo -e "what\tpath\tp50 ms\tp99 ms\trequests/s\tnon-2xx"
  measure "reference: static file" "$VENDOR" /static/style.css
  measure "dashboard, vendor ($PROJECTS projects)" "$VENDOR" /
  measure "dashboard, customer ($((PROJECTS / 10)) projects)" "$CUSTOMER" /
  measure "project page" "$VENDOR" /projects/p0500
  measure "project page, customer" "$CUSTOMER" /projects/p0000
  measure "JSON: project list, vendor" "$VENDOR" /api/projects
} | tee "$WORK/results.tsv" | column -t -s $'\t'
echo "server RSS: $((RSS_BEFORE / 1024)) MiB after login, $(( $(awk '/VmHWM/{print $2}' /proc/$SERVER/status) / 1024 )) MiB peak"
python3 - "$WORK/results.tsv" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
ref = float(rows[0][3])
for r in rows[1:]:
    print(f"{r[0]}: p99 {float(r[3]):.2f} ms = {float(r[3]) / ref:.1f}x the static file's p99 ({ref:.2f} ms)")
PY

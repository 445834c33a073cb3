#!/bin/bash
# usage: scripts/cost_share.sh MODE SECONDS [ENVFILE]
# What the rate limiter and the retention janitor cost a `serve` under `bench` load, counted
# rather than inferred from throughput (which varies by ±15 % between runs on a shared machine):
#   - the limiter: py-spy samples of the server whose innermost project frame is limiter code
#     (shared_state/limits.py, web/limits.py, domain/rates.py), as a share of all samples;
#   - the janitor: the time its thread spends inside a purge step (the database busy deleting),
#     as a share of the run (py-spy --idle samples of that thread).
# A fresh PostgreSQL database gets 200,000 events dated 30 days ago, so the janitor has work.
# ENVFILE (lines VAR=VALUE) sets the limits and retention to measure, e.g.
#   REVIVATECH_LIMITS_INGEST_RATE=1000000/1m
#   REVIVATECH_RETENTION_DAYS=7
#   REVIVATECH_RETENTION_INTERVAL=5
# Needs py-spy (pip install py-spy), PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379.
set -eu
mode=$1; seconds=$2; envfile=${3:-/dev/null}
port=3313; db=cost_share; out=$(mktemp -d)
url=postgresql://postgres@127.0.0.1/$db
psql -U postgres -h 127.0.0.1 -qc "DROP DATABASE IF EXISTS $db" -qc "CREATE DATABASE $db" >/dev/null
mapfile -t extra < "$envfile"
run=(env $(env | grep -o '^REVIVATECH_[A-Z_]*' | sed 's/^/-u /') REVIVATECH_STORAGE_URL=$url
     REVIVATECH_AUTH_ADMIN_TOKENS=cost-share-token-0123456789
     REVIVATECH_REDIS_URL=redis://127.0.0.1:6379/0 REVIVATECH_REDIS_KEY_PREFIX=cost$$: "${extra[@]}")
"${run[@]}" python3 -m revivatech_actors migrate >/dev/null
psql -U postgres -h 127.0.0.1 -q $db -c "
  INSERT INTO analytics_events (event_id, user_fingerprint, session_id, event_type,
                                event_timestamp, received_at, properties, log_txn)
  SELECT gen_random_uuid(), 'old-' || (g % 5000), 'old-s-' || (g % 20000), 'page_view',
         now() - interval '30 days' + g * interval '1 ms', now() - interval '30 days', '{}', NULL
  FROM generate_series(1, 200000) g" >/dev/null

measure() {  # $1: extra py-spy flags; $2: output file
  "${run[@]}" python3 -m revivatech_actors serve --port $port > "$out/serve.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 150); do curl -sf http://127.0.0.1:$port/readyz >/dev/null && break; sleep 0.1; done
  sleep 6  # past the janitor's first pass (with retention.interval = 5)
  py-spy record --pid $pid --rate 250 --duration "$seconds" --format raw --nonblocking $1 \
    --output "$2" >/dev/null 2>&1 &
  local spy=$!
  if [ "$mode" = batch ]; then args="--mode batch --batch-size 100 --connections 16"
  else args="--mode single --connections 50"; fi
  python3 -m revivatech_actors bench --url http://127.0.0.1:$port $args --duration "$seconds" \
    --warmup 0 --json --quiet >> "$out/bench.jsonl"
  wait $spy
  kill -TERM $pid; wait $pid || true
}
measure "" "$out/busy.txt"
measure "--idle --threads" "$out/all.txt"
psql -U postgres -h 127.0.0.1 -qc "DROP DATABASE IF EXISTS $db" >/dev/null

python3 - "$out" "$seconds" <<'EOF'
import json, sys
out, seconds, rate = sys.argv[1], float(sys.argv[2]), 250
LIMITER = ("shared_state/limits.py", "web/limits.py", "domain/rates.py")

def samples(name):
    for line in open(f"{out}/{name}"):
        stack, _, n = line.rstrip().rpartition(" ")
        if n.isdigit():  # a thread name may hold spaces; its count is still last
            yield stack.split(";"), int(n)

total = limiter = 0
for frames, n in samples("busy.txt"):
    total += n
    mine = [i for i, f in enumerate(frames) if any(part in f for part in LIMITER)]
    # the limiter's own work: nothing of the project below its innermost frame (a handler it
    # wraps is the handler's cost, not the limiter's)
    if mine and not any("revivatech_actors/" in f for f in frames[mine[-1] + 1:]):
        limiter += n
purging = sum(n for frames, n in samples("all.txt") if any("purge_step" in f for f in frames))
runs = [json.loads(line) for line in open(f"{out}/bench.jsonl")]
print(f"events/s of the two runs: {', '.join(str(r['events_per_s']) for r in runs)}")
print(f"limiter: {100 * limiter / total:.2f} % of the server's CPU samples ({limiter} of {total})")
print(f"janitor: in a purge step {purging / rate:.2f} s of {seconds:g} s "
      f"({100 * purging / rate / seconds:.2f} % of the time)")
EOF
rm -rf "$out"

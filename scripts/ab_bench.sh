#!/bin/bash
# usage: scripts/ab_bench.sh MODE ROUNDS DURATION LABEL=CODE_DIR[@ENVFILE] ...   (MODE: single,
# batch or ws)
# Alternates builds per round; fresh PostgreSQL database per run. With PRELOAD=N, N events dated
# 30 days ago (log_txn NULL: history from before the log) are inserted after `migrate`, before
# serve. ENVFILE: lines VAR=VALUE for that build only. Prints one JSON line per run.
# CODE_DIR: a tree whose package imports (a git worktree needs revivatech_actors/_config ->
# ../config and revivatech_actors/_sql -> ../sql). Serve and bench logs go to /tmp/ab_*.log.
# BENCH_CODE: the tree whose bench client runs (default: each build's own).
# python3 -P: the current directory (a checkout itself, often) must not shadow PYTHONPATH.
set -u
mode=$1; rounds=$2; dur=$3; shift 3
port=${PORT:-3311}
for r in $(seq 1 "$rounds"); do
  for b in "$@"; do
    label=${b%%=*}; rest=${b#*=}; code=${rest%%@*}
    envfile=""; [ "$rest" != "$code" ] && envfile=${rest#*@}
    db="ab_${label}_$r"
    url=postgresql://postgres@127.0.0.1/$db
    psql -U postgres -h 127.0.0.1 -qc "DROP DATABASE IF EXISTS $db" \
      -qc "CREATE DATABASE $db" >/dev/null
    extra=(); [ -n "$envfile" ] && mapfile -t extra < "$envfile"
    base=(env $(env | grep -o '^REVIVATECH_[A-Z_]*' | sed 's/^/-u /')
          PYTHONPATH=$code REVIVATECH_STORAGE_URL=$url
          REVIVATECH_AUTH_ADMIN_TOKENS=ab-admin-token-0123456789
          REVIVATECH_REDIS_URL=redis://127.0.0.1:6379/0
          REVIVATECH_REDIS_KEY_PREFIX=ab$(date +%s)$r$label: "${extra[@]}")
    if [ "${PRELOAD:-0}" -gt 0 ]; then
      "${base[@]}" python3 -P -m revivatech_actors migrate >/dev/null 2>&1
      psql -U postgres -h 127.0.0.1 -q $db -c "INSERT INTO analytics_events (event_id,
          user_fingerprint, session_id, event_type, event_timestamp, received_at, properties,
          log_txn)
        SELECT gen_random_uuid(), 'old-' || (g % 5000), 'old-s-' || (g % 20000), 'page_view',
          now() - interval '30 days' + g * interval '1 ms', now() - interval '30 days', '{}', NULL
        FROM generate_series(1, ${PRELOAD}) g" >/dev/null
    fi
    "${base[@]}" python3 -P -m revivatech_actors serve --port $port > /tmp/ab_serve_$label.log 2>&1 &
    pid=$!
    for i in $(seq 1 150); do
      curl -sf http://127.0.0.1:$port/readyz >/dev/null && break; sleep 0.1
    done
    if [ "$mode" = batch ]; then
      args="--mode batch --batch-size 100 --connections 16"
    elif [ "$mode" = ws ]; then  # WebSocket fan-out: ${CLIENTS:-300} clients, ${RATE:-2000} events/s
      # in batches of ${BATCH:-100}, the clients in ${PROCESSES:-1} processes
      args="--mode ws --clients ${CLIENTS:-300} --rate ${RATE:-2000} --batch-size ${BATCH:-100}"
      args="$args --processes ${PROCESSES:-1} --token ab-admin-token-0123456789"
    else
      args="--mode single --connections 50"
    fi
    out=$(PYTHONPATH=${BENCH_CODE:-$code} python3 -P -m revivatech_actors bench \
      --url http://127.0.0.1:$port $args \
      --duration $dur --warmup 2 --json --quiet 2>/tmp/ab_bench_err_$label.log)
    left=$(psql -U postgres -h 127.0.0.1 -Atq $db -c "SELECT count(*) FROM analytics_events
      WHERE event_timestamp < now() - interval '20 days'" 2>/dev/null)
    kill -TERM $pid; wait $pid
    psql -U postgres -h 127.0.0.1 -qc "DROP DATABASE IF EXISTS $db" >/dev/null
    echo "{\"round\": $r, \"build\": \"$label\", \"mode\": \"$mode\"," \
      "\"old_left\": ${left:-null}, \"result\": ${out:-null}}"
  done
done

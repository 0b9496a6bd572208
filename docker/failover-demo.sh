#!/usr/bin/env bash
# Lockstep's failover demo on docker-compose: start three PostgreSQL servers and the demo, kill
# the principal's container under load, watch the mirror take over, then start the old principal
# again and watch it rejoin as mirror and catch up. Needs a Docker engine and docker-compose.
set -euo pipefail
cd "$(dirname "$0")"
compose() { docker-compose -f docker-compose.yml "$@"; }
export DEMO_SECONDS="${DEMO_SECONDS:-60}"

compose down -v --remove-orphans >/dev/null 2>&1 || true
compose build demo
compose up -d principal mirror witness
compose up -d demo
echo "== demo writing through Lockstep; killing the principal in 15 s"
sleep 15
compose kill -s SIGKILL principal
echo "== principal killed; the mirror takes over (see the demo's failover line)"
sleep 15
compose start principal
echo "== old principal started again; it rejoins as mirror and catches up"
compose logs -f demo &
logs=$!
code=$(docker wait "$(compose ps -q demo)")
kill "$logs" 2>/dev/null || true
echo "== demo exited with $code; report: docker/report/lockstep-demo-report.html"
exit "$code"

#!/usr/bin/env bash
# Runs the three-datacenter deployment of the disaster drills in Docker
# (deploy/docker-compose.yml): dc-a and dc-b in region-1, dc-c in region-2,
# each with a registry server, two echo instances and a caller.
#
#   scripts/drill.sh build     static binaries, then the image switchyard-drill (FROM scratch)
#   scripts/drill.sh up        build, start, wait for a leader and every caller succeeding
#   scripts/drill.sh status    members, and each caller's last seconds of calls
#   scripts/drill.sh down      stop and remove the containers and networks
#
# Needs docker and docker-compose (or docker compose). No image is pulled.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="/usr/local/go/bin:$PATH"
COMPOSE=(docker-compose)
command -v docker-compose >/dev/null || COMPOSE=(docker compose)
COMPOSE+=(-p switchyard-drill -f "$ROOT/deploy/docker-compose.yml")
log() { echo "drill: $*" >&2; }
die() { log "$*"; exit 1; }

build() {
	log "building static binaries"
	(cd "$ROOT" && for b in registry:./cmd/registry echo:./examples/echo caller:./examples/caller; do
		CGO_ENABLED=0 go build -trimpath -o "deploy/bin/${b%%:*}" "${b#*:}"
	done)
	log "building the image switchyard-drill"
	docker build -q -t switchyard-drill:latest "$ROOT" >/dev/null
}

# caller_stats DC: the caller's per-second record (JSON lines).
caller_stats() {
	local n
	case "$1" in a) n=1 ;; b) n=2 ;; c) n=3 ;; esac
	curl -sf --max-time 2 "http://172.30.$n.31:8090/stats"
}

wait_up() {
	local deadline=$((SECONDS + ${DRILL_TIMEOUT:-90})) dc last
	until curl -sf --max-time 1 http://172.30.1.11:7400/v1/cluster/leader >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "no leader after ${DRILL_TIMEOUT:-90}s; see: ${COMPOSE[*]} logs"
		sleep 0.5
	done
	for dc in a b c; do
		until last="$(caller_stats "$dc" 2>/dev/null | tail -n 2 | head -n 1)" && [[ "$last" == *'"ok":'[1-9]* ]]; do
			((SECONDS < deadline)) || die "caller-$dc not succeeding after ${DRILL_TIMEOUT:-90}s: ${last:-no stats}"
			sleep 0.5
		done
	done
	log "up: a leader, and every caller's calls succeed"
}

case "${1:-}" in
build) build ;;
up)
	build
	"${COMPOSE[@]}" up -d >&2
	wait_up
	;;
status)
	curl -sf http://172.30.1.11:7400/v1/cluster/members || true
	echo
	for dc in a b c; do echo "caller-$dc:"; caller_stats "$dc" | tail -n 3; done
	;;
down)
	# A drill interrupted mid-cut may have left its rules.
	while iptables -D DOCKER-USER -s 172.30.2.0/24 ! -d 172.30.2.0/24 -j DROP 2>/dev/null; do :; done
	while iptables -D DOCKER-USER -d 172.30.2.0/24 ! -s 172.30.2.0/24 -j DROP 2>/dev/null; do :; done
	"${COMPOSE[@]}" down -v --remove-orphans >&2
	;;
*) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

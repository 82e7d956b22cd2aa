#!/usr/bin/env bash
# Runs the three-datacenter deployment of the disaster drills in Docker
# (deploy/docker-compose.yml): dc-a and dc-b in region-1, dc-c in region-2,
# each its own Docker network with a registry server (a voter), a read server
# (asked first by the datacenter's instances and caller), two echo instances
# and a caller, routed to each other by the host (the backbone); dc-a has a
# second caller that calls grpc-echo (run by dc-b and dc-c) through xDS.
#
#   scripts/drill.sh run SCENARIO [registry drill flags]
#                              up, the drill, down; the report lands in ./drill-reports/
#                              SCENARIO: cut-datacenter, kill-leader, pause-server, kill-all-servers
#   scripts/drill.sh build     static binaries, then the image switchyard-drill (FROM scratch)
#   scripts/drill.sh up        build, start, add latency between datacenters, wait for a
#                              leader and every caller succeeding
#   scripts/drill.sh status    members, and each caller's last seconds of calls
#   scripts/drill.sh down      stop and remove the containers and networks
#
# DRILL_LATENCY (default 20ms; 0 for none) is added to every packet between
# two datacenters, so a round trip between them gains twice that: `registry
# drill latency` runs on the host from up to down and holds those packets in
# an NFQUEUE (no netem needed). Needs root, docker and docker-compose (or
# docker compose), and iptables. No image is pulled.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="/usr/local/go/bin:$PATH"
COMPOSE=(docker-compose)
command -v docker-compose >/dev/null || COMPOSE=(docker compose)
COMPOSE+=(-p switchyard-drill -f "$ROOT/deploy/docker-compose.yml")
STATE="$ROOT/.drill" # the latency process's pid and log
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

# caller_stats DC: the caller's per-second record (JSON lines); DC a-xds is
# dc-a's xDS caller.
caller_stats() {
	local n
	case "$1" in a) n=1.31 ;; b) n=2.31 ;; c) n=3.31 ;; a-xds) n=1.32 ;; esac
	curl -sf --max-time 2 "http://172.30.$n:8090/stats"
}

wait_up() {
	local deadline=$((SECONDS + ${DRILL_TIMEOUT:-90})) dc last
	until curl -sf --max-time 1 http://172.30.1.11:7400/v1/cluster/leader >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "no leader after ${DRILL_TIMEOUT:-90}s; see: ${COMPOSE[*]} logs"
		sleep 0.5
	done
	for dc in a b c; do
		# A full second of calls that all succeeded, all served by the
		# caller's own datacenter: the deployment has settled.
		until last="$(caller_stats "$dc" 2>/dev/null | tail -n 2 | head -n 1)" &&
			[[ "$last" == *'"ok":'[1-9]* && "$last" == *'"failed":0,'* && "$last" == *"\"by_datacenter\":{\"dc-$dc\":"*'}'* ]]; do
			((SECONDS < deadline)) || die "caller-$dc not succeeding after ${DRILL_TIMEOUT:-90}s: ${last:-no stats}"
			sleep 0.5
		done
	done
	# The xDS caller is served by dc-b, the nearest datacenter that runs
	# grpc-echo.
	until last="$(caller_stats a-xds 2>/dev/null | tail -n 2 | head -n 1)" &&
		[[ "$last" == *'"ok":'[1-9]* && "$last" == *'"failed":0,'* && "$last" == *'"by_datacenter":{"dc-b":'*'}'* ]]; do
		((SECONDS < deadline)) || die "caller-a-xds not succeeding through dc-b after ${DRILL_TIMEOUT:-90}s: ${last:-no stats}"
		sleep 0.5
	done
	log "up: a leader, and every caller's calls succeed"
}

# backbone -I|-D opens (or closes) the host's routes between the three
# datacenters' networks: Docker keeps its networks apart, so traffic between
# their subnets is let through in DOCKER-USER, ahead of Docker's isolation.
# A cut's DROP rules and the latency's NFQUEUE rules go in above these.
backbone() {
	local op="$1" a b
	for a in 1 2 3; do
		for b in 1 2 3; do
			((a == b)) && continue
			local rule=(DOCKER-USER -s "172.30.$a.0/24" -d "172.30.$b.0/24" -j ACCEPT)
			if [[ "$op" == -I ]]; then
				iptables -I "${rule[@]}"
			else
				while iptables -D "${rule[@]}" 2>/dev/null; do :; done
			fi
		done
	done
}

# add_latency delays every packet between two datacenters by DRILL_LATENCY:
# `registry drill latency`, in the background on the host, holds such
# packets in an NFQUEUE (host firewall rules in DOCKER-USER) for that long.
add_latency() {
	local delay="${DRILL_LATENCY:-20ms}"
	[[ "$delay" == 0 || "$delay" == 0ms ]] && return 0
	stop_latency
	mkdir -p "$STATE"
	nohup "$ROOT/deploy/bin/registry" drill latency --delay "$delay" >"$STATE/latency.log" 2>&1 &
	echo $! >"$STATE/latency.pid"
	local deadline=$((SECONDS + 10))
	until grep -q '^delaying' "$STATE/latency.log"; do
		kill -0 "$(cat "$STATE/latency.pid")" 2>/dev/null || die "registry drill latency stopped: $(cat "$STATE/latency.log")"
		((SECONDS < deadline)) || die "registry drill latency not ready after 10s"
		sleep 0.1
	done
	log "added $delay to every packet between datacenters (log: $STATE/latency.log)"
}

stop_latency() {
	local pid
	[[ -f "$STATE/latency.pid" ]] || return 0
	pid="$(cat "$STATE/latency.pid")"
	if kill "$pid" 2>/dev/null; then
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -f "$STATE/latency.pid"
}

case "${1:-}" in
build) build ;;
up)
	build
	backbone -D
	"${COMPOSE[@]}" up -d >&2
	backbone -I
	add_latency
	wait_up
	;;
run)
	shift
	[[ $# -ge 1 ]] || die "run needs a scenario"
	scenario="$1"; shift
	"$0" up
	# A failed drill leaves the servers' last words before they go, then
	# its verdict again, last, where a log's tail shows it.
	mkdir -p "$STATE"
	out="$STATE/$scenario.out"
	trap 'rc=$?; if ((rc != 0)); then "${COMPOSE[@]}" logs --no-color --tail 60 reg-a reg-b reg-c reg-a-r reg-b-r reg-c-r >&2; fi
		"$0" down
		if ((rc != 0)); then log "$scenario FAILED; the drill said:"; grep -v "^|" "$out" >&2 || true; fi
		exit $rc' EXIT
	latency="${DRILL_LATENCY:-20ms}"
	[[ "$latency" == 0ms ]] && latency=0
	"$ROOT/deploy/bin/registry" drill --report-dir "${DRILL_REPORTS:-$ROOT/drill-reports}" --latency "$latency" "$@" "$scenario" 2>&1 | tee "$out"
	;;
status)
	curl -sf http://172.30.1.11:7400/v1/cluster/members || true
	echo
	for dc in a b c a-xds; do echo "caller-$dc:"; caller_stats "$dc" | tail -n 3; done
	;;
down)
	# A drill interrupted mid-cut may have left its rules.
	while iptables -D DOCKER-USER -s 172.30.2.0/24 ! -d 172.30.2.0/24 -j DROP 2>/dev/null; do :; done
	while iptables -D DOCKER-USER -d 172.30.2.0/24 ! -s 172.30.2.0/24 -j DROP 2>/dev/null; do :; done
	stop_latency
	[[ -f "$STATE/latency.log" ]] && tail -n 2 "$STATE/latency.log" | sed 's/^/drill: latency: /' >&2
	backbone -D
	"${COMPOSE[@]}" down -v --remove-orphans >&2
	;;
*) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Runs the three-datacenter deployment of the disaster drills in Docker
# (deploy/docker-compose.yml): dc-a and dc-b in region-1, dc-c in region-2,
# each with a registry server, two echo instances and a caller.
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
# DRILL_LATENCY (default 20ms) is added to every packet that leaves a
# container for another datacenter (tc netem, set from the host with
# nsenter). Needs root, docker and docker-compose (or docker compose), tc,
# nsenter and iptables. No image is pulled.
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
		# A full second of calls that all succeeded, all served by the
		# caller's own datacenter: the deployment has settled.
		until last="$(caller_stats "$dc" 2>/dev/null | tail -n 2 | head -n 1)" &&
			[[ "$last" == *'"ok":'[1-9]* && "$last" == *'"failed":0,'* && "$last" == *"\"by_datacenter\":{\"dc-$dc\":"*'}'* ]]; do
			((SECONDS < deadline)) || die "caller-$dc not succeeding after ${DRILL_TIMEOUT:-90}s: ${last:-no stats}"
			sleep 0.5
		done
	done
	log "up: a leader, and every caller's calls succeed"
}

# add_latency delays every packet a container sends to another
# datacenter's subnet by DRILL_LATENCY: a prio qdisc whose fourth band is a
# netem, and filters that send the other subnets there.
add_latency() {
	local delay="${DRILL_LATENCY:-20ms}" svc n m pid
	[[ "$delay" == 0 || "$delay" == 0ms ]] && return 0
	# netem is a kernel module (sch_netem); some kernels lack it.
	pid="$(docker inspect -f '{{.State.Pid}}' switchyard-drill_reg-a_1)"
	if ! nsenter -t "$pid" -n tc qdisc add dev lo root netem delay 1ms 2>/dev/null; then
		log "this kernel has no netem (sch_netem): no latency added between datacenters"
		return 0
	fi
	nsenter -t "$pid" -n tc qdisc del dev lo root
	for svc in reg echo-1 echo-2 caller; do
		for n in 1 2 3; do
			local name dc=abc
			dc="${dc:n-1:1}"
			case "$svc" in
			reg) name="reg-$dc" ;; echo-1) name="echo-${dc}1" ;; echo-2) name="echo-${dc}2" ;; caller) name="caller-$dc" ;;
			esac
			pid="$(docker inspect -f '{{.State.Pid}}' "switchyard-drill_${name}_1")"
			nsenter -t "$pid" -n tc qdisc replace dev eth0 root handle 1: prio bands 4 priomap 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
			nsenter -t "$pid" -n tc qdisc replace dev eth0 parent 1:4 handle 40: netem delay "$delay"
			for m in 1 2 3; do
				((m == n)) && continue
				nsenter -t "$pid" -n tc filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst "172.30.$m.0/24" flowid 1:4
			done
		done
	done
	log "added $delay to traffic between datacenters"
}

case "${1:-}" in
build) build ;;
up)
	build
	"${COMPOSE[@]}" up -d >&2
	add_latency
	wait_up
	;;
run)
	shift
	[[ $# -ge 1 ]] || die "run needs a scenario"
	scenario="$1"; shift
	"$0" up
	trap '"$0" down' EXIT
	"$ROOT/deploy/bin/registry" drill --report-dir "${DRILL_REPORTS:-$ROOT/drill-reports}" "$@" "$scenario"
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

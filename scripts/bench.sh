#!/usr/bin/env bash
# Benchmarks Switchyard side by side on this machine and prints markdown
# tables for docs/benchmarks.md.
#
#   scripts/bench.sh [--duration 10s] [--samples 200] [--out FILE]
#                    [--own-cluster] [--purge-cluster]
#
# 1. builds bin/registry and bin/registry-bench under a temporary folder;
# 2. starts the three-node cluster (scripts/cluster.sh up; HTTP 7410/7420/7430),
#    measures blocking-query wake-up on a follower after a write to the leader,
#    then registrations at 1, 16 and 64 clients round-robin over the three
#    nodes, and stops it (scripts/cluster.sh down --purge);
# 3. starts `registry dev` on a free port with its data in a temporary folder,
#    measures lookups of a 10- and a 1,000-instance service at 16 and 64
#    clients next to a bare net/http handler serving the same bytes (in the
#    bench process and in a process of its own), and blocking-query wake-up
#    with 1 and 64 watchers, then stops it;
# 4. measures DNS with dnsperf (scripts/bench-dns.sh) when dnsperf is installed;
# 5. prints every table (and writes them to --out FILE if given).
#
# --duration is the measured time of each register level and of each lookup
#   target per row (default 10s: the whole script takes about 3.5 minutes
#   once the binaries are built; --duration 2s takes about a minute).
# --own-cluster starts the three nodes from this script, with cluster.sh's
#   flags and ports, data in a temporary folder, instead of using cluster.sh.
# --purge-cluster lets the script delete leftover cluster.sh data in
#   .cluster/data (the benchmark needs a fresh cluster; without this flag the
#   script stops rather than delete someone's data).
#
# The cluster's servers inherit the environment: REGISTRY_RAFT_LOG_STORE=wal
# scripts/bench.sh --purge-cluster measures them with the WAL log store.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION=10s
SAMPLES=200
OUT=""
OWN_CLUSTER=false
PURGE_CLUSTER=false

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }
log() { echo "bench: $*" >&2; }
die() {
	log "$*"
	exit 1
}

while (($#)); do
	case "$1" in
	--duration) DURATION="${2:?--duration needs a value}"; shift 2 ;;
	--duration=*) DURATION="${1#*=}"; shift ;;
	--samples) SAMPLES="${2:?--samples needs a value}"; shift 2 ;;
	--samples=*) SAMPLES="${1#*=}"; shift ;;
	--out) OUT="${2:?--out needs a file}"; shift 2 ;;
	--out=*) OUT="${1#*=}"; shift ;;
	--own-cluster) OWN_CLUSTER=true; shift ;;
	--purge-cluster) PURGE_CLUSTER=true; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null || die "go is required"
command -v curl >/dev/null || die "curl is required"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench.XXXXXX")"
BIN="$WORK/bin"
RESULTS="$WORK/results.md"
CLUSTER_STARTED=""   # "script" or "own" once a cluster was started here
OWN_PIDS=()
DEV_PID=""
SERVERS="http://127.0.0.1:7410,http://127.0.0.1:7420,http://127.0.0.1:7430"

stop_pid() {
	local pid="$1" i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

stop_own_cluster() {
	local pid
	for pid in "${OWN_PIDS[@]}"; do stop_pid "$pid"; done
	OWN_PIDS=()
}

cleanup() {
	local rc=$?
	[[ -n "$DEV_PID" ]] && stop_pid "$DEV_PID"
	case "$CLUSTER_STARTED" in
	script) "$ROOT/scripts/cluster.sh" down --purge >&2 || true ;;
	own) stop_own_cluster ;;
	esac
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

emit() { tee -a "$RESULTS"; }

# own_cluster_ready: every node healthy and listing one leader and two voters.
own_cluster_ready() {
	local n m
	for n in 1 2 3; do
		curl -sf --max-time 2 "http://127.0.0.1:74${n}0/v1/health" >/dev/null || return 1
		m="$(curl -sf --max-time 2 "http://127.0.0.1:74${n}0/v1/cluster/members")" || return 1
		[[ "$(grep -o '"role":"[a-z]*"' <<<"$m" | sort | uniq -c | tr -s ' ' | tr '\n' ',')" == ' 1 "role":"leader", 2 "role":"voter",' ]] || return 1
	done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- build
log "building registry and registry-bench"
(cd "$ROOT" && go build -o "$BIN/registry" ./cmd/registry && go build -o "$BIN/registry-bench" ./cmd/registry-bench)

{
	echo "## Run of $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo
	echo "- command: \`${REGISTRY_RAFT_LOG_STORE:+REGISTRY_RAFT_LOG_STORE=$REGISTRY_RAFT_LOG_STORE }scripts/bench.sh --duration $DURATION --samples $SAMPLES\`"
	echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || echo unknown)), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo 2>/dev/null), $(uname -sr)"
	echo "- $(go version)"
	echo "- load average before: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
	echo
} | emit

# ---------------------------------------------------------------- cluster
for port in 7410 7411 7412 7420 7421 7422 7430 7431 7432; do
	port_in_use "$port" && die "port $port is in use: is a cluster running? Stop it (scripts/cluster.sh down) and run again"
done
if $OWN_CLUSTER; then
	log "starting three nodes from this script (data in $WORK/cluster)"
	for n in 1 2 3; do
		args=(server --node-id "n$n" --data-dir "$WORK/cluster/n$n" --http-addr "127.0.0.1:74${n}0" --raft-addr "127.0.0.1:74${n}1"
			--gossip-addr "127.0.0.1:74${n}2" --dns-addr "127.0.0.1:74${n}3" --xds-addr "127.0.0.1:74${n}4" --bootstrap-expect 3 --join 127.0.0.1:7412,127.0.0.1:7422,127.0.0.1:7432 --log-level warn --insecure-dev)
		mkdir -p "$WORK/cluster"
		"$BIN/registry" "${args[@]}" >"$WORK/cluster/n$n.log" 2>&1 &
		OWN_PIDS+=($!)
		CLUSTER_STARTED=own
	done
	deadline=$((SECONDS + 30))
	until own_cluster_ready; do
		((SECONDS < deadline)) || {
			tail -n 20 "$WORK"/cluster/*.log >&2
			die "own cluster not ready after 30s"
		}
		sleep 0.2
	done
else
	[[ -x "$ROOT/scripts/cluster.sh" ]] || die "scripts/cluster.sh is missing; run with --own-cluster"
	if [[ -d "$ROOT/.cluster/data" ]] && [[ -n "$(ls -A "$ROOT/.cluster/data")" ]]; then
		$PURGE_CLUSTER || die "$ROOT/.cluster/data holds a cluster's data; the benchmark needs a fresh cluster. Run with --purge-cluster to delete it, or --own-cluster"
		"$ROOT/scripts/cluster.sh" down --purge >&2
	fi
	log "starting the cluster: scripts/cluster.sh up"
	CLUSTER_STARTED=script
	"$ROOT/scripts/cluster.sh" up >&2
	# The script cluster has access control on: every registry-bench
	# command sends its admin token (REGISTRY_TOKEN).
	REGISTRY_TOKEN="$(cat "$ROOT/.cluster/token")" || die "no admin token in $ROOT/.cluster/token"
	export REGISTRY_TOKEN
fi

if [[ "$CLUSTER_STARTED" == own ]]; then
	cluster_pids="$(IFS=,; echo "${OWN_PIDS[*]}")"
else
	cluster_pids="$(cat "$ROOT"/.cluster/pids/n{1,2,3}.pid 2>/dev/null | tr -dc '0-9\n' | paste -sd, -)"
fi

leader_http="$(curl -sf http://127.0.0.1:7410/v1/cluster/leader | grep -o '"http_addr":"[^"]*"' | cut -d'"' -f4 || true)"
[[ -n "$leader_http" ]] || leader_http=127.0.0.1:7410
follower_http=127.0.0.1:7420
[[ "$leader_http" == "$follower_http" ]] && follower_http=127.0.0.1:7430
log "leader $leader_http; watching on follower $follower_http"

echo "### Three-node cluster (scripts/cluster.sh)" | emit
echo | emit
"$BIN/registry-bench" watch --server "http://$follower_http" --write-server "http://$leader_http" \
	--samples "$SAMPLES" --max-duration 60s | emit
"$BIN/registry-bench" register --servers "$SERVERS" --clients 1,16,64 --duration "$DURATION" --pids "$cluster_pids" | emit
# Heartbeats that one server (a follower) absorbs, and what they cost the
# cluster; then how fast silence turns into unhealthy everywhere; last, kill
# n3 and time its detection (the cluster is torn down right after).
"$BIN/registry-bench" heartbeat --servers "http://$follower_http" --metrics "$SERVERS" --clients 16,64 \
	--duration "$DURATION" --instances 20000 --pids "$cluster_pids" | emit
"$BIN/registry-bench" silence --servers "$SERVERS" --samples 40 --ttl 3s | emit
"$BIN/registry-bench" sdk-watch --servers "$SERVERS" --write-server "http://$leader_http" --samples "$SAMPLES" | emit
if [[ "$CLUSTER_STARTED" == own ]]; then n3_pid="${OWN_PIDS[2]}"; else n3_pid="$(tr -dc '0-9' <"$ROOT/.cluster/pids/n3.pid")"; fi
"$BIN/registry-bench" detect --server http://127.0.0.1:7410 --member n3 --kill-pid "$n3_pid" | emit

case "$CLUSTER_STARTED" in
script) "$ROOT/scripts/cluster.sh" down --purge >&2 ;;
own) stop_own_cluster ;;
esac
CLUSTER_STARTED=""

# ---------------------------------------------------------------- registry dev
log "starting registry dev on a free port"
unset REGISTRY_TOKEN # registry dev runs without access control
"$BIN/registry" dev --http-addr 127.0.0.1:0 --dns-addr 127.0.0.1:0 --xds-addr "" --log-level warn >"$WORK/dev.out" 2>"$WORK/dev.err" &
DEV_PID=$!
dev_url=""
for ((i = 0; i < 100; i++)); do
	dev_url="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/dev.out" 2>/dev/null | head -n1 || true)"
	[[ -n "$dev_url" ]] && break
	kill -0 "$DEV_PID" 2>/dev/null || { cat "$WORK/dev.err" >&2; die "registry dev exited"; }
	sleep 0.1
done
[[ -n "$dev_url" ]] || die "registry dev not ready after 10s"
log "registry dev at $dev_url"

echo "### registry dev (one node)" | emit
echo | emit
"$BIN/registry-bench" lookup --server "$dev_url" --instances 10,1000 --clients 16,64 --duration "$DURATION" --bare both --pids "$DEV_PID" | emit
"$BIN/registry-bench" watch --server "$dev_url" --samples "$SAMPLES" --max-duration 60s | emit
"$BIN/registry-bench" watch --server "$dev_url" --samples "$((SAMPLES / 2 > 0 ? SAMPLES / 2 : 1))" --watchers 64 --max-duration 60s | emit

stop_pid "$DEV_PID"
DEV_PID=""

# DNS: dnsperf against registry dev and a bare miekg/dns server (its own
# registry dev, started by the script).
if command -v dnsperf >/dev/null; then
	secs="${DURATION%s}"
	[[ "$secs" =~ ^[0-9]+$ ]] || secs=10
	log "DNS: scripts/bench-dns.sh --duration $secs"
	echo | emit
	"$ROOT/scripts/bench-dns.sh" --duration "$secs" --rounds 2 --bin "$BIN" | emit
else
	log "dnsperf not installed (apt-get install dnsperf): DNS not measured"
fi

echo "- load average after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)" | emit
if [[ -n "$OUT" ]]; then
	cp "$RESULTS" "$OUT"
	log "results written to $OUT"
fi
log "done in ${SECONDS}s"

#!/usr/bin/env bash
# Runs a three-node Switchyard cluster on 127.0.0.1 for development and CI.
#
#   scripts/cluster.sh up             build, start the nodes, wait for a leader and three voters
#   scripts/cluster.sh status         each node's pid and state, then `registry members`
#                                     (exit 0 only if all three run and n1 answers)
#   scripts/cluster.sh down [--purge] stop the nodes; --purge also deletes their data and logs
#   scripts/cluster.sh clean          same as down --purge
#
# node  HTTP            Raft            gossip          DNS (UDP and TCP)  xDS
# n1    127.0.0.1:7410  127.0.0.1:7411  127.0.0.1:7412  127.0.0.1:7413     127.0.0.1:7414
# n2    127.0.0.1:7420  127.0.0.1:7421  127.0.0.1:7422  127.0.0.1:7423     127.0.0.1:7424
# n3    127.0.0.1:7430  127.0.0.1:7431  127.0.0.1:7432  127.0.0.1:7433     127.0.0.1:7434
#
# The nodes find each other by gossip (each is given the others' gossip
# addresses); a brand-new cluster starts with --bootstrap-expect 3.
#
# Everything lives under .cluster/ at the repository root, whatever the
# current directory: bin/registry, data/nX, logs/nX.log, pids/nX.pid, the
# admin token (token) and the gossip key (gossip.key).
# A cluster brought `down` without --purge comes back `up` with its data.
#
# Environment: CLUSTER_TIMEOUT (seconds `up` waits for the cluster, default 30),
# CLUSTER_STOP_TIMEOUT (seconds `down` waits after SIGTERM before SIGKILL, default 15).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/.cluster"
BIN="$DIR/bin/registry"
NODES=(n1 n2 n3)
UP_TIMEOUT="${CLUSTER_TIMEOUT:-30}"
STOP_TIMEOUT="${CLUSTER_STOP_TIMEOUT:-15}"

http_port() { echo "74${1#n}0"; }
raft_port() { echo "74${1#n}1"; }
gossip_port() { echo "74${1#n}2"; }
dns_port() { echo "74${1#n}3"; }
xds_port() { echo "74${1#n}4"; }
http_addr() { echo "127.0.0.1:$(http_port "$1")"; }
pidfile() { echo "$DIR/pids/$1.pid"; }
logfile() { echo "$DIR/logs/$1.log"; }

log() { echo "cluster: $*" >&2; }
die() {
	log "$*"
	exit 1
}

# pid_of prints the recorded pid of node $1, or nothing.
pid_of() {
	local f
	f="$(pidfile "$1")"
	[[ -s "$f" ]] && tr -dc '0-9' <"$f"
	return 0
}

# alive reports whether pid $1 is a running (not zombie) registry server for
# node $2: a recycled pid belonging to another program does not count.
alive() {
	local pid="$1" node="$2"
	[[ -n "$pid" ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	if [[ -r "/proc/$pid/stat" ]]; then
		local stat state
		stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
		state="${stat##*) }"
		[[ "${state%% *}" != Z ]] || return 1
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "server --node-id $node " || return 1
	fi
	return 0
}

node_alive() { alive "$(pid_of "$1")" "$1"; }

# fetch prints the body of a GET that answered 2xx, and fails otherwise.
fetch() { curl -sf --max-time 2 "$1"; }

need_curl() {
	command -v curl >/dev/null || die "curl is required (apt-get install -y curl)"
}

build() {
	if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
		export PATH="/usr/local/go/bin:$PATH"
	fi
	command -v go >/dev/null || die "go is required to build the registry"
	log "building $BIN"
	(cd "$ROOT" && go build -o .cluster/bin/registry ./cmd/registry)
}

start_node() {
	local node="$1" args
	mkdir -p "$DIR/data/$node" "$DIR/logs" "$DIR/pids"
	args=(server --node-id "$node" --data-dir "$DIR/data/$node"
		--http-addr "$(http_addr "$node")" --raft-addr "127.0.0.1:$(raft_port "$node")"
		--gossip-addr "127.0.0.1:$(gossip_port "$node")" --dns-addr "127.0.0.1:$(dns_port "$node")" --xds-addr "127.0.0.1:$(xds_port "$node")")
	local n others=()
	for n in n1 n2 n3; do
		[[ "$n" == "$node" ]] || others+=("127.0.0.1:$(gossip_port "$n")")
	done
	args+=(--join "$(IFS=,; echo "${others[*]}")")
	# Access control is on, as in production: the first leader creates the
	# admin token from .cluster/token (made once, by `up`).
	args+=(--bootstrap-token-file "$DIR/token")
	# Gossip is sealed with one key (made once, by `up`), as in production:
	# a server refuses to start without one.
	args+=(--gossip-key "$(cat "$DIR/gossip.key")")
	# Only a brand-new cluster is bootstrapped (BRAND_NEW, decided by cmd_up
	# before any node starts). Once any node holds Raft state, a node whose
	# data was lost joins the existing cluster through gossip: bootstrapping
	# it would start a second, diverging cluster.
	if [[ "$BRAND_NEW" == true ]]; then
		args+=(--bootstrap-expect 3)
	fi
	local pf
	pf="$(pidfile "$node")"
	rm -f "$pf"
	echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) cluster.sh: start $node" >>"$(logfile "$node")"
	# The child records its own pid, then becomes the server (exec keeps the
	# pid). Job control (set -m) starts it in a process group of its own, so
	# a ^C while `up` runs does not reach it. Not setsid: a session of its
	# own is also a scheduling group of its own wherever Linux's autogroup is
	# on (/proc/sys/kernel/sched_autogroup_enabled), and three servers in
	# three groups, fair-shared against each other and the client, made 64
	# clients' registrations 0.87x as fast and each cost 1.15x the server CPU
	# (docs/benchmarks/history.md, "A lighter load generator").
	set -m
	# shellcheck disable=SC2016 # $$ and $@ are the child's
	bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pf" "$BIN" "${args[@]}" \
		</dev/null >>"$(logfile "$node")" 2>&1 &
	set +m
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -s "$pf" ]] && break
		sleep 0.1
	done
	[[ -s "$pf" ]] || die "$node did not start; see $(logfile "$node")"
	log "started $node (pid $(pid_of "$node"), http://$(http_addr "$node"))"
}

print_logs() {
	local node f
	for node in "${NODES[@]}"; do
		f="$(logfile "$node")"
		echo "----- $node: last 30 lines of $f -----" >&2
		if [[ -f "$f" ]]; then tail -n 30 "$f" >&2; else echo "(no log)" >&2; fi
	done
}

# node_ready: the node's health is 200 and its member list shows three
# servers, exactly one leader and two voters.
node_ready() {
	local node="$1" members roles
	fetch "http://$(http_addr "$node")/v1/health" >/dev/null || return 1
	members="$(fetch "http://$(http_addr "$node")/v1/cluster/members")" || return 1
	roles="$(grep -o '"role":"[a-z]*"' <<<"$members" | sort | uniq -c | tr -s ' ' | tr '\n' ',')" || return 1
	[[ "$roles" == ' 1 "role":"leader", 2 "role":"voter",' ]] || return 1
	# Access control is bootstrapped, and this node knows the admin token.
	curl -sf --max-time 2 -H "X-Switchyard-Token: $(cat "$DIR/token")" "http://$(http_addr "$node")/v1/acl/self" >/dev/null
}

wait_ready() {
	local deadline=$((SECONDS + UP_TIMEOUT)) node pending
	while :; do
		pending=()
		for node in "${NODES[@]}"; do
			node_alive "$node" || {
				print_logs
				die "$node exited; see its log above (scripts/cluster.sh down stops the others)"
			}
			node_ready "$node" || pending+=("$node")
		done
		if ((${#pending[@]} == 0)); then
			log "cluster ready: one leader and three voters, every node healthy"
			return 0
		fi
		if ((SECONDS >= deadline)); then
			print_logs
			die "not ready after ${UP_TIMEOUT}s (waiting for: ${pending[*]}); scripts/cluster.sh down stops the nodes"
		fi
		sleep 0.2
	done
}

cmd_up() {
	need_curl
	local node missing=()
	for node in "${NODES[@]}"; do
		node_alive "$node" || missing+=("$node")
	done
	if ((${#missing[@]} == 0)); then
		log "already running"
	else
		build
		BRAND_NEW=true
		for node in "${NODES[@]}"; do
			[[ -e "$DIR/data/$node/raft.db" || -e "$DIR/data/$node/wal/wal-meta.db" ]] && BRAND_NEW=false
		done
		if [[ ! -s "$DIR/token" ]]; then
			mkdir -p "$DIR"
			(umask 077 && "$BIN" token secret >"$DIR/token")
		fi
		if [[ ! -s "$DIR/gossip.key" ]]; then
			(umask 077 && "$BIN" keygen >"$DIR/gossip.key")
		fi
		for node in "${missing[@]}"; do
			start_node "$node"
		done
	fi
	wait_ready
	log "admin token: $DIR/token (export REGISTRY_TOKEN=\$(cat $DIR/token) for the registry commands; curl -H \"X-Switchyard-Token: \$(cat $DIR/token)\")"
}

stop_node() {
	local node="$1" pid
	pid="$(pid_of "$node")"
	if ! alive "$pid" "$node"; then
		rm -f "$(pidfile "$node")"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + STOP_TIMEOUT))
	while alive "$pid" "$node" && ((SECONDS < deadline)); do
		sleep 0.1
	done
	if alive "$pid" "$node"; then
		log "$node (pid $pid) still running ${STOP_TIMEOUT}s after SIGTERM: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		while alive "$pid" "$node"; do sleep 0.1; done
	fi
	rm -f "$(pidfile "$node")"
	log "stopped $node (pid $pid)"
}

cmd_down() {
	local purge=false
	case "${1:-}" in
	"") ;;
	--purge) purge=true ;;
	*) die "down: unknown argument $1 (use --purge)" ;;
	esac
	local node pids=()
	# Stop the followers in parallel, then n1, so shutdown is quick.
	for node in n3 n2; do
		stop_node "$node" &
		pids+=($!)
	done
	local p rc=0
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	stop_node n1 || rc=1
	((rc == 0)) || die "could not stop every node"
	if $purge; then
		rm -rf "$DIR/data" "$DIR/logs" "$DIR/pids"
		log "purged data and logs under $DIR"
	else
		log "data kept in $DIR/data (down --purge deletes it)"
	fi
}

cmd_status() {
	local node pid running=0
	for node in "${NODES[@]}"; do
		pid="$(pid_of "$node")"
		if alive "$pid" "$node"; then
			printf '%s  pid %-7s alive    http://%s\n' "$node" "$pid" "$(http_addr "$node")"
			running=$((running + 1))
		else
			printf '%s  pid %-7s stopped  http://%s\n' "$node" "${pid:--}" "$(http_addr "$node")"
		fi
	done
	echo
	if [[ -x "$BIN" ]] && "$BIN" members --server "http://$(http_addr n1)"; then
		((running == ${#NODES[@]})) && return 0
	else
		echo "registry members --server http://$(http_addr n1): no answer"
	fi
	return 1
}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

case "${1:-}" in
up) cmd_up ;;
down)
	shift
	cmd_down "$@"
	;;
clean) cmd_down --purge ;;
status) cmd_status ;;
-h | --help | help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac

#!/usr/bin/env bash
# Compare two registry binaries, A and B, taking turns (A B, B A, …) so that
# background load on a shared machine hits both alike:
#   --mode register (the default): registrations/s on three-node clusters on
#     127.0.0.1:75x0;
#   --mode lookup: lookups/s on `registry dev` (127.0.0.1:7510), each row next
#     to a bare net/http handler serving the same bytes in the same run.
#
#   scripts/bench-ab.sh A_BINARY B_BINARY [--mode register|lookup] [--clients 1,16,64]
#       [--instances 10,1000] [--duration 5s] [--rounds 2]
#
# Build the binaries first, e.g. from two commits:
#   git worktree add /tmp/a <commit>; (cd /tmp/a && go build -o /tmp/registry-a ./cmd/registry)
#   go build -o /tmp/registry-b ./cmd/registry
# A_ENV and B_ENV add VAR=value words to each side's servers' environment, to
# compare settings of one binary:
#   B_ENV=REGISTRY_RAFT_LOG_STORE=wal scripts/bench-ab.sh /tmp/registry /tmp/registry
# Each row ends with the servers' CPU per registration.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ $# -ge 2 ]] || { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2; }
A="$1" B="$2"; shift 2
MODE=register CLIENTS="" INSTANCES=10,1000 DURATION=5s ROUNDS=2
while [[ $# -gt 0 ]]; do
	case "$1" in
	--mode) MODE="$2"; shift 2 ;;
	--instances) INSTANCES="$2"; shift 2 ;;
	--clients) CLIENTS="$2"; shift 2 ;;
	--duration) DURATION="$2"; shift 2 ;;
	--rounds) ROUNDS="$2"; shift 2 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done
case "$MODE" in
register) CLIENTS="${CLIENTS:-1,16,64}" ;;
lookup) CLIENTS="${CLIENTS:-16,64}" ;;
*) echo "--mode $MODE: use register or lookup" >&2; exit 2 ;;
esac
export PATH="/usr/local/go/bin:$PATH"
BENCH="$(mktemp -d)/registry-bench"
(cd "$ROOT" && go build -o "$BENCH" ./cmd/registry-bench)

# lookup runs one `registry dev` of binary $1 (environment words $2) and
# measures lookups next to the bare handler.
lookup() {
	local bin="$1" dir pid i envs=()
	read -r -a envs <<<"$2"
	dir="$(mktemp -d)"
	env ${envs[@]+"${envs[@]}"} "$bin" dev --data-dir "$dir/dev" --http-addr 127.0.0.1:7510 --dns-addr "" --xds-addr "" >"$dir/dev.log" 2>&1 &
	pid=$!
	for ((i = 0; i < 100; i++)); do curl -sf 127.0.0.1:7510/v1/health >/dev/null && break; sleep 0.1; done
	"$BENCH" lookup --server http://127.0.0.1:7510 --instances "$INSTANCES" --clients "$CLIENTS" \
		--duration "$DURATION" --pids "$pid" --quiet | grep '^|' || true
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
}

# register runs a three-node cluster of binary $1 (environment words $2) and
# measures registrations.
register() {
	local bin="$1" dir pids=() i INSECURE="" envs=()
	read -r -a envs <<<"$2"
	dir="$(mktemp -d)"
	# Binaries with access control run without it here, like those before it.
	local help
	help="$("$bin" server --help 2>&1 || true)"
	[[ "$help" == *-insecure-dev* ]] && INSECURE=--insecure-dev
	env ${envs[@]+"${envs[@]}"} "$bin" server --node-id n1 --data-dir "$dir/n1" --http-addr 127.0.0.1:7510 --raft-addr 127.0.0.1:7511 --gossip-addr 127.0.0.1:7512 --dns-addr 127.0.0.1:7513 --xds-addr 127.0.0.1:7514 \
		--bootstrap ${INSECURE:+"$INSECURE"} >"$dir/n1.log" 2>&1 &
	pids+=($!)
	for ((i = 0; i < 100; i++)); do curl -sf 127.0.0.1:7510/v1/health >/dev/null && break; sleep 0.1; done
	for n in 2 3; do
		env ${envs[@]+"${envs[@]}"} "$bin" server --node-id "n$n" --data-dir "$dir/n$n" --http-addr "127.0.0.1:75${n}0" --raft-addr "127.0.0.1:75${n}1" \
			--gossip-addr "127.0.0.1:75${n}2" --dns-addr "127.0.0.1:75${n}3" --xds-addr "127.0.0.1:75${n}4" --join 127.0.0.1:7510 ${INSECURE:+"$INSECURE"} >"$dir/n$n.log" 2>&1 &
		pids+=($!)
	done
	for ((i = 0; i < 200; i++)); do
		curl -sf 127.0.0.1:7520/v1/health >/dev/null && curl -sf 127.0.0.1:7530/v1/health >/dev/null && break
		sleep 0.1
	done
	"$BENCH" register --servers http://127.0.0.1:7510,http://127.0.0.1:7520,http://127.0.0.1:7530 \
		--clients "$CLIENTS" --duration "$DURATION" --pids "$(IFS=,; echo "${pids[*]}")" | grep '^| [0-9]' || true
	kill "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
	rm -rf "$dir"
}

# The order alternates (A B, B A, A B, …), so that a side never always
# runs first: what a first run meets (a cold page cache, a neighbour's
# burst that fades) would otherwise count against it every time.
for ((r = 1; r <= ROUNDS; r++)); do
	if ((r % 2 == 1)); then
		echo "== A ($A${A_ENV:+ $A_ENV}), round $r"; "$MODE" "$A" "${A_ENV:-}"
		echo "== B ($B${B_ENV:+ $B_ENV}), round $r"; "$MODE" "$B" "${B_ENV:-}"
	else
		echo "== B ($B${B_ENV:+ $B_ENV}), round $r"; "$MODE" "$B" "${B_ENV:-}"
		echo "== A ($A${A_ENV:+ $A_ENV}), round $r"; "$MODE" "$A" "${A_ENV:-}"
	fi
done

#!/usr/bin/env bash
# Rolling upgrade, with real binaries of two versions, on three servers on
# 127.0.0.1:76x0; every write must be on every server at each step.
#
#  1. An OLD leader with NEW followers takes writes through every server;
#     then the leader is upgraded, and every server must end up announcing
#     NEW's protocol.
#  2. Rollback in the middle of an upgrade: with a NEW leader, one NEW
#     follower is rolled back to OLD (its catalog record still says NEW's
#     protocol) and the other OLD one is upgraded. The cluster must keep to
#     what the rolled-back server reads; then it is upgraded too, and the
#     cluster moves up.
#
#   scripts/upgrade-check.sh OLD_BINARY NEW_BINARY [PROTOCOL]
#
# PROTOCOL is the protocol NEW announces (default 2). Exits non-zero on any
# failure, with the servers' logs.
set -euo pipefail

[[ $# -ge 2 ]] || { sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2; }
OLD="$1" NEW="$2" PROTOCOL="${3:-2}"
DIR="$(mktemp -d)"
declare -A PID

start() { # node binary flags...
	local n="$1" bin="$2"
	shift 2
	# xDS through the environment: a binary from before it ignores the variable.
	REGISTRY_XDS_ADDR="127.0.0.1:76${n}4" "$bin" server --node-id "n$n" --data-dir "$DIR/n$n" --http-addr "127.0.0.1:76${n}0" --raft-addr "127.0.0.1:76${n}1" \
		--gossip-addr "127.0.0.1:76${n}2" --dns-addr "127.0.0.1:76${n}3" --insecure-dev "$@" >>"$DIR/n$n.log" 2>&1 &
	PID[$n]=$!
}
stop() {
	kill "${PID[$1]}" 2>/dev/null || true
	wait "${PID[$1]}" 2>/dev/null || true
}
cleanup() {
	for n in "${!PID[@]}"; do stop "$n"; done
	rm -rf "$DIR"
}
trap cleanup EXIT
fail() {
	echo "upgrade check FAILED: $*" >&2
	for n in 1 2 3; do echo "--- n$n log (last 30 lines)" >&2; tail -n 30 "$DIR/n$n.log" >&2 || true; done
	exit 1
}
healthy() { # node
	local i
	for ((i = 0; i < 200; i++)); do
		curl -sf "127.0.0.1:76${1}0/v1/health" >/dev/null && return 0
		sleep 0.1
	done
	fail "n$1 not healthy after 20 s"
}
three() { # binary of n1, n2, n3: n1 bootstraps, the others join it
	start 1 "$1" --bootstrap
	healthy 1
	start 2 "$2" --join 127.0.0.1:7610
	start 3 "$3" --join 127.0.0.1:7610
	healthy 2
	healthy 3
}

write() { # node method id
	local code
	code="$(curl -s -o /dev/null -w '%{http_code}' -X "$2" "127.0.0.1:76${1}0/v1/namespaces/default/services/web/instances/$3" \
		-d '{"address":"10.0.0.1","port":80}' || true)"
	[[ "$code" == 200 ]] || fail "$2 $3 through n$1 answered $code (000: no answer)"
}
ids() { # node: the instance ids it holds, sorted, on one line
	curl -sf "127.0.0.1:76${1}0/v1/namespaces/default/services/web/instances" |
		grep -o '"id":"[^"]*"' | cut -d'"' -f4 | sort | paste -sd' '
}
protocols() { # node: id=protocol of each member (0: none announced), on one line
	curl -sf "127.0.0.1:76${1}0/v1/cluster/members" | grep -o '"id":"[^"]*"\|"protocol":[0-9]*' |
		awk -F'[:"]+' '/"id"/ { if (id != "") printf "%s=%s ", id, p; id = $3; p = 0; next } { p = $3 }
			END { if (id != "") printf "%s=%s", id, p; print "" }'
}
everywhere() { # what want timeout-seconds: poll until every server's $what equals want
	local what="$1" want="$2" i n got
	for ((i = 0; i < $3 * 10; i++)); do
		got=""
		for n in 1 2 3; do [[ "$($what "$n" 2>/dev/null)" == "$want" ]] || got="n$n: $($what "$n" 2>/dev/null)"; done
		[[ -z "$got" ]] && return 0
		sleep 0.1
	done
	fail "$what: want '$want' on every server; $got"
}

n1_records() { # want: poll n1's members (catalog records) for 20 s
	local i
	for ((i = 0; i < 200; i++)); do
		[[ "$(protocols 1 2>/dev/null)" == "$1" ]] && return 0
		sleep 0.1
	done
	fail "n1's records: want '$1', have '$(protocols 1)'"
}

echo "old: $OLD; new: $NEW"
echo "== 1. old leader, new followers: writes through every server"
three "$OLD" "$NEW" "$NEW"
for n in 1 2 3; do write "$n" PUT "before-$n"; done
write 2 PUT gone-2
write 2 DELETE gone-2
everywhere ids "before-1 before-2 before-3" 10
echo "   every server holds before-1..3; members: $(protocols 2)"
echo "== 1. the old leader upgraded"
stop 1
start 1 "$NEW"
healthy 1
everywhere protocols "n1=$PROTOCOL n2=$PROTOCOL n3=$PROTOCOL" 40
echo "   members: $(protocols 1)"
for n in 1 2 3; do write "$n" PUT "after-$n"; done
write 3 PUT gone-3
write 3 DELETE gone-3
everywhere ids "after-1 after-2 after-3 before-1 before-2 before-3" 10
for n in 1 2 3; do stop "$n"; done
rm -rf "${DIR:?}"/n?

echo "== 2. new leader, one old and one new follower"
three "$NEW" "$OLD" "$NEW"
n1_records "n1=$PROTOCOL n2=0 n3=$PROTOCOL" # an old server answers members without protocols: ask n1
for n in 1 2 3; do write "$n" PUT "mixed-$n"; done
echo "== 2. n3 rolled back to the old version, n2 upgraded"
stop 3
start 3 "$OLD"
healthy 3
stop 2
start 2 "$NEW"
healthy 2
# n3's record still says $PROTOCOL; the cluster must keep to what n3 runs.
for n in 1 2 3; do write "$n" PUT "rolled-back-$n"; done
write 1 PUT gone-1
write 1 DELETE gone-1
# Wait until n1's catalog says every server speaks $PROTOCOL (n3's record is
# stale): believed, it would make n1 write entries n3 cannot read.
n1_records "n1=$PROTOCOL n2=$PROTOCOL n3=$PROTOCOL"
kill -0 "${PID[3]}" 2>/dev/null || fail "n3 (old version) stopped"
for n in 1 2 3; do write "$n" PUT "settled-$n"; done
everywhere ids "mixed-1 mixed-2 mixed-3 rolled-back-1 rolled-back-2 rolled-back-3 settled-1 settled-2 settled-3" 10
echo "   the rolled-back server reads every entry; members: $(protocols 1)"
echo "== 2. n3 upgraded again"
stop 3
start 3 "$NEW"
healthy 3
everywhere protocols "n1=$PROTOCOL n2=$PROTOCOL n3=$PROTOCOL" 40
for n in 1 2 3; do write "$n" PUT "final-$n"; done
everywhere ids "final-1 final-2 final-3 mixed-1 mixed-2 mixed-3 rolled-back-1 rolled-back-2 rolled-back-3 settled-1 settled-2 settled-3" 10
echo "upgrade check passed: both upgrades end at protocol $PROTOCOL with every write on every server"

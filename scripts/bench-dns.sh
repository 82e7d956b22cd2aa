#!/usr/bin/env bash
# DNS benchmark: dnsperf against `registry dev` (A and SRV of a 10-instance
# service) and, in alternating rounds, against a bare miekg/dns server that
# answers one fixed A record. Prints a markdown table.
#
#   scripts/bench-dns.sh [--duration 10] [--rounds 2] [--clients 8] [--bin DIR]
#
# --bin DIR holds registry and registry-bench (built here when omitted).
# Needs dnsperf (Debian package dnsperf).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION=10 ROUNDS=2 CLIENTS=8 BIN=""
while (($#)); do
	case "$1" in
	--duration) DURATION="$2"; shift 2 ;;
	--rounds) ROUNDS="$2"; shift 2 ;;
	--clients) CLIENTS="$2"; shift 2 ;;
	--bin) BIN="$2"; shift 2 ;;
	*) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
command -v dnsperf >/dev/null || { echo "bench-dns: dnsperf is required (apt-get install dnsperf)" >&2; exit 1; }
export PATH="/usr/local/go/bin:$PATH"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench-dns.XXXXXX")"
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT
if [[ -z "$BIN" ]]; then
	BIN="$WORK/bin"
	(cd "$ROOT" && go build -o "$BIN/registry" ./cmd/registry && go build -o "$BIN/registry-bench" ./cmd/registry-bench)
fi

"$BIN/registry" dev --http-addr 127.0.0.1:0 --dns-addr 127.0.0.1:0 --xds-addr "" --log-level warn >"$WORK/dev.out" 2>"$WORK/dev.err" &
PIDS+=($!)
for ((i = 0; i < 100; i++)); do
	grep -q ready "$WORK/dev.out" 2>/dev/null && break
	sleep 0.1
done
http="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/dev.out" | head -n1)"
dns="$(grep -o 'dns 127\.0\.0\.1:[0-9]*' "$WORK/dev.out" | head -n1 | cut -d' ' -f2)"
[[ -n "$http" && -n "$dns" ]] || { cat "$WORK/dev.err" >&2; echo "bench-dns: registry dev did not start" >&2; exit 1; }
for i in $(seq 1 10); do
	curl -sf -X PUT "$http/v1/namespaces/default/services/web/instances/w-$i" \
		-d "{\"address\":\"10.0.0.$i\",\"port\":8080,\"ephemeral\":false}" >/dev/null
done
"$BIN/registry-bench" dns-bare >"$WORK/bare.out" 2>"$WORK/bare.err" &
PIDS+=($!)
for ((i = 0; i < 50; i++)); do [[ -s "$WORK/bare.out" ]] && break; sleep 0.1; done
bare="$(head -n1 "$WORK/bare.out")"
[[ -n "$bare" ]] || { echo "bench-dns: the bare server did not start" >&2; exit 1; }
echo "web.svc.switchyard A" >"$WORK/a.txt"
echo "web.svc.switchyard SRV" >"$WORK/srv.txt"

# run TARGET ADDR FILE: prints "qps p50_ms p99_ms lost". Queries/s come from
# a plain run; latencies from a second, shorter run with -v (dnsperf then
# prints every answer's latency, which costs it CPU and so queries/s).
run() {
	local addr="$2" file="$3" half=$(((DURATION + 1) / 2))
	dnsperf -s "${addr%:*}" -p "${addr##*:}" -d "$file" -l "$DURATION" -c "$CLIENTS" -T 2 2>/dev/null |
		awk '/Queries per second/{q=$4} /Queries lost/{l=$3} END{print q, l}' >"$WORK/sum"
	dnsperf -s "${addr%:*}" -p "${addr##*:}" -d "$file" -l "$half" -c "$CLIENTS" -T 2 -v 2>/dev/null |
		awk '/^> /{print $NF}' | sort -g >"$WORK/lat.sorted"
	local qps lost n p50 p99
	read -r qps lost <"$WORK/sum"
	n="$(wc -l <"$WORK/lat.sorted")"
	p50="$(sed -n "$(((n + 1) / 2))p" "$WORK/lat.sorted")"
	p99="$(sed -n "$(((n * 99 + 99) / 100))p" "$WORK/lat.sorted")"
	awk -v q="$qps" -v a="$p50" -v b="$p99" -v l="$lost" 'BEGIN{printf "%.0f %.3f %.3f %d\n", q, a*1000, b*1000, l}'
}

declare -A QPS P50 P99 LOST
for ((r = 1; r <= ROUNDS; r++)); do
	for t in "registry A" "bare A" "registry SRV"; do
		set -- $t
		addr="$dns"; [[ "$1" == bare ]] && addr="$bare"
		file="$WORK/a.txt"; [[ "$2" == SRV ]] && file="$WORK/srv.txt"
		echo "# bench-dns: round $r, $t" >&2
		read -r q a b l < <(run "$t" "$addr" "$file")
		QPS[$t]="${QPS[$t]:-} $q"; P50[$t]="${P50[$t]:-} $a"; P99[$t]="${P99[$t]:-} $b"; LOST[$t]=$(( ${LOST[$t]:-0} + l ))
	done
done

mean() { awk '{s=0; for(i=1;i<=NF;i++) s+=$i; printf "%.0f", s/NF}' <<<"$1"; }
meanf() { awk '{s=0; for(i=1;i<=NF;i++) s+=$i; printf "%.3f", s/NF}' <<<"$1"; }
echo "DNS (dnsperf -c $CLIENTS -T 2, ${DURATION} s × $ROUNDS rounds alternating, latencies from separate -v runs; 10-instance service on registry dev, no EDNS: SRV answers are cut to 512 bytes with TC)"
echo
echo "| server | query | queries/s | p50 ms | p99 ms | lost | registry / bare |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
bareq="$(mean "${QPS[bare A]}")"
for t in "registry A" "bare A" "registry SRV"; do
	set -- $t
	q="$(mean "${QPS[$t]}")"
	ratio=""
	[[ "$1" == registry ]] && ratio="$(awk -v a="$q" -v b="$bareq" 'BEGIN{printf "**%.2f**", a/b}')"
	echo "| $1 | $2 | $q | $(meanf "${P50[$t]}") | $(meanf "${P99[$t]}") | ${LOST[$t]} | $ratio |"
done
echo
echo "Rounds (queries/s): $(for t in "registry A" "bare A" "registry SRV"; do printf '%s:%s; ' "$t" "${QPS[$t]}"; done)"

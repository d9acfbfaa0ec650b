#!/usr/bin/env bash
# Load benchmarks (`just bench`). Every figure is a ratio of two measurements
# taken in this one run, because the machine is shared and noisy.
#
#   (a) throughput of /verify-token for a valid cached token against a
#       separate bare process (server/examples/bare.rs: one axum handler
#       answering 200 "ok" on powgate's runtime and hyper settings), so that
#       every layer powgate puts on the hot path (middleware, routing,
#       connection accounting, the token check) is in the figure; same
#       connections and duration, runs alternating over a few rounds, the
#       medians compared. The bare /healthz of powgate itself is measured in
#       the same rounds as extra information. Then /verify-token's p99 at
#       half its throughput, beside /healthz's p99 at the same rate: the
#       floor of this rig, where oha and the server share the CPUs;
#   (b) /verify-token's p99 at a constant moderate rate, without and then
#       during a flood of wrong solutions to fresh challenges from many
#       addresses (server/examples/flood.rs), beside the bare /healthz's p99
#       at the same rate without and during the same flood: the floor of
#       this rig. Unloaded and flooded runs alternate over a few rounds,
#       and each figure is the median of the rounds' p99s. The flood client
#       runs at nice 19: a real attacker's CPU is
#       not the server's, and at normal priority this client takes a whole
#       CPU of the two from the server and from oha. The flood is also run
#       at normal priority, as a second figure.
#   (c) the server's peak RSS during all that, against
#       verification permits x argon2 memory + 64 MiB, with the adaptive
#       difficulty's scores filled first by challenges from 100 000 /24s;
#   (d) one server-side argon2id verification with the default parameters
#       against the C reference CLI (server/examples/verify_cost.rs);
#   (e) proxy mode (issue 16): requests with a valid token through powgate
#       (`POW_UPSTREAM`) against the same requests through nginx
#       `proxy_pass`, both to the same separate upstream process (the bare
#       example, which answers 200 "ok" at every path), keep-alive at both
#       hops, small responses; throughput rounds alternate nginx / powgate /
#       the upstream directly, and the medians are compared. Then the p50
#       latency each proxy adds to the upstream at a moderate constant rate
#       (rounds alternate again), and powgate's RSS while a 1 GiB upload
#       streams through it to the upstream.
#   (f) the TCP gate (issue 20): `powgate tcp` in front of an echo service
#       (server/examples/tcp_bench.rs, which is also the client). The time
#       from connect to the first echoed byte, through the gate with a
#       token (greeting, TOKEN, OK: no argon2 in it) and directly, p50 and
#       p99 over BENCH_TCP_COUNT connections one after another; and the
#       rate of a BENCH_STREAM_MIB stream echoed through the gate and
#       directly. Rounds alternate gate / direct; medians are compared.
#       As in (e), with BENCH_PIN=1 the gate runs alone on CPU 0 and the
#       echo service and the client share the others, in the direct rounds
#       too: unpinned on 2 CPUs, the gate's own copies compete with the
#       client's and the echo's for the same cores, and the ratio measures
#       the machine's CPU count more than the gate.
#   (g) the PostgreSQL store against SQLite (issue 17), on a PostgreSQL
#       cluster of its own (scripts/postgres.sh, durable like the SQLite
#       file: fsync and synchronous_commit on) and an SQLite file, each
#       seeded with BENCH_G_TOKENS live tokens (1 000 000) in one
#       transaction; one powgate per store, each with its database pinned
#       to CPU 0 (PostgreSQL too, so both stores get the same CPU) and wrk
#       on the others. Rounds alternate SQLite / PostgreSQL: /verify-token
#       with one cached token, then with tokens drawn uniformly at random
#       from all of them (most not cached; wrk with
#       scripts/bench-verify-tokens.lua), medians compared; the process
#       start to the first 200 on /healthz with them all stored; the RSS
#       after the random runs; token issue (POST /api/solve) and a known
#       token from a new address, p50/p99 over BENCH_G_SAMPLES each; and
#       with a second powgate on the same PostgreSQL, the time from a
#       revocation on one to the other's first refusal, over
#       BENCH_G_REVOCATIONS (scripts/bench-store-probe.py).
#
# Installs what it needs when missing (oha with cargo, Debian's argon2 CLI,
# jq), builds the release binaries, starts its own powgate on a temporary
# database, and cleans up after itself. Safe to run again and again.
# Writes bench-results/bench-*.json and bench-results/bench-summary.json and
# prints a table with every figure, its target, and the command behind it.
#
# Settings (environment):
#   BENCH_PARTS=abcdefg         which parts to run, e.g. BENCH_PARTS=a for (a)
#                               only; (c) is measured during (b), so it needs b
#   BENCH_PORT=18089            loopback port for the server under test
#   BENCH_BARE_PORT=18090       loopback port for the bare baseline of (a)
#   BENCH_SECONDS=10            seconds per throughput run in (a)
#   BENCH_ROUNDS=3              bare/verify/healthz rounds in (a), median taken
#   BENCH_PIN=1                 in (a), both servers on CPU 0 and oha on the
#                               others (needs 2+ CPUs and taskset): unpinned,
#                               oha takes as much CPU as the servers and the
#                               figure is mostly the load generator's; 0 to
#                               let them share every CPU
#   BENCH_CONNECTIONS=32        concurrent connections in (a)
#   BENCH_LATENCY_SECONDS=15    seconds per constant-rate latency run
#   BENCH_RATE=400              /verify-token requests/s in (b)
#   BENCH_FLOOD_SECONDS=10      seconds per constant-rate run in (b)
#   BENCH_FLOOD_ROUNDS=3        unloaded/flood rounds in (b), median taken
#   BENCH_FLOOD_THREADS=32      flood client threads in (b)
#   BENCH_VERIFY_PERMITS=nproc  POW_VERIFY_PERMITS of the server under test
#   BENCH_VERIFY_RUNS=15        timed hashes per side in (d)
#   BENCH_SCORED_NETWORKS=100000  IPv4 /24s given a challenge before (b), so
#                               that (c) includes full adaptive scores
#   BENCH_UPSTREAM_PORT=18091   loopback port of (e)'s upstream
#   BENCH_NGINX_PORT=18092      loopback port of (e)'s nginx
#   BENCH_PROXY_RATE=1000       requests/s of (e)'s latency runs
#   BENCH_UPLOAD_MIB=1024       size of (e)'s upload
#   BENCH_TCP_PORT=18093        loopback port of (f)'s gate
#   BENCH_ECHO_PORT=18094       loopback port of (f)'s echo service
#   BENCH_TCP_COUNT=500         connections per latency run in (f)
#   BENCH_STREAM_MIB=1024       size of (f)'s echoed stream
#   BENCH_G_SQLITE_PORT=18095   loopback port of (g)'s powgate on SQLite
#   BENCH_G_POSTGRES_PORT=18096 loopback port of (g)'s powgate on PostgreSQL
#   BENCH_G_SECOND_PORT=18097   loopback port of (g)'s second powgate on the
#                               same PostgreSQL (revocation propagation)
#   BENCH_G_TOKENS=1000000      live tokens seeded into each store in (g)
#   BENCH_G_SAMPLES=300         issues and new addresses per store and round
#   BENCH_G_REVOCATIONS=100     revocations timed in (g)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

parts="${BENCH_PARTS:-abcdefg}"
port="${BENCH_PORT:-18089}"
bare_port="${BENCH_BARE_PORT:-18090}"
secs="${BENCH_SECONDS:-10}"
rounds="${BENCH_ROUNDS:-3}"
conns="${BENCH_CONNECTIONS:-32}"
lat_secs="${BENCH_LATENCY_SECONDS:-15}"
rate="${BENCH_RATE:-400}"
b_secs="${BENCH_FLOOD_SECONDS:-10}"
flood_rounds="${BENCH_FLOOD_ROUNDS:-3}"
flood_threads="${BENCH_FLOOD_THREADS:-32}"
permits="${BENCH_VERIFY_PERMITS:-$(nproc)}"
verify_runs="${BENCH_VERIFY_RUNS:-15}"
scored="${BENCH_SCORED_NETWORKS:-100000}"
upstream_port="${BENCH_UPSTREAM_PORT:-18091}"
nginx_port="${BENCH_NGINX_PORT:-18092}"
proxy_rate="${BENCH_PROXY_RATE:-1000}"
upload_mib="${BENCH_UPLOAD_MIB:-1024}"
tcp_port="${BENCH_TCP_PORT:-18093}"
echo_port="${BENCH_ECHO_PORT:-18094}"
tcp_count="${BENCH_TCP_COUNT:-500}"
stream_mib="${BENCH_STREAM_MIB:-1024}"
g_sqlite_port="${BENCH_G_SQLITE_PORT:-18095}"
g_postgres_port="${BENCH_G_POSTGRES_PORT:-18096}"
g_second_port="${BENCH_G_SECOND_PORT:-18097}"
g_tokens="${BENCH_G_TOKENS:-1000000}"
g_samples="${BENCH_G_SAMPLES:-300}"
g_revocations="${BENCH_G_REVOCATIONS:-100}"
base="http://127.0.0.1:$port"
bare_base="http://127.0.0.1:$bare_port"
out="$root/bench-results"

if [[ ! $parts =~ ^[abcdefg]+$ ]]; then
    echo "BENCH_PARTS=$parts: use letters among a, b, c, d, e, f, g" >&2
    exit 1
fi
if [[ $parts == *c* && $parts != *b* ]]; then
    echo "BENCH_PARTS=$parts: (c) is measured during (b); add b" >&2
    exit 1
fi
# True when part $1 is to run.
want() { [[ $parts == *"$1"* ]]; }

say() { printf '==> %s\n' "$*" >&2; }
commands=()
# Shell-quotes its arguments, readably: 'a b' rather than a\ b.
quote() {
    local a q=()
    for a; do
        if [[ $a =~ ^[][A-Za-z0-9_./:=,@%+-]+$ ]]; then q+=("$a"); else q+=("'${a//\'/\'\\\'\'}'"); fi
    done
    echo "${q[*]}"
}

# --- tools -------------------------------------------------------------------
if ! command -v oha >/dev/null; then
    say "installing oha"
    # --locked: oha's own lock file; a fresh resolution picks dependencies
    # that need a newer rustc than this machine's.
    cargo install --locked oha
fi
apt_need=()
want d && ! command -v argon2 >/dev/null && apt_need+=(argon2)
command -v jq >/dev/null || apt_need+=(jq)
command -v curl >/dev/null || apt_need+=(curl)
want d && ! command -v objdump >/dev/null && apt_need+=(binutils)
# nginx lives in /usr/sbin, which is not on a normal user's PATH.
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
want e && ! [[ -x $nginx_bin ]] && apt_need+=(nginx)
want g && ! command -v wrk >/dev/null && apt_need+=(wrk)
want g && ! compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null && apt_need+=(postgresql)
want g && ! command -v openssl >/dev/null && apt_need+=(openssl)
if ((${#apt_need[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        say "installing ${apt_need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_need[@]}" >/dev/null
    else
        echo "missing ${apt_need[*]}: install them (Debian: apt-get install ${apt_need[*]}) and run again" >&2
        exit 1
    fi
fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "building powgate and the benchmark examples (release)"
# Only the examples the chosen parts run: (g) alone needs none.
examples=()
(want a || want e) && examples+=(--example bare)
want b && examples+=(--example flood)
want d && examples+=(--example verify_cost)
want f && examples+=(--example tcp_bench)
cargo build --release --locked -p powgate --bin powgate "${examples[@]}"
bin="$root/target/release/powgate"
bare="$root/target/release/examples/bare"
flood="$root/target/release/examples/flood"
verify_cost="$root/target/release/examples/verify_cost"
tcp_bench="$root/target/release/examples/tcp_bench"

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use; set BENCH_PORT" >&2
    exit 1
fi
if want a && (exec 3<>"/dev/tcp/127.0.0.1/$bare_port") 2>/dev/null; then
    echo "port $bare_port is in use; set BENCH_BARE_PORT" >&2
    exit 1
fi
for p in $(want e && echo "$upstream_port:BENCH_UPSTREAM_PORT $nginx_port:BENCH_NGINX_PORT") \
    $(want f && echo "$tcp_port:BENCH_TCP_PORT $echo_port:BENCH_ECHO_PORT") \
    $(want g && echo "$g_sqlite_port:BENCH_G_SQLITE_PORT $g_postgres_port:BENCH_G_POSTGRES_PORT $g_second_port:BENCH_G_SECOND_PORT"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/${p%%:*}") 2>/dev/null; then
        echo "port ${p%%:*} is in use; set ${p#*:}" >&2
        exit 1
    fi
done

# --- server management ---------------------------------------------------------
tmp=$(mktemp -d)
server_pid=""
bg_pids=()
# (g)'s PostgreSQL cluster, once started: where scripts/postgres.sh records it.
g_pg_state=""
cleanup() {
    for p in "${bg_pids[@]}" $server_pid; do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [[ -n $g_pg_state ]]; then
        POWGATE_TEST_POSTGRES_STATE=$g_pg_state scripts/postgres.sh stop || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# Starts powgate with the environment given as arguments, in the temporary
# directory (so no config.toml of the developer's is read), and waits for it.
# $health_url is where it answers once up: /healthz, or under the prefix in
# proxy mode.
health_url="$base/healthz"
start_server() {
    (cd "$tmp" && exec env POW_LISTEN="127.0.0.1:$port" POW_DATABASE="$tmp/bench.db" \
        POW_VERIFY_PERMITS="$permits" RUST_LOG=warn "$@" "$bin" serve) 2>>"$tmp/server.log" &
    server_pid=$!
    for _ in $(seq 200); do
        curl -fsS -o /dev/null "$health_url" 2>/dev/null && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "powgate did not start; its log:" >&2
    cat "$tmp/server.log" >&2
    exit 1
}
stop_server() {
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=""
}

mkdir -p "$out"
rm -f "$out"/bench-*.json

# oha with JSON output; the figures are picked out with jq below.
# oha_pin: the taskset command oha runs under, if any (part a).
oha_pin=()
oha_json() {
    local name=$1
    shift
    commands+=("$(quote "${oha_pin[@]}" oha --no-tui --output-format json "$@") > bench-results/bench-$name.json")
    "${oha_pin[@]}" oha --no-tui --output-format json "$@" >"$out/bench-$name.json"
}
# Successful (200) answers per second of a finished oha run.
ok_rps() { jq '(.statusCodeDistribution["200"] // 0) / .summary.total | round' "$out/bench-$1.json"; }
# Answers other than 200 in an oha run.
not_ok() { jq '[.statusCodeDistribution | to_entries[] | select(.key != "200") | .value] | add // 0' "$out/bench-$1.json"; }
# A latency percentile (p50, p99, ...) in milliseconds, to the microsecond.
pct_ms() { jq --arg p "$2" '.latencyPercentiles[$p] * 1e6 | round / 1000' "$out/bench-$1.json"; }
p99_ms() { pct_ms "$1" p99; }
# Answers other than 200, and transport errors (bar requests cut off by the
# end of the run), of a finished oha run.
non200() { jq '[.statusCodeDistribution | to_entries[] | select(.key != "200") | .value] | add // 0' "$out/bench-$1.json"; }
errors() { jq '[.errorDistribution | to_entries[] | select(.key | test("deadline") | not) | .value] | add // 0' "$out/bench-$1.json"; }
calc() { python3 -c "print(round($1, 3))"; }
verdict() { python3 -c "print('met' if $1 else 'MISSED')"; }
median() { python3 -c "import statistics, sys; print(round(statistics.median(float(x) for x in sys.argv[1:]), 3))" "$@"; }
# The same, rounded to a whole number (requests per second).
median_int() { python3 -c "import statistics, sys; print(round(statistics.median(float(x) for x in sys.argv[1:])))" "$@"; }
# Rows of the printed table and parts of the summary JSON, filled in by
# each part that runs.
rows=()
summary=()

# --- a token ----------------------------------------------------------------------
# Minted on a throw-away configuration (argon2 t=1, m=64 KiB, difficulty 1) so
# that solving is instant; the server measured below opens the same database,
# which holds the token and the challenge key.
say "minting a token (tiny argon2 parameters, difficulty 1)"
start_server ARGON2_TIME_COST=1 ARGON2_MEMORY_KB=64 POW_DIFFICULTY_LEVEL=1
commands+=("(server) POW_LISTEN=127.0.0.1:$port ARGON2_TIME_COST=1 ARGON2_MEMORY_KB=64 POW_DIFFICULTY_LEVEL=1 POW_DATABASE=<tmp> target/release/powgate serve")
commands+=("TOKEN=\$(target/release/powgate solve --quiet $base)")
want a && commands+=("(a) $((rounds + 1)) more tokens the same way: one for each measured /verify-token run of (a)")
token=$("$bin" solve --quiet "$base")
# (a) presents a token of its own in each measured run: at 150 000 req/s,
# three 10-s rounds on one token outrun even the largest request budget
# (1 000 000 a minute, a burst of three minutes' worth), and the last round
# then measures 429s.
a_tokens=()
if want a; then
    for _ in $(seq $((rounds + 1))); do
        a_tokens+=("$("$bin" solve --quiet "$base")")
    done
fi
stop_server

# The server under test: default argon2 parameters (t=8, m=64 MiB, p=1), so
# that the flood's verifications cost what they cost in production. The
# difficulty is the largest allowed so that no random nonce of the flood is
# ever right (it does not change the cost of a verification). No admission
# ticket (POW_TICKET_BITS=0): the flood sends bogus tickets, which a
# ticketed server refuses with one SHA-256, so (b) would no longer measure
# /verify-token beside saturated argon2 verification, the worst case it
# exists for (a flooder who pays for tickets reaches the same state).
#
# The per-token request budget stays on, so (a) measures its counting on
# every request, but at its largest values: one token carries the whole
# run, far beyond what any person's token passes (issue 15).
server_env=(POW_DIFFICULTY_LEVEL=1000000000 POW_TICKET_BITS=0
    POW_TOKEN_REQUESTS_PER_MINUTE=1000000 POW_TOKEN_REQUESTS_TOTAL=1000000000)
say "starting powgate: default argon2 parameters, POW_VERIFY_PERMITS=$permits"
commands+=("(server) POW_LISTEN=127.0.0.1:$port POW_VERIFY_PERMITS=$permits ${server_env[*]} POW_DATABASE=<tmp> target/release/powgate serve")
start_server "${server_env[@]}"
auth="Authorization: Bearer $token"
status=$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" "$base/verify-token")
if [[ $status != 200 ]]; then
    echo "the minted token is not valid on the server under test (HTTP $status)" >&2
    exit 1
fi

# --- (a) throughput ---------------------------------------------------------------
if want a; then
    say "(a) starting the bare baseline on port $bare_port"
    server_pin=()
    if [[ ${BENCH_PIN:-1} == 1 ]] && (($(nproc) >= 2)) && command -v taskset >/dev/null; then
        # Both servers get CPU 0 alone, so that each is the bottleneck
        # of its runs and oha (on the other CPUs) is not.
        server_pin=(taskset -c 0)
        oha_pin=(taskset -c "1-$(($(nproc) - 1))")
        taskset -a -p -c 0 "$server_pid" >/dev/null
        commands+=("taskset -a -p -c 0 <powgate's pid>")
    fi
    commands+=("(baseline) ${server_pin[*]:+${server_pin[*]} }target/release/examples/bare --listen 127.0.0.1:$bare_port")
    "${server_pin[@]}" "$bare" --listen "127.0.0.1:$bare_port" 2>>"$tmp/bare.log" &
    bare_pid=$!
    bg_pids+=("$bare_pid")
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "$bare_base/verify-token" 2>/dev/null && break
        sleep 0.1
    done
    say "(a) throughput: bare baseline, /verify-token, /healthz, $rounds rounds of ${secs} s each, $conns connections"
    # The baseline gets the same request as powgate, token included.
    "${oha_pin[@]}" oha --no-tui -z 2s -c "$conns" -H "$auth" "$bare_base/verify-token" >/dev/null
    "${oha_pin[@]}" oha --no-tui -z 2s -c "$conns" -H "$auth" "$base/verify-token" >/dev/null
    "${oha_pin[@]}" oha --no-tui -z 2s -c "$conns" "$base/healthz" >/dev/null
    bare_rps=()
    verify_rps=()
    health_rps=()
    a_not_ok=0
    for r in $(seq "$rounds"); do
        oha_json "a-bare-$r" -z "${secs}s" -c "$conns" -H "$auth" "$bare_base/verify-token"
        bare_rps+=("$(ok_rps "a-bare-$r")")
        oha_json "a-verify-$r" -z "${secs}s" -c "$conns" -H "Authorization: Bearer ${a_tokens[r - 1]}" "$base/verify-token"
        verify_rps+=("$(ok_rps "a-verify-$r")")
        a_not_ok=$((a_not_ok + $(not_ok "a-verify-$r")))
        oha_json "a-healthz-$r" -z "${secs}s" -c "$conns" "$base/healthz"
        health_rps+=("$(ok_rps "a-healthz-$r")")
        say "  round $r: bare ${bare_rps[-1]}, verify-token ${verify_rps[-1]}, healthz ${health_rps[-1]} req/s"
    done
    kill "$bare_pid" 2>/dev/null || true
    wait "$bare_pid" 2>/dev/null || true
    # The latency runs below, and parts (b) to (d), share every CPU again.
    if ((${#server_pin[@]})); then
        taskset -a -p -c "0-$(($(nproc) - 1))" "$server_pid" >/dev/null
        oha_pin=()
    fi
    bare_median=$(median_int "${bare_rps[@]}")
    verify_median=$(median_int "${verify_rps[@]}")
    health_median=$(median_int "${health_rps[@]}")
    ratio_a=$(calc "$verify_median / $bare_median")
    ratio_a_health=$(calc "$verify_median / $health_median")
    half_rate=$(python3 -c "print(max(1, int($verify_median / 2)))")

    say "(a) /verify-token p99 at half the measured maximum: $half_rate req/s for ${lat_secs} s, and /healthz's at the same rate"
    oha_json a-half-rate -z "${lat_secs}s" -c "$conns" -q "$half_rate" --latency-correction \
        -H "Authorization: Bearer ${a_tokens[rounds]}" "$base/verify-token"
    a_not_ok=$((a_not_ok + $(not_ok a-half-rate)))
    oha_json a-half-rate-healthz -z "${lat_secs}s" -c "$conns" -q "$half_rate" --latency-correction "$base/healthz"
    p99_half=$(p99_ms a-half-rate)
    p50_half=$(pct_ms a-half-rate p50)
    rps_half=$(ok_rps a-half-rate)
    p99_half_health=$(p99_ms a-half-rate-healthz)
    p50_half_health=$(pct_ms a-half-rate-healthz p50)
    summary+=("$(jq -n \
        --argjson bare "$bare_median" --argjson verify "$verify_median" --argjson health "$health_median" \
        --argjson ratio "$ratio_a" --argjson ratio_health "$ratio_a_health" --argjson rounds "$rounds" \
        --argjson bare_rounds "[$(IFS=,; echo "${bare_rps[*]}")]" \
        --argjson verify_rounds "[$(IFS=,; echo "${verify_rps[*]}")]" \
        --argjson health_rounds "[$(IFS=,; echo "${health_rps[*]}")]" \
        --argjson half_rate "$half_rate" --argjson p99_half "$p99_half" --argjson p99_half_health "$p99_half_health" \
        '{a: {bare_rps: $bare, verify_rps: $verify, ratio: $ratio, target: ">= 0.8", rounds: $rounds,
              bare_rps_rounds: $bare_rounds, verify_rps_rounds: $verify_rounds,
              healthz_rps: $health, healthz_rps_rounds: $health_rounds, ratio_to_healthz: $ratio_health,
              half_rate: $half_rate, p99_ms_at_half_rate: $p99_half, p99_target_ms: 1.0,
              healthz_p99_ms_at_half_rate: $p99_half_health}}')")
    rows+=("| (a) /verify-token (cached token) vs the bare process, median of $rounds rounds (rounds: ${verify_rps[*]} vs ${bare_rps[*]}) | $verify_median / $bare_median req/s = **${ratio_a}x** | >= 0.8x | $(verdict "$ratio_a >= 0.8") |")
    rows+=("| (a) same rounds, powgate's own /healthz (rounds: ${health_rps[*]}) | $verify_median / $health_median req/s = ${ratio_a_health}x | | |")
    rows+=("| (a) /verify-token p99 at half max ($half_rate req/s offered, $rps_half served; p50 $p50_half ms) | **$p99_half ms** | <= 1 ms | $(verdict "$p99_half <= 1.0") |")
    rows+=("| (a) same rate, bare /healthz: the rig's floor (p50 $p50_half_health ms) | $p99_half_health ms | | |")
    rows+=("| (a) /verify-token answers other than 200 in those runs (each run has a token of its own) | $a_not_ok | 0 | $(verdict "$a_not_ok == 0") |")
fi

# --- (b) and (c): latency and memory under flood -----------------------------
if want b; then
    # (c) must hold with the adaptive-difficulty scores full (issue 15):
    # first $scored challenges, each from an address in an IPv4 /24 of its
    # own (through the trusted X-Real-IP), so that each scores an address
    # and a network.
    say "(c) scoring $scored networks: one challenge from each"
    commands+=("(c) $scored x POST /api/challenge with X-Real-IP 10.a.b.1 (python3, see scripts/bench.sh)")
    python3 - "$port" "$scored" <<'PY'
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)
refused = 0
for i in range(n):
    ip = f"{10 + i // 65536}.{i // 256 % 256}.{i % 256}.1"
    conn.request("POST", "/api/challenge", body="{}",
                 headers={"Content-Type": "application/json", "X-Real-IP": ip})
    r = conn.getresponse()
    r.read()
    refused += r.status != 200
if refused:
    print(f"{refused} of {n} challenges refused", file=sys.stderr)
PY
    networks_scored=$(curl -fsS "$base/metrics" | awk '/^powgate_networks_scored / {print $2}')
    # Peak RSS: VmHWM is the kernel's own high-water mark of the server process,
    # over its whole life (so it includes (a)); VmRSS is also sampled during the
    # flood, as a cross-check.
    rss_samples="$tmp/rss"
    sample_rss() {
        while kill -0 "$server_pid" 2>/dev/null; do
            awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || true
            sleep 0.2
        done >"$rss_samples"
    }

    # Unloaded and flooded runs alternate, $flood_rounds times, and each figure
    # is the median over the rounds: a single 10-second p99 on this rig swings
    # several-fold between identical runs.
    sample_rss &
    bg_pids+=($!)
    # One flood: $1 = name, $2 = nice value of the flood client, then the oha
    # measurements to take during it, one after the other ("verify" and/or
    # "healthz"). The flood starts 3 s ahead and stops by itself.
    flood_run() {
        local name=$1 niceness=$2
        shift 2
        local secs=$(($# * b_secs + 6)) what
        say "(b) flood at nice $niceness: $flood_threads threads for ${secs} s; $* at $rate req/s from its 3rd second"
        commands+=("nice -n $niceness $flood --url $base --threads $flood_threads --seconds $secs > bench-results/bench-$name.json")
        nice -n "$niceness" "$flood" --url "$base" --threads "$flood_threads" --seconds "$secs" >"$out/bench-$name.json" &
        flood_pid=$!
        bg_pids+=("$flood_pid")
        sleep 3
        for what; do b_measure "$name-$what" "$what"; done
        wait "$flood_pid"
    }
    # A constant-rate oha run of /verify-token or /healthz: $1 = name, $2 = which.
    b_measure() {
        if [[ $2 == verify ]]; then
            oha_json "$1" -z "${b_secs}s" -c 8 -q "$rate" --latency-correction -H "$auth" "$base/verify-token"
        else
            oha_json "$1" -z "${b_secs}s" -c 8 -q "$rate" --latency-correction "$base/healthz"
        fi
    }
    for r in $(seq "$flood_rounds"); do
        say "(b) round $r of $flood_rounds: unloaded /verify-token, then /healthz, at $rate req/s for ${b_secs} s each"
        b_measure "b-unloaded-verify-$r" verify
        b_measure "b-unloaded-healthz-$r" healthz
        flood_run "b-flood-$r" 19 verify healthz
    done
    flood_run b-flood-nice0 0 verify
    hwm_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$server_pid/status")
    stop_server
    peak_sample_kib=$(sort -n "$rss_samples" | tail -n 1)

    # The p99s (or p50s with $2 = p50) of one series over the rounds, in order.
    series() { for r in $(seq "$flood_rounds"); do pct_ms "$(printf "$1" "$r")" "${2:-p99}"; done; }
    b_unloaded=($(series b-unloaded-verify-%s))
    b_flood=($(series b-flood-%s-verify))
    h_unloaded=($(series b-unloaded-healthz-%s))
    h_flood=($(series b-flood-%s-healthz))
    p99_unloaded=$(median "${b_unloaded[@]}")
    p99_flood=$(median "${b_flood[@]}")
    p50_unloaded=$(median $(series b-unloaded-verify-%s p50))
    p50_flood=$(median $(series b-flood-%s-verify p50))
    ratio_b=$(calc "$p99_flood / $p99_unloaded")
    p99_unloaded_health=$(median "${h_unloaded[@]}")
    p99_flood_health=$(median "${h_flood[@]}")
    ratio_b_health=$(calc "$p99_flood_health / $p99_unloaded_health")
    p99_flood0=$(p99_ms b-flood-nice0-verify)
    p50_flood0=$(pct_ms b-flood-nice0-verify p50)
    ratio_b0=$(calc "$p99_flood0 / $p99_unloaded")
    rps_flood_verify=$(median $(for r in $(seq "$flood_rounds"); do ok_rps "b-flood-$r-verify"; done))
    non200_flood=$(python3 -c "import sys; print(sum(int(x) for x in sys.argv[1:]))" $(for r in $(seq "$flood_rounds"); do non200 "b-flood-$r-verify"; done))
    errors_flood=$(python3 -c "import sys; print(sum(int(x) for x in sys.argv[1:]))" $(for r in $(seq "$flood_rounds"); do errors "b-flood-$r-verify"; done))
    # Requests per second, answers by status, and argon2 verifications of a flood.
    flood_rate() { jq '.requests_per_second | . * 10 | round / 10' "$out/bench-$1.json"; }
    flood_answers() { jq -r '.by_status | to_entries | map("\(.key) \(.value.count) (\(.value.per_second * 10 | round / 10)/s)") | join(", ")' "$out/bench-$1.json"; }
    flood_verified() { jq '[.by_status | to_entries[] | select(.key | test("^solve (200|403)$")) | .value.count] | add // 0' "$out/bench-$1.json"; }
    flood_rps=$(median $(for r in $(seq "$flood_rounds"); do flood_rate "b-flood-$r"; done))
    flood_status=$(flood_answers b-flood-1)
    verifications=$(python3 -c "import sys; print(sum(int(x) for x in sys.argv[1:]))" $(for r in $(seq "$flood_rounds"); do flood_verified "b-flood-$r"; done))
    flood0_rps=$(flood_rate b-flood-nice0)
    verifications0=$(flood_verified b-flood-nice0)

    m_kib=65536
    bound_mib=$((permits * m_kib / 1024 + 64))
    peak_mib=$(calc "$hwm_kib / 1024")
    sample_mib=$(calc "${peak_sample_kib:-0} / 1024")
    summary+=("$(jq -n \
        --argjson rate "$rate" --argjson p99_unloaded "$p99_unloaded" --argjson p99_flood "$p99_flood" \
        --argjson ratio_b "$ratio_b" --argjson flood_rps "$flood_rps" --argjson verifications "$verifications" \
        --argjson p99_unloaded_health "$p99_unloaded_health" --argjson p99_flood_health "$p99_flood_health" \
        --argjson ratio_b_health "$ratio_b_health" --argjson rounds_b "$flood_rounds" \
        --argjson b_unloaded_rounds "[$(IFS=,; echo "${b_unloaded[*]}")]" --argjson b_flood_rounds "[$(IFS=,; echo "${b_flood[*]}")]" \
        --argjson p99_flood0 "$p99_flood0" --argjson ratio_b0 "$ratio_b0" --argjson flood0_rps "$flood0_rps" \
        '{b: {rate: $rate, rounds: $rounds_b, p99_ms_unloaded: $p99_unloaded, p99_ms_flood: $p99_flood, ratio: $ratio_b,
              p99_ms_unloaded_rounds: $b_unloaded_rounds, p99_ms_flood_rounds: $b_flood_rounds,
              target: "<= 2.0", flood_client_nice: 19, flood_requests_per_second: $flood_rps,
              flood_verifications: $verifications,
              healthz_floor: {p99_ms_unloaded: $p99_unloaded_health, p99_ms_flood: $p99_flood_health, ratio: $ratio_b_health},
              at_normal_priority: {p99_ms_flood: $p99_flood0, ratio: $ratio_b0, flood_requests_per_second: $flood0_rps}}}')")
    rows+=("| (b) /verify-token p99 at $rate req/s, median of $flood_rounds rounds: unloaded / under flood, flood client at nice 19 (p50: $p50_unloaded / $p50_flood ms) | $p99_unloaded / $p99_flood ms = **${ratio_b}x** | <= 2x | $(verdict "$ratio_b <= 2.0") |")
    rows+=("| (b) the rounds' p99s, unloaded / under flood | ${b_unloaded[*]} / ${b_flood[*]} ms | | |")
    rows+=("| (b) same rate and flood, bare /healthz: the rig's floor (rounds: ${h_unloaded[*]} / ${h_flood[*]} ms) | $p99_unloaded_health / $p99_flood_health ms = ${ratio_b_health}x | | |")
    rows+=("| (b) flood (median of the rounds; answers of round 1) | $flood_rps req/s ($flood_status); $verifications argon2 verifications in all; /verify-token during it: $rps_flood_verify req/s served, $non200_flood not 200, $errors_flood errors | | |")
    rows+=("| (b) same, flood client at normal priority, taking CPU from server and oha ($flood0_rps req/s of flood, $verifications0 verifications; p50 $p50_flood0 ms) | $p99_unloaded / $p99_flood0 ms = ${ratio_b0}x | | |")
    if want c; then
        summary+=("$(jq -n --argjson peak_mib "$peak_mib" --argjson sample_mib "$sample_mib" \
            --argjson bound_mib "$bound_mib" --argjson permits "$permits" \
            --argjson scored "$scored" --argjson networks_scored "${networks_scored:-0}" \
            '{c: {peak_rss_mib: $peak_mib, sampled_rss_mib: $sample_mib, bound_mib: $bound_mib, permits: $permits,
                  challenge_networks: $scored, adaptive_holders_scored: $networks_scored}}')")
        rows+=("| (c) server peak RSS (VmHWM; VmRSS sampled in flood: $sample_mib MiB), after $scored networks scored ($networks_scored addresses and networks held) | **$peak_mib MiB** | <= $permits x 64 + 64 = $bound_mib MiB | $(verdict "$peak_mib <= $bound_mib") |")
    fi
fi

# --- (d) verification cost -------------------------------------------------------
if want d; then
    say "(d) one verification (t=8, m=64 MiB, p=1): Rust (reused block) vs the C reference CLI, $verify_runs runs each, interleaved"
    commands+=("$verify_cost --runs $verify_runs --c-cli argon2 > bench-results/bench-d-verify-cost.json   # C side per run: echo -n password | argon2 somesalt16bytes! -id -t 8 -k 65536 -p 1 -l 32 -r")
    "$verify_cost" --runs "$verify_runs" --c-cli argon2 >"$out/bench-d-verify-cost.json"
    d="$out/bench-d-verify-cost.json"
    rust_wall=$(jq '.rust_reused_block.wall_median_ms | . * 10 | round / 10' "$d")
    rust_cpu=$(jq '.rust_reused_block.cpu_median_ms | . * 10 | round / 10' "$d")
    c_wall=$(jq '.c_cli.wall_median_ms | . * 10 | round / 10' "$d")
    c_cpu=$(jq '.c_cli.cpu_median_ms | . * 10 | round / 10' "$d")
    ratio_d_wall=$(jq '.ratio_rust_over_c_wall * 1000 | round / 1000' "$d")
    ratio_d_cpu=$(jq '.ratio_rust_over_c_cpu * 1000 | round / 1000' "$d")
    c_startup=$(jq '.c_startup_ms | . * 10 | round / 10' "$d")
    rust_fresh=$(jq '.rust_fresh_block_median_ms | . * 10 | round / 10' "$d")
    # opt.c, the SSE2 build, multiplies with pmuludq (_mm_mul_epu32) in every
    # BlaMka step; the portable ref.c has none.
    argon2_bin=$(command -v argon2)
    sse_ops=$(objdump -d "$argon2_bin" | grep -c pmuludq || true)
    if ((sse_ops > 0)); then c_build="SSE-optimised (opt.c, $sse_ops pmuludq)"; else c_build="portable reference (ref.c: no pmuludq in $argon2_bin)"; fi
    summary+=("$(jq -n \
        --argjson rust_wall "$rust_wall" --argjson c_wall "$c_wall" --argjson ratio_d_wall "$ratio_d_wall" \
        --argjson rust_cpu "$rust_cpu" --argjson c_cpu "$c_cpu" --argjson ratio_d_cpu "$ratio_d_cpu" \
        --arg c_build "$c_build" \
        '{d: {rust_wall_ms: $rust_wall, c_wall_ms: $c_wall, ratio_wall: $ratio_d_wall,
              rust_cpu_ms: $rust_cpu, c_cpu_ms: $c_cpu, ratio_cpu: $ratio_d_cpu, target: "<= 0.7",
              c_build: $c_build}}')")
    rows+=("| (d) one verification, Rust (reused block) / C reference, wall median | $rust_wall / $c_wall ms = **${ratio_d_wall}x** | <= 0.7x | $(verdict "$ratio_d_wall <= 0.7") |")
    rows+=("| (d) same, CPU time median (noise check) | $rust_cpu / $c_cpu ms = ${ratio_d_cpu}x | | |")
    rows+=("| (d) C CLI startup (t=1, m=8 KiB) / Rust with a fresh block per hash | $c_startup ms / $rust_fresh ms | | |")
    rows+=("| (d) C build | $c_build | | |")
fi

# --- (e) proxy mode ----------------------------------------------------------------
if want e; then
    [[ -n $server_pid ]] && stop_server
    e_secs=$secs
    proxy_pin=()
    side_pin=()
    if [[ ${BENCH_PIN:-1} == 1 ]] && (($(nproc) >= 2)) && command -v taskset >/dev/null; then
        # Each proxy gets CPU 0 alone, so that it is the bottleneck of its
        # runs; the upstream and oha share the others. The direct runs show
        # how far those others go without a proxy in between.
        proxy_pin=(taskset -c 0)
        side_pin=(taskset -c "1-$(($(nproc) - 1))")
    fi
    oha_pin=("${side_pin[@]}")

    say "(e) starting the upstream (the bare example) on port $upstream_port"
    commands+=("(e upstream) ${side_pin[*]:+${side_pin[*]} }target/release/examples/bare --listen 127.0.0.1:$upstream_port")
    "${side_pin[@]}" "$bare" --listen "127.0.0.1:$upstream_port" 2>>"$tmp/upstream.log" &
    upstream_pid=$!
    bg_pids+=("$upstream_pid")
    up_base="http://127.0.0.1:$upstream_port"
    nginx_base="http://127.0.0.1:$nginx_port"

    # nginx as a site would run it in front of an application: one worker
    # (the CPU it is pinned to), keep-alive to the upstream, nothing
    # buffered to disk, no access log (powgate writes none either).
    ngx="$tmp/nginx"
    mkdir -p "$ngx"
    # As root, nginx's workers run as nobody and must reach its directories.
    chmod 755 "$tmp" "$ngx"
    cat >"$ngx/nginx.conf" <<NGINX
worker_processes 1;
pid $ngx/nginx.pid;
error_log $ngx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $ngx/client_body;
    proxy_temp_path $ngx/proxy;
    fastcgi_temp_path $ngx/fastcgi;
    uwsgi_temp_path $ngx/uwsgi;
    scgi_temp_path $ngx/scgi;
    upstream app {
        server 127.0.0.1:$upstream_port;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$nginx_port;
        keepalive_requests 1000000;
        client_max_body_size 0;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
        }
    }
}
NGINX
    commands+=("(e nginx) ${proxy_pin[*]:+${proxy_pin[*]} }nginx -c <tmp>/nginx.conf -g 'daemon off;'   # worker_processes 1; upstream keepalive 64; proxy_pass http://app; proxy_http_version 1.1; proxy_request_buffering off")
    "${proxy_pin[@]}" "$nginx_bin" -e "$ngx/error.log" -p "$ngx" -c "$ngx/nginx.conf" -g 'daemon off;' 2>>"$tmp/nginx.log" &
    nginx_pid=$!
    bg_pids+=("$nginx_pid")

    say "(e) starting powgate in proxy mode in front of the same upstream"
    proxy_env=(POW_UPSTREAM="$up_base" POW_TOKEN_REQUESTS_PER_MINUTE=1000000 POW_TOKEN_REQUESTS_TOTAL=1000000000)
    commands+=("(e powgate) ${proxy_pin[*]:+${proxy_pin[*]} }POW_LISTEN=127.0.0.1:$port ${proxy_env[*]} POW_DATABASE=<tmp> target/release/powgate serve")
    health_url="$base/.powgate/healthz"
    start_server "${proxy_env[@]}"
    ((${#proxy_pin[@]})) && taskset -a -p -c 0 "$server_pid" >/dev/null
    for u in "$up_base/" "$nginx_base/"; do
        for _ in $(seq 100); do
            curl -fsS -o /dev/null "$u" 2>/dev/null && break
            sleep 0.1
        done
    done
    for u in "$up_base/" "$nginx_base/" "$base/"; do
        status=$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" "$u")
        if [[ $status != 200 ]]; then
            echo "(e) $u answers HTTP $status to a request with the token, not 200" >&2
            cat "$tmp/nginx.log" "$ngx/error.log" "$tmp/server.log" 2>/dev/null | tail -n 20 >&2
            exit 1
        fi
    done
    # Without the token, powgate must refuse: the figure is of gated traffic.
    status=$(curl -s -o /dev/null -w '%{http_code}' "$base/")
    [[ $status == 401 ]] || { echo "(e) powgate passes a request without a token (HTTP $status)" >&2; exit 1; }

    page="/app/page?q=1"
    say "(e) throughput through nginx, powgate and directly: $rounds rounds of ${e_secs} s each, $conns connections, GET $page with the token"
    for u in "$nginx_base" "$base" "$up_base"; do
        "${oha_pin[@]}" oha --no-tui -z 2s -c "$conns" -H "$auth" "$u$page" >/dev/null
    done
    e_nginx=()
    e_powgate=()
    e_direct=()
    for r in $(seq "$rounds"); do
        oha_json "e-nginx-$r" -z "${e_secs}s" -c "$conns" -H "$auth" "$nginx_base$page"
        e_nginx+=("$(ok_rps "e-nginx-$r")")
        oha_json "e-powgate-$r" -z "${e_secs}s" -c "$conns" -H "$auth" "$base$page"
        e_powgate+=("$(ok_rps "e-powgate-$r")")
        oha_json "e-direct-$r" -z "${e_secs}s" -c "$conns" -H "$auth" "$up_base$page"
        e_direct+=("$(ok_rps "e-direct-$r")")
        say "  round $r: nginx ${e_nginx[-1]}, powgate ${e_powgate[-1]}, direct ${e_direct[-1]} req/s"
    done
    e_nginx_median=$(median_int "${e_nginx[@]}")
    e_powgate_median=$(median_int "${e_powgate[@]}")
    e_direct_median=$(median_int "${e_direct[@]}")
    ratio_e=$(calc "$e_powgate_median / $e_nginx_median")

    say "(e) latency at $proxy_rate req/s, $rounds rounds alternating direct / nginx / powgate, ${lat_secs} s each"
    e_p50_direct=()
    e_p50_nginx=()
    e_p50_powgate=()
    e_p99_direct=()
    e_p99_nginx=()
    e_p99_powgate=()
    for r in $(seq "$rounds"); do
        for side in direct nginx powgate; do
            case $side in
                direct) u=$up_base ;;
                nginx) u=$nginx_base ;;
                powgate) u=$base ;;
            esac
            oha_json "e-lat-$side-$r" -z "${lat_secs}s" -c 8 -q "$proxy_rate" --latency-correction -H "$auth" "$u$page"
        done
        e_p50_direct+=("$(pct_ms "e-lat-direct-$r" p50)")
        e_p50_nginx+=("$(pct_ms "e-lat-nginx-$r" p50)")
        e_p50_powgate+=("$(pct_ms "e-lat-powgate-$r" p50)")
        e_p99_direct+=("$(p99_ms "e-lat-direct-$r")")
        e_p99_nginx+=("$(p99_ms "e-lat-nginx-$r")")
        e_p99_powgate+=("$(p99_ms "e-lat-powgate-$r")")
        say "  round $r: p50 direct ${e_p50_direct[-1]}, nginx ${e_p50_nginx[-1]}, powgate ${e_p50_powgate[-1]} ms"
    done
    p50_direct=$(median "${e_p50_direct[@]}")
    p50_nginx=$(median "${e_p50_nginx[@]}")
    p50_powgate=$(median "${e_p50_powgate[@]}")
    p99_direct=$(median "${e_p99_direct[@]}")
    p99_nginx=$(median "${e_p99_nginx[@]}")
    p99_powgate=$(median "${e_p99_powgate[@]}")
    added_powgate=$(calc "$p50_powgate - $p50_direct")
    added_nginx=$(calc "$p50_nginx - $p50_direct")

    # The upload: streamed from /dev/zero by curl (chunked, never on disk),
    # counted and discarded by the upstream; powgate's RSS sampled meanwhile.
    upload_bytes=$((upload_mib * 1024 * 1024))
    say "(e) $upload_mib MiB upload through powgate, RSS sampled every 0.1 s; the same upload directly"
    sleep 1
    idle_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status")
    up_samples="$tmp/upload-rss"
    (while kill -0 "$server_pid" 2>/dev/null; do
        awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || true
        sleep 0.1
    done >"$up_samples") &
    upload_sampler=$!
    bg_pids+=("$upload_sampler")
    upload() {
        head -c "$upload_bytes" /dev/zero \
            | curl -sS -X POST -T - -H "$auth" -H 'Content-Type: application/octet-stream' \
                -w '\n%{http_code} %{time_total}\n' "$1/upload"
    }
    commands+=("head -c $upload_bytes /dev/zero | curl -sS -X POST -T - -H 'Authorization: Bearer \$TOKEN' $base/upload   # and the same to $up_base/upload")
    up_out=$(upload "$base")
    kill "$upload_sampler" 2>/dev/null || true
    wait "$upload_sampler" 2>/dev/null || true
    direct_out=$(upload "$up_base")
    up_received=$(sed -n 1p <<<"$up_out")
    read -r up_status up_secs < <(sed -n 2p <<<"$up_out")
    direct_received=$(sed -n 1p <<<"$direct_out")
    read -r _ direct_upload_secs < <(sed -n 2p <<<"$direct_out")
    if [[ $up_status != 200 || $up_received != "$upload_bytes" || $direct_received != "$upload_bytes" ]]; then
        echo "(e) the upload did not arrive whole: powgate HTTP $up_status, $up_received bytes; direct $direct_received bytes; of $upload_bytes" >&2
        exit 1
    fi
    upload_peak_kib=$(sort -n "$up_samples" | tail -n 1)
    idle_mib=$(calc "$idle_kib / 1024")
    upload_peak_mib=$(calc "$upload_peak_kib / 1024")
    upload_growth_mib=$(calc "($upload_peak_kib - $idle_kib) / 1024")
    upload_rate=$(calc "$upload_mib / $up_secs")
    direct_upload_rate=$(calc "$upload_mib / $direct_upload_secs")
    stop_server
    health_url="$base/healthz"
    kill "$nginx_pid" "$upstream_pid" 2>/dev/null || true
    wait "$nginx_pid" "$upstream_pid" 2>/dev/null || true

    summary+=("$(jq -n \
        --argjson nginx "$e_nginx_median" --argjson powgate "$e_powgate_median" --argjson direct "$e_direct_median" \
        --argjson ratio "$ratio_e" --argjson rounds "$rounds" \
        --argjson nginx_rounds "[$(IFS=,; echo "${e_nginx[*]}")]" \
        --argjson powgate_rounds "[$(IFS=,; echo "${e_powgate[*]}")]" \
        --argjson direct_rounds "[$(IFS=,; echo "${e_direct[*]}")]" \
        --argjson rate "$proxy_rate" --argjson p50_direct "$p50_direct" --argjson p50_nginx "$p50_nginx" \
        --argjson p50_powgate "$p50_powgate" --argjson added_powgate "$added_powgate" --argjson added_nginx "$added_nginx" \
        --argjson p99_direct "$p99_direct" --argjson p99_nginx "$p99_nginx" --argjson p99_powgate "$p99_powgate" \
        --argjson upload_mib "$upload_mib" --argjson idle_mib "$idle_mib" --argjson peak_mib "$upload_peak_mib" \
        --argjson growth_mib "$upload_growth_mib" --argjson upload_rate "$upload_rate" --argjson direct_upload_rate "$direct_upload_rate" \
        '{e: {nginx_rps: $nginx, powgate_rps: $powgate, direct_rps: $direct, ratio: $ratio, target: ">= 0.8", rounds: $rounds,
              nginx_rps_rounds: $nginx_rounds, powgate_rps_rounds: $powgate_rounds, direct_rps_rounds: $direct_rounds,
              latency_rate: $rate, p50_ms: {direct: $p50_direct, nginx: $p50_nginx, powgate: $p50_powgate},
              p99_ms: {direct: $p99_direct, nginx: $p99_nginx, powgate: $p99_powgate},
              p50_added_ms: {powgate: $added_powgate, nginx: $added_nginx},
              upload: {mib: $upload_mib, idle_rss_mib: $idle_mib, peak_rss_mib: $peak_mib, growth_mib: $growth_mib,
                       target_growth_mib: 100, mib_per_s: $upload_rate, direct_mib_per_s: $direct_upload_rate}}}')")
    rows+=("| (e) proxied GET with a valid token, powgate / nginx proxy_pass to the same upstream, median of $rounds rounds (rounds: ${e_powgate[*]} vs ${e_nginx[*]}) | $e_powgate_median / $e_nginx_median req/s = **${ratio_e}x** | >= 0.8x | $(verdict "$ratio_e >= 0.8") |")
    rows+=("| (e) same rounds, the upstream directly (rounds: ${e_direct[*]}) | $e_direct_median req/s | | |")
    rows+=("| (e) p50 added to the upstream's at $proxy_rate req/s, median of $rounds rounds: powgate (nginx: $added_nginx ms) | **$added_powgate ms** ($p50_powgate vs $p50_direct ms) | | |")
    rows+=("| (e) p99 at the same rate: direct / nginx / powgate | $p99_direct / $p99_nginx / $p99_powgate ms | | |")
    rows+=("| (e) powgate's RSS during a $upload_mib MiB upload through it: idle / peak sampled ($upload_rate MiB/s; directly $direct_upload_rate MiB/s) | $idle_mib / $upload_peak_mib MiB = **+$upload_growth_mib MiB** | <= +100 MiB | $(verdict "$upload_growth_mib <= 100") |")
fi

# --- (f) the TCP gate ----------------------------------------------------------------
if want f; then
    say "(f) starting the echo service on port $echo_port and powgate tcp on port $tcp_port"
    commands+=("(f upstream) ${side_pin[*]:+${side_pin[*]} }target/release/examples/tcp_bench echo --listen 127.0.0.1:$echo_port")
    gate_pin=()
    side_pin=()
    if [[ ${BENCH_PIN:-1} == 1 ]] && (($(nproc) >= 2)) && command -v taskset >/dev/null; then
        gate_pin=(taskset -c 0)
        side_pin=(taskset -c "1-$(($(nproc) - 1))")
    fi
    "${side_pin[@]}" "$tcp_bench" echo --listen "127.0.0.1:$echo_port" &
    echo_pid=$!
    bg_pids+=("$echo_pid")
    # The token of the other parts, from the same database; its budgets as
    # large as (a)'s, and no challenge rate or open-challenge bound, since
    # every connection is greeted with a challenge it does not answer.
    tcp_env=(POW_TOKEN_REQUESTS_PER_MINUTE=1000000 POW_TOKEN_REQUESTS_TOTAL=1000000000
        POW_RATE_CHALLENGES_PER_MINUTE=0 POW_MAX_OPEN_CHALLENGES_PER_IP=0 POW_MAX_OPEN_CHALLENGES_PER_NETWORK=0)
    commands+=("(f gate) ${tcp_env[*]} POW_DATABASE=<tmp> ${gate_pin[*]:+${gate_pin[*]} }target/release/powgate tcp --listen 127.0.0.1:$tcp_port --upstream 127.0.0.1:$echo_port")
    (cd "$tmp" && exec env POW_DATABASE="$tmp/bench.db" RUST_LOG=warn "${tcp_env[@]}" \
        "${gate_pin[@]}" "$bin" tcp --listen "127.0.0.1:$tcp_port" --upstream "127.0.0.1:$echo_port") 2>>"$tmp/tcp.log" &
    gate_pid=$!
    bg_pids+=("$gate_pid")
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$tcp_port") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$echo_port") 2>/dev/null && break
        sleep 0.1
    done
    gate_addr="127.0.0.1:$tcp_port"
    echo_addr="127.0.0.1:$echo_port"
    if ! "$tcp_bench" latency --addr "$gate_addr" --token "$token" --count 1 >/dev/null; then
        echo "(f) the gate does not pass the token; its log:" >&2
        tail -n 20 "$tmp/tcp.log" >&2
        exit 1
    fi
    commands+=("${side_pin[*]:+${side_pin[*]} }target/release/examples/tcp_bench latency --addr $gate_addr --token \$TOKEN --count $tcp_count   # and --addr $echo_addr without --token")
    commands+=("${side_pin[*]:+${side_pin[*]} }target/release/examples/tcp_bench throughput --addr $gate_addr --token \$TOKEN --mib $stream_mib   # and --addr $echo_addr without --token")
    say "(f) connect to first echoed byte, $rounds rounds of $tcp_count connections; then a $stream_mib MiB stream, $rounds rounds; gate / direct alternating"
    f_p50_gate=(); f_p99_gate=(); f_p50_direct=(); f_p99_direct=()
    f_rate_gate=(); f_rate_direct=()
    for r in $(seq "$rounds"); do
        read -r p50 p99 < <("${side_pin[@]}" "$tcp_bench" latency --addr "$gate_addr" --token "$token" --count "$tcp_count")
        f_p50_gate+=("$p50"); f_p99_gate+=("$p99")
        read -r p50 p99 < <("${side_pin[@]}" "$tcp_bench" latency --addr "$echo_addr" --count "$tcp_count")
        f_p50_direct+=("$p50"); f_p99_direct+=("$p99")
        f_rate_gate+=("$("${side_pin[@]}" "$tcp_bench" throughput --addr "$gate_addr" --token "$token" --mib "$stream_mib")")
        f_rate_direct+=("$("${side_pin[@]}" "$tcp_bench" throughput --addr "$echo_addr" --mib "$stream_mib")")
        say "  round $r: p50 gate ${f_p50_gate[-1]} / direct ${f_p50_direct[-1]} ms, p99 ${f_p99_gate[-1]} / ${f_p99_direct[-1]} ms; stream ${f_rate_gate[-1]} / ${f_rate_direct[-1]} MiB/s"
    done
    kill "$gate_pid" "$echo_pid" 2>/dev/null || true
    wait "$gate_pid" "$echo_pid" 2>/dev/null || true
    f_p50_g=$(median "${f_p50_gate[@]}"); f_p99_g=$(median "${f_p99_gate[@]}")
    f_p50_d=$(median "${f_p50_direct[@]}"); f_p99_d=$(median "${f_p99_direct[@]}")
    f_added_p50=$(calc "$f_p50_g - $f_p50_d"); f_added_p99=$(calc "$f_p99_g - $f_p99_d")
    f_rate_g=$(median "${f_rate_gate[@]}"); f_rate_d=$(median "${f_rate_direct[@]}")
    ratio_f=$(calc "$f_rate_g / $f_rate_d")
    summary+=("$(jq -n \
        --argjson count "$tcp_count" --argjson rounds "$rounds" --argjson mib "$stream_mib" \
        --argjson p50_gate "$f_p50_g" --argjson p99_gate "$f_p99_g" --argjson p50_direct "$f_p50_d" --argjson p99_direct "$f_p99_d" \
        --argjson added_p50 "$f_added_p50" --argjson added_p99 "$f_added_p99" \
        --argjson rate_gate "$f_rate_g" --argjson rate_direct "$f_rate_d" --argjson ratio "$ratio_f" \
        --argjson rate_gate_rounds "[$(IFS=,; echo "${f_rate_gate[*]}")]" \
        --argjson rate_direct_rounds "[$(IFS=,; echo "${f_rate_direct[*]}")]" \
        '{f: {connections: $count, rounds: $rounds, p50_ms: {gate: $p50_gate, direct: $p50_direct}, p99_ms: {gate: $p99_gate, direct: $p99_direct},
              added_ms: {p50: $added_p50, p99: $added_p99},
              stream: {mib: $mib, gate_mib_per_s: $rate_gate, direct_mib_per_s: $rate_direct, ratio: $ratio, target: ">= 0.9",
                       gate_rounds: $rate_gate_rounds, direct_rounds: $rate_direct_rounds}}}')")
    rows+=("| (f) TCP gate: connect to first echoed byte with a token, added over a direct connection, median of $rounds rounds of $tcp_count: p50 / p99 | **$f_added_p50 / $f_added_p99 ms** (gate $f_p50_g / $f_p99_g, direct $f_p50_d / $f_p99_d ms) | | |")
    rows+=("| (f) a $stream_mib MiB stream echoed through the gate / directly, median of $rounds rounds (rounds: ${f_rate_gate[*]} vs ${f_rate_direct[*]}) | $f_rate_g / $f_rate_d MiB/s = **${ratio_f}x** | >= 0.9x | $(verdict "$ratio_f >= 0.9") |")
fi

# --- (g) the PostgreSQL store against SQLite ---------------------------------------------
if want g; then
    [[ -n $server_pid ]] && stop_server
    probe="$root/scripts/bench-store-probe.py"
    lua="$root/scripts/bench-verify-tokens.lua"
    g_pin=()
    g_load_pin=()
    g_threads=$(nproc)
    if [[ ${BENCH_PIN:-1} == 1 ]] && (($(nproc) >= 2)) && command -v taskset >/dev/null; then
        # Each powgate and the PostgreSQL cluster on CPU 0, wrk on the
        # others: SQLite works inside powgate's process, so PostgreSQL's
        # processes get the same CPU, or the figure would credit it with a
        # CPU of its own that it takes from the load generator here.
        g_pin=(taskset -c 0)
        g_load_pin=(taskset -c "1-$(($(nproc) - 1))")
        g_threads=$(($(nproc) - 1))
    fi

    say "(g) starting a PostgreSQL cluster of its own (scripts/postgres.sh)${g_pin[*]:+, on CPU 0}"
    g_pg_state="$tmp/postgres.env"
    eval "$(POWGATE_TEST_POSTGRES_STATE=$g_pg_state "${g_pin[@]}" scripts/postgres.sh)"
    # shellcheck disable=SC1090
    source "$g_pg_state"
    g_pg_port=${POWGATE_TEST_POSTGRES##*:}
    g_pg_port=${g_pg_port%%/*}
    # As the superuser, over the cluster's private socket (trusted there).
    pg_admin() { "$PGBIN/psql" -h "$PGROOT" -p "$g_pg_port" -U postgres -qAt -v ON_ERROR_STOP=1 "$@"; }
    # The test cluster trades durability for speed; the SQLite store
    # fsyncs every commit (synchronous = FULL), so PostgreSQL does too here.
    pg_admin -d postgres -c "ALTER SYSTEM SET fsync = on" -c "ALTER SYSTEM SET synchronous_commit = on" \
        -c "ALTER SYSTEM SET full_page_writes = on" -c "SELECT pg_reload_conf()" >/dev/null
    pg_admin -d postgres -c "CREATE DATABASE powgate_bench OWNER powgate"
    for _ in $(seq 50); do
        [[ $(pg_admin -d powgate_bench -c "SHOW fsync") == on ]] && break
        sleep 0.1
    done
    [[ $(pg_admin -d powgate_bench -c "SHOW synchronous_commit") == on ]] || {
        echo "(g) the PostgreSQL cluster did not switch durability on" >&2
        exit 1
    }
    g_pg_url="${POWGATE_TEST_POSTGRES%/*}/powgate_bench?sslmode=verify-full&sslrootcert=$POWGATE_TEST_POSTGRES_CA"
    g_sqlite_db="$tmp/g.db"
    g_admin_key=$(openssl rand -hex 16)
    # Tiny argon2 parameters and difficulty 1, pinned (no adaptive step), so
    # that an issue costs its store work and next to nothing else; no ticket,
    # no per-address challenge or solution rate (the issues come from
    # distinct /24s anyway). The request budgets stay on at their largest
    # values, as in (a), so their counting and flushes are in the figures.
    g_env=(ARGON2_TIME_COST=1 ARGON2_MEMORY_KB=64 POW_DIFFICULTY_LEVEL=1 POW_DIFFICULTY_PINNED=1
        POW_TICKET_BITS=0 POW_RATE_CHALLENGES_PER_MINUTE=0 POW_RATE_SOLUTIONS_PER_MINUTE=0
        POW_MAX_OPEN_CHALLENGES_PER_IP=0 POW_MAX_OPEN_CHALLENGES_PER_NETWORK=0
        POW_TOKEN_REQUESTS_PER_MINUTE=1000000 POW_TOKEN_REQUESTS_TOTAL=1000000000
        POW_VERIFY_PERMITS="$permits")
    declare -A g_port=([sqlite]=$g_sqlite_port [postgres]=$g_postgres_port [second]=$g_second_port)
    declare -A g_db=([sqlite]=$g_sqlite_db [postgres]=$g_pg_url [second]=$g_pg_url)
    declare -A g_pid=()
    g_url() { echo "http://127.0.0.1:${g_port[$1]}"; }
    commands+=("(g servers) ${g_pin[*]:+${g_pin[*]} }POW_LISTEN=127.0.0.1:<port> POW_DATABASE=<tmp>/g.db|postgres://powgate:***@127.0.0.1:$g_pg_port/powgate_bench?sslmode=verify-full&sslrootcert=<ca> POW_ADMIN_KEY=<random> ${g_env[*]} target/release/powgate serve")
    # Starts powgate `$1` (sqlite, postgres or second) and sets g_startup_ms
    # to the time from its start to its first 200 on /healthz.
    g_start() {
        local name=$1 t0
        t0="${EPOCHREALTIME/./}000"
        (cd "$tmp" && exec "${g_pin[@]}" env POW_LISTEN="127.0.0.1:${g_port[$name]}" POW_DATABASE="${g_db[$name]}" \
            POW_ADMIN_KEY="$g_admin_key" RUST_LOG=warn "${g_env[@]}" "$bin" serve) 2>>"$tmp/g-$name.log" &
        g_pid[$name]=$!
        bg_pids+=("$!")
        if ! g_startup_ms=$(python3 "$probe" wait-healthz "$(g_url "$name")" "$t0" "${g_pid[$name]}" | jq .startup_ms); then
            echo "(g) powgate on $name did not start; its log:" >&2
            tail -n 20 "$tmp/g-$name.log" >&2
            exit 1
        fi
    }
    g_stop() {
        kill -TERM "${g_pid[$1]}"
        wait "${g_pid[$1]}" || true
    }

    say "(g) creating both stores (first start migrates them), then seeding $g_tokens tokens into each, in parallel"
    g_start sqlite
    g_start postgres
    g_stop sqlite
    g_stop postgres
    # Token i: the UUIDv4 $g_prefix and i in 12 hex digits (see the probe).
    g_hex=$(openssl rand -hex 9)
    g_prefix="${g_hex:0:8}-${g_hex:8:4}-4${g_hex:12:3}-8${g_hex:15:3}-"
    g_now=$(date +%s)
    g_expires=$((g_now + 7 * 86400))
    g_seed_sql="WITH t AS (
            INSERT INTO tokens (token_hash, created_at, expires_at, issuer_ip, difficulty)
            SELECT sha256(uuid_send(('$g_prefix' || lpad(to_hex(i), 12, '0'))::uuid)), $g_now, $g_expires,
                   '10.' || (i >> 16) || '.' || ((i >> 8) & 255) || '.' || (i & 255), 1
            FROM generate_series(0, $g_tokens - 1) AS i
            RETURNING id, issuer_ip, created_at)
        INSERT INTO token_ips (token_id, ip, first_seen) SELECT id, issuer_ip, created_at FROM t"
    commands+=("(g seed SQLite) python3 scripts/bench-store-probe.py seed-sqlite <tmp>/g.db <prefix> $g_tokens <now> <now + 7 days>")
    commands+=("(g seed PostgreSQL) psql -d powgate_bench -c \"$(tr -s ' \n' ' ' <<<"$g_seed_sql")\"; VACUUM ANALYZE tokens, token_ips")
    (
        t0=$EPOCHREALTIME
        python3 "$probe" seed-sqlite "$g_sqlite_db" "$g_prefix" "$g_tokens" "$g_now" "$g_expires" >/dev/null
        python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$t0" "$EPOCHREALTIME" >"$tmp/g-seed-sqlite"
    ) &
    g_seeder=$!
    t0=$EPOCHREALTIME
    pg_admin -d powgate_bench -c "$g_seed_sql"
    pg_admin -d powgate_bench -c "VACUUM ANALYZE tokens, token_ips"
    g_seed_pg_s=$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$t0" "$EPOCHREALTIME")
    wait "$g_seeder" || { echo "(g) seeding the SQLite store failed" >&2; exit 1; }
    g_seed_sqlite_s=$(cat "$tmp/g-seed-sqlite")
    g_size_sqlite_mib=$(calc "$(stat -c %s "$g_sqlite_db") / 1048576")
    g_size_pg_mib=$(calc "$(pg_admin -d powgate_bench -c "SELECT pg_database_size('powgate_bench')") / 1048576")
    say "  seeded in $g_seed_sqlite_s s (SQLite, $g_size_sqlite_mib MiB) and $g_seed_pg_s s (PostgreSQL, $g_size_pg_mib MiB)"

    say "(g) start-up with $g_tokens tokens stored: $rounds rounds alternating SQLite / PostgreSQL"
    g_startup_sqlite=()
    g_startup_pg=()
    for r in $(seq "$rounds"); do
        g_start sqlite
        g_startup_sqlite+=("$g_startup_ms")
        g_start postgres
        g_startup_pg+=("$g_startup_ms")
        if ((r < rounds)); then
            g_stop sqlite
            g_stop postgres
        fi
        say "  round $r: SQLite ${g_startup_sqlite[-1]} ms, PostgreSQL ${g_startup_pg[-1]} ms"
    done

    # Guards: seeded tokens pass from their own address on both stores
    # (which also proves the seeding hashed them as the store does), and
    # one past the last is unknown.
    g_verify() {
        curl -s -o /dev/null -w '%{http_code} %header{x-powgate-status}' \
            -H "Authorization: Bearer $g_prefix$(printf %012x "$2")" \
            -H "X-Real-IP: 10.$(($2 >> 16)).$((($2 >> 8) & 255)).$(($2 & 255))" "$(g_url "$1")/verify-token"
    }
    for name in sqlite postgres; do
        for i in 0 $((g_tokens / 3)) $((g_tokens - 1)); do
            answer=$(g_verify "$name" "$i")
            [[ $answer == "200 valid" ]] || {
                echo "(g) seeded token $i answers \"$answer\" on $name, not \"200 valid\"" >&2
                exit 1
            }
        done
        answer=$(g_verify "$name" "$g_tokens")
        [[ $answer == *" unknown" ]] || {
            echo "(g) an unseeded token answers \"$answer\" on $name, not unknown" >&2
            exit 1
        }
    done

    # One wrk run: $1 = result name, $2 = store, then the script's
    # arguments after the prefix and count (an index for the cached run).
    g_wrk() {
        local name=$1 store=$2
        shift 2
        commands+=("$(quote "${g_load_pin[@]}" wrk -t "$g_threads" -c "$conns" -d "${secs}s" -s scripts/bench-verify-tokens.lua "$(g_url "$store")" -- '<prefix>' "$g_tokens" "$@") > bench-results/bench-$name.json")
        "${g_load_pin[@]}" wrk -t "$g_threads" -c "$conns" -d "${secs}s" -s "$lua" "$(g_url "$store")" \
            -- "$g_prefix" "$g_tokens" "$@" | grep '^{' | tail -n 1 >"$out/bench-$name.json"
    }
    # Answers of 2xx per second of a finished wrk run, and its failures.
    g_ok_rps() { jq '(.requests - .non2xx - .read_errors - .write_errors - .timeouts) / (.duration_us / 1e6) | round' "$out/bench-$1.json"; }
    g_failed() { jq '.non2xx + .connect_errors + .read_errors + .write_errors + .timeouts' "$out/bench-$1.json"; }

    say "(g) /verify-token: $rounds rounds of ${secs} s per store and kind, $conns connections; one cached token, then tokens drawn at random from $g_tokens"
    for name in sqlite postgres; do
        "${g_load_pin[@]}" wrk -t "$g_threads" -c "$conns" -d 2s -s "$lua" "$(g_url "$name")" -- "$g_prefix" "$g_tokens" 0 >/dev/null
    done
    declare -A g_cached=([sqlite]="" [postgres]="") g_random=([sqlite]="" [postgres]="")
    g_failures=0
    for r in $(seq "$rounds"); do
        # The order alternates, so neither store always runs after the
        # other's random run (whose request counts it flushes a few seconds
        # later, on the same CPU).
        order=(sqlite postgres)
        ((r % 2 == 0)) && order=(postgres sqlite)
        for name in "${order[@]}"; do
            # A token of its own each round, so its request budget never
            # comes near its end.
            g_wrk "g-$name-cached-$r" "$name" "$((r - 1))"
            g_wrk "g-$name-random-$r" "$name"
            g_cached[$name]+=" $(g_ok_rps "g-$name-cached-$r")"
            g_random[$name]+=" $(g_ok_rps "g-$name-random-$r")"
            g_failures=$((g_failures + $(g_failed "g-$name-cached-$r") + $(g_failed "g-$name-random-$r")))
            sleep 6
        done
        say "  round $r: SQLite cached ${g_cached[sqlite]##* } / random ${g_random[sqlite]##* }, PostgreSQL cached ${g_cached[postgres]##* } / random ${g_random[postgres]##* } req/s"
    done
    g_rss_sqlite_mib=$(calc "$(awk '/^VmRSS:/ {print $2}' "/proc/${g_pid[sqlite]}/status") / 1024")
    g_rss_pg_mib=$(calc "$(awk '/^VmRSS:/ {print $2}' "/proc/${g_pid[postgres]}/status") / 1024")
    g_hwm_sqlite_mib=$(calc "$(awk '/^VmHWM:/ {print $2}' "/proc/${g_pid[sqlite]}/status") / 1024")
    g_hwm_pg_mib=$(calc "$(awk '/^VmHWM:/ {print $2}' "/proc/${g_pid[postgres]}/status") / 1024")
    read -ra g_cached_sqlite <<<"${g_cached[sqlite]}"
    read -ra g_cached_pg <<<"${g_cached[postgres]}"
    read -ra g_random_sqlite <<<"${g_random[sqlite]}"
    read -ra g_random_pg <<<"${g_random[postgres]}"
    g_cached_sqlite_m=$(median_int "${g_cached_sqlite[@]}")
    g_cached_pg_m=$(median_int "${g_cached_pg[@]}")
    g_random_sqlite_m=$(median_int "${g_random_sqlite[@]}")
    g_random_pg_m=$(median_int "${g_random_pg[@]}")
    ratio_g_cached=$(calc "$g_cached_pg_m / $g_cached_sqlite_m")
    ratio_g_sqlite=$(calc "$g_random_sqlite_m / $g_cached_sqlite_m")
    ratio_g_pg=$(calc "$g_random_pg_m / $g_cached_pg_m")

    say "(g) token issue and a known token from a new address: $rounds rounds of $g_samples each per store, alternating"
    commands+=("python3 scripts/bench-store-probe.py issue <url> $g_samples > bench-results/bench-g-<store>-issue-<round>.json")
    commands+=("python3 scripts/bench-store-probe.py new-address <url> <prefix> <first> $g_samples > bench-results/bench-g-<store>-new-address-<round>.json")
    for r in $(seq "$rounds"); do
        order=(sqlite postgres)
        ((r % 2 == 0)) && order=(postgres sqlite)
        for name in "${order[@]}"; do
            python3 "$probe" issue "$(g_url "$name")" "$g_samples" >"$out/bench-g-$name-issue-$r.json"
            python3 "$probe" new-address "$(g_url "$name")" "$g_prefix" $((g_tokens / 2 + (r - 1) * g_samples)) "$g_samples" \
                >"$out/bench-g-$name-new-address-$r.json"
        done
        say "  round $r: issue p50 SQLite $(jq .p50_ms "$out/bench-g-sqlite-issue-$r.json") / PostgreSQL $(jq .p50_ms "$out/bench-g-postgres-issue-$r.json") ms, new address p50 $(jq .p50_ms "$out/bench-g-sqlite-new-address-$r.json") / $(jq .p50_ms "$out/bench-g-postgres-new-address-$r.json") ms"
    done
    # The median over the rounds of one percentile: $1 = store, $2 = probe, $3 = field.
    g_pct() { median $(for r in $(seq "$rounds"); do jq ".$3" "$out/bench-g-$1-$2-$r.json"; done); }
    g_issue_sqlite="$(g_pct sqlite issue p50_ms) / $(g_pct sqlite issue p99_ms)"
    g_issue_pg="$(g_pct postgres issue p50_ms) / $(g_pct postgres issue p99_ms)"
    g_new_sqlite="$(g_pct sqlite new-address p50_ms) / $(g_pct sqlite new-address p99_ms)"
    g_new_pg="$(g_pct postgres new-address p50_ms) / $(g_pct postgres new-address p99_ms)"

    say "(g) revocation propagation: a second powgate on the same PostgreSQL; $g_revocations revocations on the first, each timed until the second refuses"
    g_start second
    commands+=("python3 scripts/bench-store-probe.py revocation $(g_url postgres) $(g_url second) <admin key> <prefix> $((g_tokens / 4)) $g_revocations > bench-results/bench-g-revocation.json")
    python3 "$probe" revocation "$(g_url postgres)" "$(g_url second)" "$g_admin_key" "$g_prefix" \
        $((g_tokens / 4)) "$g_revocations" >"$out/bench-g-revocation.json"
    g_rev="$out/bench-g-revocation.json"
    g_rev_p50=$(jq .p50_ms "$g_rev")
    g_rev_p99=$(jq .p99_ms "$g_rev")
    g_rev_max=$(jq .max_ms "$g_rev")
    for name in sqlite postgres second; do g_stop "$name"; done

    summary+=("$(jq -n \
        --argjson tokens "$g_tokens" --argjson rounds "$rounds" --argjson secs "$secs" --argjson conns "$conns" \
        --argjson cached_sqlite "$g_cached_sqlite_m" --argjson cached_pg "$g_cached_pg_m" \
        --argjson random_sqlite "$g_random_sqlite_m" --argjson random_pg "$g_random_pg_m" \
        --argjson ratio_cached "$ratio_g_cached" --argjson ratio_sqlite "$ratio_g_sqlite" --argjson ratio_pg "$ratio_g_pg" \
        --argjson cached_sqlite_rounds "[$(IFS=,; echo "${g_cached_sqlite[*]}")]" \
        --argjson cached_pg_rounds "[$(IFS=,; echo "${g_cached_pg[*]}")]" \
        --argjson random_sqlite_rounds "[$(IFS=,; echo "${g_random_sqlite[*]}")]" \
        --argjson random_pg_rounds "[$(IFS=,; echo "${g_random_pg[*]}")]" \
        --argjson failures "$g_failures" \
        --argjson startup_sqlite "$(median "${g_startup_sqlite[@]}")" --argjson startup_pg "$(median "${g_startup_pg[@]}")" \
        --argjson rss_sqlite "$g_rss_sqlite_mib" --argjson rss_pg "$g_rss_pg_mib" \
        --argjson hwm_sqlite "$g_hwm_sqlite_mib" --argjson hwm_pg "$g_hwm_pg_mib" \
        --argjson seed_sqlite "$g_seed_sqlite_s" --argjson seed_pg "$g_seed_pg_s" \
        --argjson size_sqlite "$g_size_sqlite_mib" --argjson size_pg "$g_size_pg_mib" \
        --argjson samples "$g_samples" \
        --argjson issue_sqlite "{\"p50_ms\": $(g_pct sqlite issue p50_ms), \"p99_ms\": $(g_pct sqlite issue p99_ms)}" \
        --argjson issue_pg "{\"p50_ms\": $(g_pct postgres issue p50_ms), \"p99_ms\": $(g_pct postgres issue p99_ms)}" \
        --argjson new_sqlite "{\"p50_ms\": $(g_pct sqlite new-address p50_ms), \"p99_ms\": $(g_pct sqlite new-address p99_ms)}" \
        --argjson new_pg "{\"p50_ms\": $(g_pct postgres new-address p50_ms), \"p99_ms\": $(g_pct postgres new-address p99_ms)}" \
        --slurpfile revocation "$g_rev" \
        '{g: {tokens: $tokens, rounds: $rounds, seconds: $secs, connections: $conns,
              cached_rps: {sqlite: $cached_sqlite, postgres: $cached_pg, postgres_over_sqlite: $ratio_cached, target: ">= 0.95"},
              random_rps: {sqlite: $random_sqlite, postgres: $random_pg},
              random_over_cached: {sqlite: $ratio_sqlite, postgres: $ratio_pg, target_sqlite: ">= 0.3"},
              rounds_rps: {cached_sqlite: $cached_sqlite_rounds, cached_postgres: $cached_pg_rounds,
                           random_sqlite: $random_sqlite_rounds, random_postgres: $random_pg_rounds},
              failed_requests: $failures,
              startup_ms: {sqlite: $startup_sqlite, postgres: $startup_pg},
              rss_mib_after_random: {sqlite: $rss_sqlite, postgres: $rss_pg, target: 300},
              peak_rss_mib: {sqlite: $hwm_sqlite, postgres: $hwm_pg},
              seeding_s: {sqlite: $seed_sqlite, postgres: $seed_pg}, store_mib: {sqlite: $size_sqlite, postgres: $size_pg},
              samples: $samples, issue: {sqlite: $issue_sqlite, postgres: $issue_pg},
              new_address: {sqlite: $new_sqlite, postgres: $new_pg},
              revocation_propagation: $revocation[0]}}')")
    rows+=("| (g) /verify-token, one cached token, PostgreSQL / SQLite store, median of $rounds rounds (rounds: ${g_cached_pg[*]} vs ${g_cached_sqlite[*]}) | $g_cached_pg_m / $g_cached_sqlite_m req/s = **${ratio_g_cached}x** | >= 0.95x | $(verdict "$ratio_g_cached >= 0.95") |")
    rows+=("| (g) $g_tokens tokens stored, drawn uniformly at random / one cached token, SQLite (random rounds: ${g_random_sqlite[*]}) | $g_random_sqlite_m / $g_cached_sqlite_m req/s = **${ratio_g_sqlite}x** | >= 0.3x | $(verdict "$ratio_g_sqlite >= 0.3") |")
    rows+=("| (g) same, PostgreSQL (random rounds: ${g_random_pg[*]}) | $g_random_pg_m / $g_cached_pg_m req/s = **${ratio_g_pg}x** | | |")
    rows+=("| (g) requests not answered 2xx in those runs | $g_failures | 0 | $(verdict "$g_failures == 0") |")
    rows+=("| (g) token issue, POST /api/solve (argon2 t=1, m=64 KiB), p50 / p99, median of $rounds rounds of $g_samples: SQLite; PostgreSQL | $g_issue_sqlite ms; $g_issue_pg ms | | |")
    rows+=("| (g) a known token from a new address, /verify-token p50 / p99, same rounds: SQLite; PostgreSQL | $g_new_sqlite ms; $g_new_pg ms | | |")
    rows+=("| (g) revocation on one instance until the other refuses, $g_revocations revocations: p50 / p99 / max | $g_rev_p50 / **$g_rev_p99** / $g_rev_max ms | | |")
    rows+=("| (g) start-up to the first 200 on /healthz with $g_tokens tokens, median of $rounds: SQLite / PostgreSQL (rounds: ${g_startup_sqlite[*]} / ${g_startup_pg[*]}) | $(median "${g_startup_sqlite[@]}") / $(median "${g_startup_pg[@]}") ms | | |")
    rows+=("| (g) powgate's RSS after the random runs: SQLite / PostgreSQL (peak: $g_hwm_sqlite_mib / $g_hwm_pg_mib MiB) | **$g_rss_sqlite_mib / $g_rss_pg_mib MiB** | <= 300 MiB | $(verdict "max($g_rss_sqlite_mib, $g_rss_pg_mib) <= 300") |")
    rows+=("| (g) seeding $g_tokens tokens in one transaction: SQLite / PostgreSQL (store size $g_size_sqlite_mib / $g_size_pg_mib MiB) | $g_seed_sqlite_s / $g_seed_pg_s s | | |")
fi

# --- summary ---------------------------------------------------------------------------
# As shown: the token replaced by $TOKEN, paths relative to the repository.
shown=()
for c in "${commands[@]}"; do
    c=${c//$token/\$TOKEN}
    shown+=("${c//$root\//}")
done

printf '%s\n' "${summary[@]}" | jq -s --args 'add + {parts: $parts, commands: $ARGS.positional}' \
    --arg parts "$parts" "${shown[@]}" >"$out/bench-summary.json"

cat <<EOF

powgate load benchmarks, parts $parts ($(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ); JSON in bench-results/)
load average (1/5/15 min) before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)

| figure | value | target | |
|---|---|---|---|
EOF
printf '%s\n' "${rows[@]}"
echo
echo "Commands (TOKEN = a token minted with \`powgate solve\` on the same database):"
printf '  %s\n' "${shown[@]}"

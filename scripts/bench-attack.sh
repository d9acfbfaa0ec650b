#!/usr/bin/env bash
# Attack benchmarks (`just bench-attack`, issue 14): the attack simulator
# (server/examples/attack.rs) against a live powgate, in three parts.
#
#   (e) real visitors during a garbage flood from at least 4000 addresses,
#       well beyond the server's verification capacity, the flood client at
#       nice 19, in two shapes: concentrated (one IPv6 /48 and one IPv4
#       /16) and scattered (every address in a network of its own). Rounds
#       alternate the same visitors without and with the flood; the figures
#       are the medians over the rounds: the visitors' success rate and
#       median time to token (target: 100 % and <= 2x the no-flood time),
#       and the server's argon2 seconds spent on garbage. Run at cheap
#       argon2 (t=1, m=32 MiB), so the flood saturates verification here,
#       and once at the default parameters, both with the admission ticket
#       off so that the garbage reaches argon2 at 10x capacity; then once at
#       cheap argon2 with the ticket on and paid for by the flood;
#   (f) the replayer: replays of a spent solution, one token shared across
#       many addresses, one solution submitted 100 times at once
#       (target: 0 extra tokens, exactly 1 token from the double submit);
#   (g) the scraper at each difficulty preset at the default argon2
#       parameters: tokens per core-hour (measured, and expected from the
#       measured CPU per hash, since a short run at `extreme` may win none)
#       and attacker core-seconds per 1000 requests that passed.
#
# Builds the release binaries, starts its own powgate on a temporary
# database for each configuration, and cleans up after itself. Writes every
# simulator run to bench-results/attack-*.json and the figures to
# bench-results/attack-summary.json, and prints a table.
#
# Settings (environment), defaults for a run of about 20-25 minutes on two
# cores; BENCH_QUICK=1 shrinks every duration for a check of about 2 minutes:
#   BENCH_ATTACK_PARTS=efg          which parts to run
#   BENCH_ATTACK_PORT=18091         loopback port for the server under test
#   BENCH_ATTACK_ROUNDS=3           no-flood/flood rounds per shape in (e), cheap argon2
#   BENCH_ATTACK_SECONDS=50         seconds per (e) run, cheap argon2
#   BENCH_ATTACK_VISITORS=4         visitors in (e)
#   BENCH_ATTACK_VISITOR_RATE=3.7   their hashes per second (a phone)
#   BENCH_ATTACK_DIFFICULTY=30      difficulty in (e): ~8 s for such a visitor
#   BENCH_ATTACK_FLOOD_THREADS=128  flood client threads (each holds one submission open)
#   BENCH_ATTACK_FLOOD_RATE=2000    garbage submissions per second offered at cheap argon2
#   BENCH_ATTACK_DEFAULTS_FLOOD_RATE=150  the same at the default argon2
#   BENCH_ATTACK_FLOOD_ADDRESSES=4000  distinct addresses of the scattered flood
#   BENCH_ATTACK_DEFAULTS_SECONDS=60   seconds per (e) run at the default argon2
#   BENCH_ATTACK_DEFAULTS_VISITORS=2   visitors then (each hash costs a core ~0.3 s)
#   BENCH_ATTACK_DEFAULTS_DIFFICULTY=10
#   BENCH_ATTACK_SCRAPER_SECONDS=45 seconds per preset in (g)
#   BENCH_ATTACK_SCRAPER_THREADS=nproc  scraper solver threads in (g)
#   BENCH_VERIFY_PERMITS=nproc      POW_VERIFY_PERMITS of the server under test
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=${BENCH_QUICK:-0}
q() { if [[ $quick == 1 ]]; then echo "$2"; else echo "$1"; fi; }
parts="${BENCH_ATTACK_PARTS:-efg}"
port="${BENCH_ATTACK_PORT:-18091}"
rounds="${BENCH_ATTACK_ROUNDS:-$(q 3 1)}"
e_secs="${BENCH_ATTACK_SECONDS:-$(q 50 10)}"
visitors="${BENCH_ATTACK_VISITORS:-4}"
visitor_rate="${BENCH_ATTACK_VISITOR_RATE:-3.7}"
difficulty="${BENCH_ATTACK_DIFFICULTY:-$(q 30 10)}"
flood_threads="${BENCH_ATTACK_FLOOD_THREADS:-128}"
flood_rate_cheap="${BENCH_ATTACK_FLOOD_RATE:-2000}"
flood_rate_defaults="${BENCH_ATTACK_DEFAULTS_FLOOD_RATE:-150}"
# Set per (e) variant: whether the flood pays its admission tickets, and the
# garbage it offers per second.
flood_tickets=bogus
flood_rate=$flood_rate_cheap
flood_addresses="${BENCH_ATTACK_FLOOD_ADDRESSES:-4000}"
d_secs="${BENCH_ATTACK_DEFAULTS_SECONDS:-$(q 60 8)}"
d_visitors="${BENCH_ATTACK_DEFAULTS_VISITORS:-2}"
d_difficulty="${BENCH_ATTACK_DEFAULTS_DIFFICULTY:-$(q 10 3)}"
g_secs="${BENCH_ATTACK_SCRAPER_SECONDS:-$(q 45 6)}"
g_threads="${BENCH_ATTACK_SCRAPER_THREADS:-$(nproc)}"
permits="${BENCH_VERIFY_PERMITS:-$(nproc)}"
base="http://127.0.0.1:$port"
out="$root/bench-results"

if [[ ! $parts =~ ^[efg]+$ ]]; then
    echo "BENCH_ATTACK_PARTS=$parts: use letters among e, f, g" >&2
    exit 1
fi
want() { [[ $parts == *"$1"* ]]; }
say() { printf '==> %s\n' "$*" >&2; }

for tool in jq curl python3; do
    command -v "$tool" >/dev/null || {
        echo "missing $tool: install it (Debian: apt-get install $tool) and run again" >&2
        exit 1
    }
done

say "building powgate and the attack simulator (release)"
cargo build --release --locked -p powgate --bin powgate --example attack
bin="$root/target/release/powgate"
attack="$root/target/release/examples/attack"

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use; set BENCH_ATTACK_PORT" >&2
    exit 1
fi

tmp=$(mktemp -d)
server_pid=""
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# Starts powgate on a fresh database with the environment given as
# arguments, in the temporary directory (so no config.toml of the
# developer's is read), and waits for it. Loopback is a trusted proxy by
# default, so the simulator's X-Real-IP is believed.
start_server() {
    rm -f "$tmp"/bench.db*
    (cd "$tmp" && exec env POW_LISTEN="127.0.0.1:$port" POW_DATABASE="$tmp/bench.db" \
        POW_VERIFY_PERMITS="$permits" RUST_LOG=warn "$@" "$bin" serve) 2>>"$tmp/server.log" &
    server_pid=$!
    for _ in $(seq 200); do
        curl -fsS -o /dev/null "$base/healthz" 2>/dev/null && return 0
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
rm -f "$out"/attack-*.json
commands=()
# One simulator run: $1 = name (bench-results/attack-$1.json), $2 = nice
# value, the rest its flags.
sim() {
    local name=$1 niceness=$2
    shift 2
    commands+=("nice -n $niceness target/release/examples/attack --url $base $* > bench-results/attack-$name.json")
    nice -n "$niceness" "$attack" --url "$base" "$@" >"$out/attack-$name.json" 2>>"$tmp/attack.log"
}
# The flood and the visitors are separate processes, so the flood alone runs
# at nice 19 while the visitors (and the server) keep normal priority; the
# flood process is started first and stops by itself.
flood_bg() {
    local name=$1 secs=$2 shape=$3
    commands+=("nice -n 19 target/release/examples/attack --url $base --seconds $secs --flood-threads $flood_threads --flood-shape $shape --flood-addresses $flood_addresses --flood-tickets $flood_tickets --flood-rate $flood_rate > bench-results/attack-$name.json &")
    nice -n 19 "$attack" --url "$base" --seconds "$secs" --flood-threads "$flood_threads" \
        --flood-shape "$shape" --flood-addresses "$flood_addresses" --flood-tickets "$flood_tickets" --flood-rate "$flood_rate" \
        >"$out/attack-$name.json" 2>>"$tmp/attack.log" &
    flood_pid=$!
}
# Garbage solutions the flood submitted (its refused challenges left out).
submitted='([.personas.flooder.solve_answers | to_entries[] | select(.key | test("challenge_") | not) | .value] | add // 0)'
median() { python3 -c "import statistics, sys; v=[float(x) for x in sys.argv[1:] if x != 'null']; print(round(statistics.median(v), 3) if v else 'null')" "$@"; }
j() { jq -r "$2" "$out/attack-$1.json"; }
summary=()
rows=()

# --- (e) visitors under a garbage flood ----------------------------------------
# $1 = label (cheap|defaults), $2 = seconds per run, $3 = rounds, $4 = visitors,
# $5 = difficulty, then the server's argon2 environment.
e_part() {
    local label=$1 secs=$2 n=$3 vis=$4 diff=$5
    shift 5
    say "(e) $label argon2 ($*), difficulty $diff, $vis visitors at $visitor_rate H/s, $n round(s) of ${secs} s per shape; flood tickets $flood_tickets, offered $flood_rate/s"
    start_server POW_DIFFICULTY_LEVEL="$diff" "$@"
    commands+=("(server) POW_DIFFICULTY_LEVEL=$diff $* POW_VERIFY_PERMITS=$permits target/release/powgate serve")
    local shape r
    for shape in concentrated scattered; do
        local calm_p50=() flood_p50=() calm_ok=() flood_ok=() wrong=() ratio_cap=() garbage_rate=() flood_cpu=()
        # Visits under flood over the rounds: with a token, refused, and cut
        # short by the end of a run (still solving or still waiting).
        local v_ok=0 v_failed=0 v_cut=0
        for r in $(seq "$n"); do
            local calm="e-$label-$shape-$r-calm" flooded="e-$label-$shape-$r-flood"
            sim "$calm" 0 --seconds "$secs" --visitors "$vis" --visitor-rate "$visitor_rate"
            flood_bg "$flooded-flooder" $((secs + 3)) "$shape"
            sleep 2
            sim "$flooded" 0 --seconds "$secs" --visitors "$vis" --visitor-rate "$visitor_rate"
            wait "$flood_pid"
            calm_p50+=("$(j "$calm" '.personas.visitor.time_to_token_p50 | if . == null then null else . * 1000 | round / 1000 end')")
            flood_p50+=("$(j "$flooded" '.personas.visitor.time_to_token_p50 | if . == null then null else . * 1000 | round / 1000 end')")
            calm_ok+=("$(j "$calm" '.personas.visitor.success_rate')")
            flood_ok+=("$(j "$flooded" '.personas.visitor.success_rate')")
            v_ok=$((v_ok + $(j "$flooded" '.personas.visitor.visits.ok // 0')))
            v_failed=$((v_failed + $(j "$flooded" '.personas.visitor.visits.failed // 0')))
            v_cut=$((v_cut + $(j "$flooded" '.personas.visitor.visits.cut_by_end_of_run // 0')))
            # The flood process's own metrics window covers the whole flood.
            wrong+=("$(j "$flooded-flooder" '.server_verify_seconds | (.wrong // .total) | . * 10 | round / 10')")
            flood_cpu+=("$(j "$flooded-flooder" '.personas.flooder.cpu_seconds | . * 10 | round / 10')")
            # Offered garbage per second over verification capacity
            # (permits / mean argon2 seconds per verification in the window).
            local f="$out/attack-$flooded-flooder.json"
            garbage_rate+=("$(jq "$submitted"' / .seconds | . * 10 | round / 10' "$f")")
            # Capacity from the mean seconds per verification over both
            # windows: a flood refused before argon2 verifies nothing itself.
            ratio_cap+=("$(jq -s --argjson p "$permits" '(.[0] | '"$submitted"' / .seconds) as $offered
                | ([.[].server_verify_seconds.total] | add) as $s | ([.[].server_verify_seconds.verifications] | add) as $n
                | if $s > 0 then $offered / ($p / ($s / $n)) | . * 10 | round / 10 else null end' "$f" "$out/attack-$calm.json")")
            say "  $shape round $r: visitors p50 ${calm_p50[-1]} s calm, ${flood_p50[-1]} s flooded; success ${calm_ok[-1]} / ${flood_ok[-1]}; garbage ${garbage_rate[-1]}/s = ${ratio_cap[-1]}x capacity, ${wrong[-1]} argon2 s on it, ${flood_cpu[-1]} flood CPU s"
        done
        local m_calm m_flood ratio m_ok_flood m_wrong m_cap
        m_calm=$(median "${calm_p50[@]}")
        m_flood=$(median "${flood_p50[@]}")
        ratio=$(python3 -c "print('null' if 'null' in ('$m_calm', '$m_flood') else round($m_flood / $m_calm, 3))")
        m_ok_flood=$(python3 -c "import sys; v=[float(x) for x in sys.argv[1:] if x != 'null']; print(min(v) if v else 'null')" "${flood_ok[@]}")
        m_wrong=$(median "${wrong[@]}")
        m_cap=$(median "${ratio_cap[@]}")
        local m_flood_cpu
        m_flood_cpu=$(median "${flood_cpu[@]}")
        summary+=("$(jq -n --arg lbl "$label" --arg shape "$shape" \
            --argjson calm "$m_calm" --argjson flood "$m_flood" --argjson ratio "$ratio" \
            --argjson ok "$m_ok_flood" --argjson wrong "$m_wrong" --argjson cap "$m_cap" --argjson fcpu "$m_flood_cpu" \
            --argjson rounds "$n" --argjson difficulty "$diff" --argjson visitors "$vis" \
            --argjson v_ok "$v_ok" --argjson v_failed "$v_failed" --argjson v_cut "$v_cut" \
            --argjson calm_rounds "[$(IFS=,; echo "${calm_p50[*]}")]" --argjson flood_rounds "[$(IFS=,; echo "${flood_p50[*]}")]" \
            '{e: {($lbl): {($shape): {rounds: $rounds, visitors: $visitors, difficulty: $difficulty,
                time_to_token_p50_calm: $calm, time_to_token_p50_flood: $flood, ratio: $ratio, ratio_target: "<= 2",
                success_rate_flood_min: $ok, success_target: 1,
                flood_visits: {ok: $v_ok, failed: $v_failed, cut_by_end_of_run: $v_cut},
                garbage_argon2_seconds_median: $wrong, flood_over_capacity_median: $cap, flood_cpu_seconds_median: $fcpu,
                p50_calm_rounds: $calm_rounds, p50_flood_rounds: $flood_rounds}}}}')")
        local shown_ratio="**${ratio}x**"
        [[ $ratio == null ]] && shown_ratio="**none**: no visitor got a token while flooded"
        rows+=("| (e) $label, $shape: visitors' median time to token, calm / flooded (median of $n) | $m_calm / $m_flood s = $shown_ratio | <= 2x |")
        rows+=("| (e) $label, $shape: lowest visitor success rate under flood (visits with a token / refused / cut by the end of a run: $v_ok / $v_failed / $v_cut); garbage at ${m_cap}x capacity, $m_wrong argon2 s on it per run, flood CPU $m_flood_cpu s | **$m_ok_flood** | 1 |")
    done
    stop_server
}

if want e; then
    cheap=(ARGON2_TIME_COST=1 ARGON2_MEMORY_KB=32768)
    # 1. As shipped (the admission ticket on, auto), against the attack the
    #    issue describes: fresh challenges and random nonces, free to send,
    #    so the flood sends a random ticket too. Each is refused with one
    #    SHA-256 and counts against its sender's networks.
    flood_tickets=bogus
    flood_rate=$flood_rate_cheap
    e_part cheap "$e_secs" "$rounds" "$visitors" "$difficulty" "${cheap[@]}"
    flood_rate=$flood_rate_defaults
    e_part defaults "$d_secs" 1 "$d_visitors" "$d_difficulty"
    # 2. The ticket off (POW_TICKET_BITS=0): every garbage nonce reaches
    #    argon2 at no cost to the flood, and the fair verification line alone
    #    has to keep the visitors' answers first. The harder test.
    flood_tickets=paid
    flood_rate=$flood_rate_cheap
    e_part cheap-no-ticket "$e_secs" 1 "$visitors" "$difficulty" "${cheap[@]}" POW_TICKET_BITS=0
    flood_rate=$flood_rate_defaults
    e_part defaults-no-ticket "$d_secs" 1 "$d_visitors" "$d_difficulty" POW_TICKET_BITS=0
    # 3. The ticket on and paid for by the flood: how much garbage still
    #    reaches argon2 when every nonce costs the flood its ticket, from a
    #    flood process at nice 19 on this machine.
    flood_rate=$flood_rate_cheap
    e_part cheap-paid-tickets "$e_secs" 1 "$visitors" "$difficulty" "${cheap[@]}"
fi

# --- (f) replayer -----------------------------------------------------------------
if want f; then
    say "(f) replayer: replays, a token shared from 50 addresses, a 100-way double submit"
    # Without the per-address rates: the double submit is about the spend
    # racing itself, which a rate limit in front would hide (and the 429s
    # would keep the 100 submitters retrying until the run's end).
    f_env=(POW_DIFFICULTY_LEVEL=10 ARGON2_TIME_COST=1 ARGON2_MEMORY_KB=32768 POW_RATE_SOLUTIONS_PER_MINUTE=0 POW_RATE_CHALLENGES_PER_MINUTE=0)
    start_server "${f_env[@]}"
    commands+=("(server) ${f_env[*]} target/release/powgate serve")
    sim f-replayer 0 --seconds 120 --replayer --replayer-addresses 50 --double-submit 100 --token-max-ips 2
    stop_server
    extra=$(j f-replayer '.personas.replayer.extra_tokens')
    double=$(j f-replayer '.personas.replayer.double_submit_tokens')
    shared=$(j f-replayer '.personas.replayer.shared_token_addresses_passed')
    summary+=("$(jq -n --argjson extra "$extra" --argjson double "$double" --argjson shared "$shared" \
        '{f: {extra_tokens: $extra, double_submit_tokens: $double, shared_token_addresses_passed: $shared, token_max_ips: 2}}')")
    rows+=("| (f) replayer: extra tokens from replays and the double submit | **$extra** | 0 |")
    rows+=("| (f) 100 concurrent submits of one solution: tokens | **$double** | 1 |")
    rows+=("| (f) addresses a shared token passed from (solving address included in the 2) | $shared | <= 2 |")
fi

# --- (g) scraper per preset --------------------------------------------------------
if want g; then
    for preset in low medium high extreme; do
        say "(g) scraper at $preset, default argon2, $g_threads solver threads, ${g_secs} s"
        start_server POW_DIFFICULTY_LEVEL="$preset"
        commands+=("(server) POW_DIFFICULTY_LEVEL=$preset target/release/powgate serve")
        sim "g-$preset" 0 --seconds "$g_secs" --scraper-threads "$g_threads" --scraper-addresses 4 --scraper-hammer-threads 1
        stop_server
        f="$out/attack-g-$preset.json"
        summary+=("$(jq --arg preset "$preset" '.personas.scraper as $s |
            {g: {($preset): {difficulty: $s.difficulty, tokens: $s.tokens, passed: $s.passed, hashes: $s.hashes,
                solver_cpu_seconds: $s.solver_cpu_seconds, cpu_seconds: $s.cpu_seconds,
                tokens_per_core_hour_measured: $s.tokens_per_core_hour,
                tokens_per_core_hour_expected: $s.tokens_per_core_hour_expected,
                cpu_seconds_per_1000_passed: $s.cpu_seconds_per_1000_passed}}}' "$f")")
        d=$(jq '.personas.scraper.difficulty' "$f")
        row=$(jq -r '.personas.scraper as $s | def r: if . == null then "-" else (. * 10 | round / 10 | tostring) end;
            "\($s.tokens) tokens, \($s.passed) passed; tokens per core-hour \($s.tokens_per_core_hour | r) measured, \($s.tokens_per_core_hour_expected | r) expected; core-s per 1000 passed \($s.cpu_seconds_per_1000_passed | r)"' "$f")
        rows+=("| (g) scraper at $preset ($d) | $row | |")
    done
fi

# --- summary ------------------------------------------------------------------------
shown=()
for c in "${commands[@]}"; do shown+=("${c//$root\//}"); done
printf '%s\n' "${summary[@]}" | jq -s --args 'reduce .[] as $x ({}; . * $x) + {parts: $parts, quick: ($quick == "1"), commands: $ARGS.positional}' \
    --arg parts "$parts" --arg quick "$quick" "${shown[@]}" >"$out/attack-summary.json"

cat <<EOF

powgate attack benchmarks, parts $parts ($(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)$([[ $quick == 1 ]] && echo ", BENCH_QUICK"))

| figure | value | target |
|---|---|---|
EOF
printf '%s\n' "${rows[@]}"
echo
echo "Summary: $out/attack-summary.json (each run in bench-results/attack-*.json)"

#!/usr/bin/env bash
# Solver benchmark: the wasm solver's hashes per second per worker in each
# browser engine (headless Chromium, Firefox ESR and WebKitGTK under Xvfb;
# 1 and 2 workers, each solver build) against the native solver's
# single-thread rate, default argon2id parameters, all in one run. Native
# also runs on 4 KiB pages (huge pages off, as a browser's memory) and with
# the solver's own portable argon2id (the scalar wasm build's code), so the
# report can tell the page size, the vector width and each engine's
# compiler apart. Prints a table, a row per engine and the ratios, and
# writes bench-results/solver.json.
#
# Installs what it needs when missing (the browsers when run as root on
# Debian, the wasm32 target, the e2e npm packages), builds the release
# binaries, then hands over to e2e/bench/solver.mjs. Safe to run again and
# again.
#
# Settings (environment):
#   BENCH_SOLVER_SECONDS=20         seconds measured per run
#   BENCH_SOLVER_WARMUP_SECONDS=2   seconds of warm-up per run, not counted
#   BENCH_SOLVER_WORKERS=1,2        worker counts to measure
#   BENCH_SOLVER_ENGINES=chromium,firefox,webkit   engines to measure
#   BENCH_SOLVER_VARIANTS=name=/solver/powgate_solver_wasm.js,…
#       the wasm builds to measure (glue URLs; the .wasm sits beside as
#       *_bg.wasm). Default: every build powgate serves among /solver/,
#       /solver/simd/ and /solver/scalar/, named by its directory.
#   BENCH_SOLVER_OUT=bench-results/solver.json
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

need=()
command -v chromium >/dev/null || need+=(chromium)
command -v firefox-esr >/dev/null || need+=(firefox-esr)
command -v WebKitWebDriver >/dev/null || need+=(webkit2gtk-driver)
command -v xvfb-run >/dev/null || need+=(xvfb)
if ((${#need[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        say "installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "missing ${need[*]}: install them (Debian: apt-get install ${need[*]}) and run again" >&2
        exit 1
    fi
fi

rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown

# The browsers are the system's; no npm package may fetch one of its own.
export PUPPETEER_SKIP_DOWNLOAD=1
if ! { [[ -d e2e/node_modules ]] && (cd e2e && npm ls --silent >/dev/null 2>&1); }; then
    say "installing the e2e npm packages"
    (cd e2e && npm ci --no-audit --no-fund)
fi

say "building powgate and the native benchmark (release)"
cargo build --release --locked -p powgate
cargo build --release --locked -p powgate-pow --example bench_native

export POWGATE_BIN="$PWD/target/release/powgate"
export BENCH_SOLVER_NATIVE_BIN="$PWD/target/release/examples/bench_native"
export BENCH_SOLVER_OUT="${BENCH_SOLVER_OUT:-$PWD/bench-results/solver.json}"
say "benchmarking: native, each wasm case, native again (${BENCH_SOLVER_SECONDS:-20} s each after ${BENCH_SOLVER_WARMUP_SECONDS:-2} s warm-up)"
exec node e2e/bench/solver.mjs

#!/usr/bin/env bash
# Coverage-guided fuzzing of challenge and token decoding (cargo-fuzz,
# libFuzzer), for a bounded time: FUZZ_SECONDS per target. Not run in CI.
#
# Needs a nightly toolchain (cargo-fuzz builds with sanitizers); installs
# cargo-fuzz when missing. Corpora grow in fuzz/corpus/<target> and are kept
# between runs (git-ignored), seeded from fuzz/seeds/<target> (committed).
# A crash leaves its input in fuzz/artifacts/<target>/ and fails the script.
#
# Usage: scripts/fuzz.sh [TARGET...]      (default: every target)
# Settings (environment):
#   FUZZ_SECONDS=60      -max_total_time per target
#   FUZZ_TOOLCHAIN=nightly
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }
seconds="${FUZZ_SECONDS:-60}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo "+$toolchain" --version >/dev/null 2>&1; then
    echo "cargo fuzz needs a nightly toolchain and '$toolchain' is not installed" >&2
    echo "(rustup toolchain install nightly, or set FUZZ_TOOLCHAIN)" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz"
    cargo install cargo-fuzz
fi

# powgate's build script compiles the wasm solver with a nested cargo, which
# under the fuzzer would inherit nightly and the sanitizer flags. The fuzz
# targets never serve the page, so empty stand-ins are embedded instead.
stub="$PWD/fuzz/target/solver-stub"
mkdir -p "$stub/scalar"
for f in powgate_solver_wasm.js powgate_solver_wasm_bg.wasm; do
    : >"$stub/$f"
    : >"$stub/scalar/$f"
done
export POWGATE_SOLVER_DIR="$stub"

cd fuzz
if (($# == 0)); then
    mapfile -t targets < <(cargo "+$toolchain" fuzz list)
else
    targets=("$@")
fi

say "building ${#targets[@]} fuzz targets (cargo +$toolchain fuzz build)"
cargo "+$toolchain" fuzz build

failed=()
for t in "${targets[@]}"; do
    say "fuzzing $t for $seconds s: cargo +$toolchain fuzz run $t corpus/$t seeds/$t -- -max_total_time=$seconds"
    mkdir -p "corpus/$t"
    # New inputs go to the first directory; the committed seeds (a few valid
    # inputs, so the round-trip checks are reached at once) are read only.
    dirs=("corpus/$t")
    [[ -d seeds/$t ]] && dirs+=("seeds/$t")
    log="target/fuzz-$t.log"
    if cargo "+$toolchain" fuzz run "$t" "${dirs[@]}" -- -max_total_time="$seconds" -print_final_stats=1 2>"$log"; then
        # libFuzzer's closing "Done N runs in S second(s)" line, and the stats.
        grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+.*(DONE|cov))' "$log" | tail -n 4 >&2 || true
        echo "$t: ok ($(ls "corpus/$t" | wc -l) inputs in corpus)" >&2
    else
        tail -n 40 "$log" >&2
        echo "$t: FAILED; see fuzz/$log and fuzz/artifacts/$t/" >&2
        failed+=("$t")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz targets that found a crash: ${failed[*]}" >&2
    exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds} s each, no crash" >&2

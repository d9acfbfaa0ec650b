# powgate developer shortcuts. `just` lists them.

default:
    @just --list

# Run the server with the embedded defaults (SQLite file, generated secrets)
run *ARGS:
    cargo run --release -- {{ARGS}}

# Every test: Rust, the page's unit tests, and the browser end-to-end tests
test:
    scripts/test.sh

# Only the browser end-to-end tests
e2e:
    cargo build -p powgate --locked
    cd e2e && npm ci --no-audit --no-fund && npm test

# Formatting and lints, as required before every commit
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# The pages' JSDoc types, checked by tsc (pinned in tools/)
typecheck:
    cd tools && npm ci --no-audit --no-fund && npm run typecheck

# Solver benchmark: wasm in Chromium, Firefox ESR and WebKitGTK vs native, default parameters
bench-solver:
    scripts/bench-solver.sh

# Load benchmarks: /verify-token throughput against a bare axum process, p99 (alone and under a flood), peak memory, argon2 vs the C CLI, proxy mode vs nginx (e), the TCP gate vs a direct connection (f), the PostgreSQL store vs SQLite with 1 000 000 tokens stored (g); BENCH_PARTS=a runs one part
bench:
    scripts/bench.sh

# Fuzz challenge and token decoding, FUZZ_SECONDS (default 60) per target; needs nightly, not run in CI
fuzz *TARGETS:
    scripts/fuzz.sh {{TARGETS}}

# Attack benchmarks: visitors under a garbage flood, the replayer, the scraper per preset (issue 14); BENCH_QUICK=1 for a ~2 minute check
bench-attack:
    scripts/bench-attack.sh

# Economics of abuse: scraper core-seconds per 1000 requests before/after budgets, a 30-minute visitor, an honest botnet's difficulty (issue 15)
bench-economics:
    scripts/bench-economics.sh

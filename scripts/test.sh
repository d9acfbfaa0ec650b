#!/usr/bin/env bash
# Runs every check: formatting and clippy, then Rust unit and integration
# tests, the page's JavaScript unit tests and types, and the end-to-end tests in
# headless Chromium (and, where they exist, behind real nginx and Caddy),
# with the page's core and the wasm cross-check also in Firefox ESR and
# WebKitGTK.
#
# On a fresh machine it first installs what the tests need: Debian packages
# (when run as root and they are missing), the wasm32 target, and the npm
# packages of the type check and the e2e tests. Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*" >&2; }

# System packages the tests drive.
need=()
command -v chromium >/dev/null || need+=(chromium)
# nginx lives in /usr/sbin, which is not on a normal user's PATH.
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v caddy >/dev/null || need+=(caddy)
# The proxy mode's TLS test makes its certificates with the openssl command;
# git is what the proxy mode is tested against.
command -v openssl >/dev/null || need+=(openssl)
command -v git >/dev/null || need+=(git)
# The other two browser engines: Firefox ESR (driven over WebDriver BiDi) and
# WebKitGTK's WebKitWebDriver with its MiniBrowser, run under Xvfb.
command -v firefox-esr >/dev/null || need+=(firefox-esr)
command -v WebKitWebDriver >/dev/null || need+=(webkit2gtk-driver)
command -v xvfb-run >/dev/null || need+=(xvfb)
# The TCP gate's reference client (examples/tcp_client.py) is Python with
# argon2-cffi, Python having no argon2 of its own.
# (The test also tries /usr/bin/python3, when a pyenv or venv python3 comes
# first on PATH.)
python3 -c 'import argon2' 2>/dev/null || /usr/bin/python3 -c 'import argon2' 2>/dev/null \
    || need+=(python3 python3-argon2)
# The PostgreSQL store is tested against a real server (scripts/postgres.sh).
compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || need+=(postgresql)
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

# Formatting and lints first (as `just lint`): cheaper than the tests, and
# what every commit must pass anyway.
say "formatting"
cargo fmt --all --check

say "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

# A private PostgreSQL cluster for the PostgreSQL store's tests, stopped
# again at the end unless it was already running (a developer's, reused).
say "PostgreSQL test cluster"
if [[ -f ${POWGATE_TEST_POSTGRES_STATE:-/tmp/powgate-test-postgres.env} ]]; then
    eval "$(scripts/postgres.sh)"
else
    eval "$(scripts/postgres.sh)"
    trap 'scripts/postgres.sh stop' EXIT
fi

say "Rust tests"
cargo test --workspace --exclude powgate-solver-wasm --locked

say "argon2id in wasm32 (SIMD and scalar builds) against the argon2 crate"
node --test pow/tests/wasm/

say "page unit tests (challenge, admin and what they share)"
node --test frontend/tests/ admin/tests/ shared/tests/

# The pages' JSDoc types, checked by the TypeScript compiler (pinned in
# tools/package-lock.json); nothing is emitted.
say "page types (tsc --noEmit)"
(cd tools && { [[ -d node_modules ]] && npm ls --silent >/dev/null 2>&1 || npm ci --no-audit --no-fund; } && npm run --silent typecheck)

say "end-to-end tests (Chromium; the core and the wasm cross-check also in Firefox ESR and WebKitGTK)"
cargo build -p powgate --locked
# The browsers are the system's; no npm package may fetch one of its own.
export PUPPETEER_SKIP_DOWNLOAD=1
(cd e2e && { [[ -d node_modules ]] && npm ls --silent >/dev/null 2>&1 || npm ci --no-audit --no-fund; } && npm test)

#!/usr/bin/env bash
# Economics benchmark (`just bench-economics`, issue 15): what abuse costs
# with per-token budgets and adaptive difficulty, simulated on a real
# powgate whose clock the simulation moves (server/tests/economics.rs,
# test `figures`, release build):
#
#   scraper  one address crawling each of ECONOMICS_SCRAPER_RATES (100,20) pages/s at
#            `medium` for ECONOMICS_SCRAPER_SECONDS simulated seconds,
#            before (unlimited token, one global difficulty) and after (the
#            defaults): core-seconds per 1000 passed requests, priced at one
#            default argon2id hash on one core of this machine, measured in
#            the same run. "Before" is also given over the token's whole
#            life (one solve buys rate x POW_TOKEN_HOURS requests), "after"
#            over the second half of the run (its steady state).
#   visitor  one address, one page per 2 s for 30 simulated minutes (100
#            requests for the first page, 10 for each later one), solving at
#            4 hashes/s: refusals and the highest difficulty multiplier.
#   botnet   ECONOMICS_BOTS addresses over ECONOMICS_BOT_NETWORKS IPv4 /24s
#            minting tokens back to back for 10 minutes: seconds until a
#            challenge carries 4x the base, then seconds after they stop
#            until every network is back at base (target: 3 half-lives).
#
# Writes bench-results/economics.json and prints it. About 15 minutes on
# two cores; ECONOMICS_SCRAPER_SECONDS=3600 ECONOMICS_BOTS=400
# ECONOMICS_BOT_NETWORKS=4 for a quick check.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench-results
cargo test --release -p powgate --test economics -- --ignored --exact figures --nocapture

//! Prometheus metrics, one registry per [`crate::state::AppState`] (no
//! global recorder, so several instances in one test process stay apart).
//! Every name carries the `powgate_` prefix.

use prometheus::{
    Counter, CounterVec, Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

use crate::gate::Decision;
use crate::reputation::WORST_BUCKET;

/// One verification-turn counter per reputation bucket, 0 to the worst.
const BUCKETS: usize = WORST_BUCKET as usize + 1;

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Challenges issued, by `purpose` (new, refresh).
    pub(crate) challenges_issued: IntCounterVec,
    /// Solutions, by `result` (accepted, rejected) and `reason`.
    pub(crate) solutions: IntCounterVec,
    /// Token lifecycle events, by `event` (issued, refreshed, revoked, purged, expired).
    pub(crate) tokens: IntCounterVec,
    /// `/verify-token` answers (`powgate_verify_decisions_total`, by
    /// `outcome`): its counters, resolved once, one per
    /// [`Decision::LABELS`] entry and in its order: `with_label_values`
    /// hashes the label and takes a lock on every call, and /verify-token
    /// counts one decision per request of the protected site.
    pub(crate) verify_outcomes: [IntCounter; Decision::LABELS.len()],
    /// Requests let through by an allowlist rule, by `rule`.
    pub(crate) allowlist_matches: IntCounterVec,
    /// Requests refused by a limit, by `limit`.
    pub(crate) limited: IntCounterVec,
    /// Requests counted against their token's budgets
    /// (`powgate_token_requests_total`).
    pub(crate) token_requests_counted: IntCounter,
    /// Requests a token had used when it was refreshed or went idle
    /// (`powgate_token_requests_used`).
    pub(crate) token_requests_used: Histogram,
    pub(crate) verify_latency: Histogram,
    pub argon2_seconds: Histogram,
    pub(crate) client_solve_seconds: Histogram,
    pub(crate) active_tokens: IntGauge,
    pub(crate) verify_queue_depth: IntGauge,
    /// Submissions waiting for a verification turn (`powgate_verify_waiting`).
    pub(crate) verify_waiting: IntGauge,
    /// Turns granted (`powgate_verify_turns_total`), indexed by reputation
    /// bucket: how much of the verification capacity went to clean (0)
    /// and to penalised clients. Resolved once, like `verify_outcomes`;
    /// read through [`Metrics::verify_turn`].
    verify_turns: [IntCounter; BUCKETS],
    /// argon2 CPU seconds spent verifying (`powgate_verify_seconds_total`),
    /// `[wrong, valid]`; read through [`Metrics::verify_seconds`].
    verify_seconds: [Counter; 2],
    pub(crate) difficulty: IntGauge,
    /// The network multiplier each issued challenge got
    /// (`powgate_challenge_network_multiplier`, see [`crate::adaptive`]).
    pub(crate) challenge_network_multiplier: Histogram,
    /// The pressure multiplier now, and its inputs: the challenge rate of
    /// the last 30 s and the baseline it is held against.
    pub(crate) pressure_multiplier: IntGauge,
    pub(crate) pressure_challenges_per_minute: IntGauge,
    pub(crate) pressure_baseline_per_minute: IntGauge,
    /// Addresses and networks with a score (`powgate_networks_scored`).
    pub(crate) networks_scored: IntGauge,
    /// HTTP connections holding a slot now (see [`crate::limits::ConnLimits`]).
    pub(crate) http_open: IntGauge,
    /// The TCP gates ([`crate::tcp`]): connections accepted, and open now.
    pub(crate) tcp_connections: IntCounter,
    pub(crate) tcp_open: IntGauge,
    /// Handshakes, by `outcome`: `passed` or the error code sent.
    pub(crate) tcp_handshakes: IntCounterVec,
    /// Time from accept to the first piped byte's chance (or the refusal).
    pub(crate) tcp_handshake_seconds: Histogram,
    /// Bytes piped, by `direction` (`to_upstream`, `to_client`).
    pub(crate) tcp_bytes: IntCounterVec,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    c
}

fn float_counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> CounterVec {
    let c = CounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    c
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(h.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    h
}

fn int_counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(g.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    g
}

impl Metrics {
    /// Adds a collector that lives elsewhere (the store's pool and
    /// listener). A name clash is a programming error, as in [`Self::new`].
    pub(crate) fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        self.registry
            .register(collector)
            .unwrap_or_else(|e| panic!("store metric: {e}"));
    }

    /// Registers every metric. The names are fixed and valid, so a failure
    /// here is a programming error caught by the tests.
    pub(crate) fn new() -> Self {
        let r = Registry::new();
        let verify_decisions = counter(
            &r,
            "powgate_verify_decisions_total",
            "/verify-token answers, by outcome.",
            &["outcome"],
        );
        let verify_turns = counter(
            &r,
            "powgate_verify_turns_total",
            "Verification turns granted, by the reputation bucket of the client (0 = no recent wrong answers).",
            &["bucket"],
        );
        let verify_seconds = float_counter(
            &r,
            "powgate_verify_seconds_total",
            "argon2 CPU seconds spent verifying solutions, by verdict (valid, wrong).",
            &["verdict"],
        );
        Self {
            http_open: gauge(
                &r,
                "powgate_open_connections",
                "HTTP connections open now, each holding one of POW_MAX_CONNECTIONS' slots (upgraded tunnels included).",
            ),
            tcp_connections: int_counter(
                &r,
                "powgate_tcp_connections_total",
                "Connections accepted by the TCP gates, refused ones included.",
            ),
            tcp_open: gauge(
                &r,
                "powgate_tcp_open_connections",
                "TCP gate connections open now, in handshake or piping.",
            ),
            tcp_handshakes: counter(
                &r,
                "powgate_tcp_handshakes_total",
                "TCP gate handshakes, by outcome: passed, or the error code sent.",
                &["outcome"],
            ),
            tcp_handshake_seconds: histogram(
                &r,
                "powgate_tcp_handshake_seconds",
                "Time from accepting a TCP gate connection to passing or refusing it, solving included.",
                vec![0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0],
            ),
            tcp_bytes: counter(
                &r,
                "powgate_tcp_bytes_total",
                "Bytes piped by the TCP gates, by direction (to_upstream, to_client).",
                &["direction"],
            ),
            verify_turns: std::array::from_fn(|b| {
                verify_turns.with_label_values(&[&b.to_string()])
            }),
            verify_seconds: ["wrong", "valid"].map(|v| verify_seconds.with_label_values(&[v])),
            verify_outcomes: Decision::LABELS.map(|l| verify_decisions.with_label_values(&[l])),
            challenges_issued: counter(
                &r,
                "powgate_challenges_issued_total",
                "Challenges issued, by purpose.",
                &["purpose"],
            ),
            solutions: counter(
                &r,
                "powgate_solutions_total",
                "Submitted solutions, by result and reason.",
                &["result", "reason"],
            ),
            tokens: counter(
                &r,
                "powgate_tokens_total",
                "Token events: issued, refreshed, revoked, purged, expired.",
                &["event"],
            ),
            allowlist_matches: counter(
                &r,
                "powgate_allowlist_matches_total",
                "Requests passed by an allowlist rule.",
                &["rule"],
            ),
            limited: counter(
                &r,
                "powgate_limited_total",
                "Requests refused by a limit, by limit.",
                &["limit"],
            ),
            token_requests_counted: int_counter(
                &r,
                "powgate_token_requests_total",
                "Passed /verify-token requests counted against their token's request budgets.",
            ),
            token_requests_used: histogram(
                &r,
                "powgate_token_requests_used",
                "Requests one token had passed since issue or refresh, observed when it is refreshed or goes idle. \
                 One histogram, not a series per token: a token label would grow without bound.",
                vec![
                    10.0,
                    100.0,
                    1_000.0,
                    5_000.0,
                    10_000.0,
                    25_000.0,
                    50_000.0,
                    100_000.0,
                    1_000_000.0,
                ],
            ),
            verify_latency: histogram(
                &r,
                "powgate_verify_token_duration_seconds",
                "Time to answer /verify-token.",
                vec![
                    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05, 0.25,
                ],
            ),
            argon2_seconds: histogram(
                &r,
                "powgate_argon2_verify_seconds",
                "Server argon2id verification time per solution.",
                vec![0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
            ),
            client_solve_seconds: histogram(
                &r,
                "powgate_client_solve_seconds",
                "Solve time reported by clients.",
                vec![1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 900.0],
            ),
            active_tokens: gauge(&r, "powgate_active_tokens", "Unexpired, unrevoked tokens."),
            verify_queue_depth: gauge(
                &r,
                "powgate_verify_queue_depth",
                "argon2 verifications running or waiting.",
            ),
            verify_waiting: gauge(
                &r,
                "powgate_verify_waiting",
                "Submissions waiting for a verification turn.",
            ),
            difficulty: gauge(
                &r,
                "powgate_difficulty",
                "Current difficulty (expected hashes) for new tokens.",
            ),
            challenge_network_multiplier: histogram(
                &r,
                "powgate_challenge_network_multiplier",
                "Network multiplier (2^k) of each issued challenge; 1 = the network's score added nothing.",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0],
            ),
            pressure_multiplier: gauge(
                &r,
                "powgate_pressure_multiplier",
                "Difficulty multiplier from the challenge rate of the last 30 s (1 = normal).",
            ),
            pressure_challenges_per_minute: gauge(
                &r,
                "powgate_pressure_challenges_per_minute",
                "Challenges issued in the last 30 s, as a rate per minute.",
            ),
            pressure_baseline_per_minute: gauge(
                &r,
                "powgate_pressure_baseline_per_minute",
                "Challenges per minute counted as normal (pressure_baseline_per_minute).",
            ),
            networks_scored: gauge(
                &r,
                "powgate_networks_scored",
                "Addresses and networks holding a network score.",
            ),
            registry: r,
        }
    }

    /// The counter of turns granted in reputation `bucket` (the worst
    /// bucket's for anything beyond it).
    pub(crate) fn verify_turn(&self, bucket: u8) -> &IntCounter {
        &self.verify_turns[usize::from(bucket.min(WORST_BUCKET))]
    }

    /// The CPU-seconds counter of verifications that found the answer
    /// `valid` or wrong.
    pub(crate) fn verify_seconds(&self, valid: bool) -> &Counter {
        &self.verify_seconds[usize::from(valid)]
    }

    /// The text exposition format.
    pub(crate) fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_prefixed_and_rendered() {
        let m = Metrics::new();
        m.challenges_issued.with_label_values(&["new"]).inc();
        m.solutions.with_label_values(&["accepted", "ok"]).inc();
        m.tokens.with_label_values(&["issued"]).inc();
        m.verify_outcomes[0].inc();
        m.allowlist_matches.with_label_values(&["health"]).inc();
        m.limited.with_label_values(&["challenge_rate"]).inc();
        m.verify_latency.observe(0.001);
        let text = m.render();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("powgate_"), "{line}");
        }
        assert!(text.contains("powgate_challenges_issued_total{purpose=\"new\"} 1"));
        assert!(text.contains("# TYPE powgate_verify_token_duration_seconds histogram"));
    }

    /// The attack simulator reads garbage CPU from the `wrong` series: a
    /// swapped index would report the flood's cost as the visitors'.
    #[test]
    fn verify_seconds_and_turns_count_under_their_own_labels() {
        let m = Metrics::new();
        m.verify_seconds(true).inc_by(0.25);
        m.verify_seconds(false).inc_by(1.5);
        m.verify_turn(0).inc();
        m.verify_turn(WORST_BUCKET).inc_by(3);
        let text = m.render();
        for line in [
            "powgate_verify_seconds_total{verdict=\"valid\"} 0.25",
            "powgate_verify_seconds_total{verdict=\"wrong\"} 1.5",
            "powgate_verify_turns_total{bucket=\"0\"} 1",
            "powgate_verify_turns_total{bucket=\"15\"} 3",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    /// The pre-resolved counters must count under their own label: an
    /// off-by-one between `Decision::LABELS` and `verify_outcomes` would
    /// report valid tokens as allowlisted.
    #[test]
    fn each_verify_outcome_counter_counts_its_own_label() {
        let m = Metrics::new();
        for (i, counter) in m.verify_outcomes.iter().enumerate() {
            counter.inc_by(i as u64 + 1);
        }
        let text = m.render();
        for (i, label) in Decision::LABELS.iter().enumerate() {
            let line = format!(
                "powgate_verify_decisions_total{{outcome=\"{label}\"}} {}",
                i + 1
            );
            assert!(text.contains(&line), "{line} in {text}");
        }
    }
}

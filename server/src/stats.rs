//! What the process remembers about recent traffic, for the admin page:
//! [`activity`] counts challenges issued, solved and failed per minute, and
//! [`solve_model`] turns the solve telemetry clients report into expected
//! solve times per device class.
//!
//! Kept in memory, because writing a row for every challenge would hand
//! attackers a cheap way to make the database work; the numbers restart
//! with the process. Durable facts (tokens) live in SQLite.

pub(crate) mod activity;
pub(crate) mod solve_model;

use pow::{Argon2Params, Difficulty};

pub(crate) use activity::{Counts, Timeline};
pub(crate) use solve_model::{ClassEstimate, ClassRate, DeviceClass, SolveReport, SolveTimes};

use crate::client_ip::NetKey;
use activity::Activity;
use solve_model::SolveModel;

/// The one handle routes hold: each event goes to the module that owns it.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    activity: Activity,
    solves: SolveModel,
}

impl Stats {
    pub(crate) fn record_issued(&self, now: i64) {
        self.activity.record_issued(now);
    }

    pub(crate) fn record_failed(&self, now: i64) {
        self.activity.record_failed(now);
    }

    /// A solve counts in the activity whatever its telemetry; only a vetted
    /// report becomes a sample of the solve model.
    pub(crate) fn record_solved(
        &self,
        now: i64,
        class: DeviceClass,
        network: NetKey,
        report: Option<SolveReport>,
    ) {
        self.activity.record_solved(now);
        if let Some(report) = report {
            self.solves.record(now, class, network, report);
        }
    }

    pub(crate) fn counts(&self, now: i64) -> Counts {
        self.activity.counts(now)
    }

    /// `count` buckets of `bucket_seconds` each, ending with the current one.
    pub(crate) fn timeline(&self, now: i64, bucket_seconds: i64, count: usize) -> Timeline {
        self.activity.timeline(now, bucket_seconds, count)
    }

    pub(crate) fn solve_times(&self, now: i64) -> SolveTimes {
        self.solves.solve_times(now)
    }

    /// The hash rate of `class`, measured or the reference.
    pub(crate) fn class_rate(
        &self,
        now: i64,
        class: DeviceClass,
        params: Argon2Params,
    ) -> ClassRate {
        self.solves.rate(now, class, params)
    }

    pub(crate) fn estimates(
        &self,
        now: i64,
        d: Difficulty,
        params: Argon2Params,
        timeout_secs: f64,
    ) -> Vec<ClassEstimate> {
        self.solves.estimates(now, d, params, timeout_secs)
    }

    /// The estimate of one class, [`DeviceClass::Other`] included.
    pub(crate) fn estimate(
        &self,
        now: i64,
        class: DeviceClass,
        d: Difficulty,
        params: Argon2Params,
        timeout_secs: f64,
    ) -> ClassEstimate {
        self.solves.estimate(now, class, d, params, timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use pow::wire::Telemetry;

    use super::*;
    use crate::client_ip::IpKey;

    /// A solve always counts as solved; its telemetry reaches the solve
    /// times only when it was vetted.
    #[test]
    fn every_solve_counts_but_only_vetted_reports_become_samples() {
        let s = Stats::default();
        let now = 1_000_000;
        let net = IpKey::of("198.51.100.7".parse().unwrap()).network();
        let report = SolveReport::vet(
            Telemetry {
                hashes: Some(100),
                elapsed_ms: Some(10_000),
                workers: Some(2),
                class: None,
            },
            Difficulty::new(100).unwrap(),
            Argon2Params::DEFAULT,
            10,
        );
        assert!(report.is_some());
        s.record_solved(now, DeviceClass::Phone, net, report);
        s.record_solved(now, DeviceClass::Phone, net, None);
        assert_eq!(s.counts(now).solved.hour, 2);
        assert_eq!(s.solve_times(now).samples, 1);
        assert_eq!(s.solve_times(now).p50_ms, Some(10_000));
    }
}

//! The solve-time model: which kind of device a client is, how fast each
//! kind hashes, which reported solves are believable, and the solve times
//! and per-class estimates the admin page shows.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use pow::wire::{ReportedClass, Telemetry};
use pow::{Argon2Params, Difficulty};
use serde::Serialize;

use crate::client_ip::NetKey;

/// Solve samples kept.
const SAMPLES: usize = 4096;
/// Samples of a class needed before its measured rate replaces the
/// reference: the median of five needs three liars to move, and an honest
/// site collects five solves per class within minutes.
const MIN_SAMPLES: usize = 5;
/// Most hashes an honest solve reports, as a multiple of the difficulty:
/// the hashes until success are geometric with mean D, so more than 32·D
/// happens with probability e^-32.
const MAX_HASHES_PER_DIFFICULTY: u64 = 32;
/// Hashes that parallel workers may add beyond the winning one: each
/// finishes the batch it is in when another wins.
const WORKER_OVERSHOOT_HASHES: u64 = 256;
/// Slack on the server-observed solve time, in ms: issue and solve times
/// are whole seconds.
const ELAPSED_SLACK_MS: u64 = 2_000;
/// The fastest plausible client, as a multiple of the reference desktop: a
/// 64-core server is about 20 times a 4-core desktop.
const MAX_RATE_OVER_DESKTOP: f64 = 100.0;
/// The slowest plausible client, as a fraction of the reference phone: a
/// throttled background tab on an old phone. Slower "rates" are a client
/// that claims few hashes over a long wait, to make the page look slow.
const MIN_RATE_UNDER_PHONE: f64 = 20.0;

/// The kind of device a client is, as the solve it reported shows (see
/// [`DeviceClass::of_solve`]). The three browser classes make the visitors'
/// estimates; [`DeviceClass::Other`] is kept apart from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DeviceClass {
    Desktop,
    Phone,
    SafariIos,
    /// `powgate solve`, scripts and any other client that is not the
    /// challenge page in a browser. A CLI on a server hashes many times
    /// faster than a visitor's browser, so counting it as a desktop made
    /// the operator underestimate the waits real visitors have.
    Other,
}

impl DeviceClass {
    /// The classes whose estimates speak for visitors.
    pub(crate) const BROWSERS: [Self; 3] = [Self::Desktop, Self::Phone, Self::SafariIos];

    /// The one rule that files a solve: the class the challenge page
    /// reports in its telemetry, when the client is a browser. The page
    /// knows more than the header (an iPad in desktop mode claims to be a
    /// Mac), and a class that is a lie only moves that class's estimate,
    /// which takes one rate per network anyway. A solve without a browser
    /// class, or from a client that does not present itself as a browser
    /// (`ureq/…` from `powgate solve`, `curl/…`, `python-requests/…`), is
    /// [`DeviceClass::Other`].
    pub(crate) fn of_solve(reported: Option<ReportedClass>, user_agent: &str) -> Self {
        // Every browser's User-Agent starts with this token, for history's
        // sake; HTTP libraries name themselves instead.
        if !user_agent.starts_with("Mozilla/") {
            return Self::Other;
        }
        match reported {
            Some(ReportedClass::Desktop) => Self::Desktop,
            Some(ReportedClass::Phone) => Self::Phone,
            Some(ReportedClass::SafariIos) => Self::SafariIos,
            Some(ReportedClass::Unknown) | None => Self::Other,
        }
    }

    pub(crate) fn is_browser(self) -> bool {
        self != Self::Other
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Desktop => "Desktop",
            Self::Phone => "Phone",
            Self::SafariIos => "Safari / iOS",
            Self::Other => "Command line and other non-browser clients",
        }
    }

    /// Whole-device hashes per second at the default parameters (t=8,
    /// m=64 MiB): a 4-core desktop, a 2019 Android phone, an iPhone 13 Pro;
    /// a command-line client is taken to run on a desktop until measured.
    fn reference_rate_at_defaults(self) -> f64 {
        match self {
            Self::Desktop | Self::Other => 12.0,
            Self::Phone => 3.7,
            Self::SafariIos => 4.3,
        }
    }

    /// The reference rate scaled to `params`: argon2's cost is close to
    /// proportional to passes × memory.
    pub(crate) fn reference_rate(self, params: Argon2Params) -> f64 {
        let default_cost = f64::from(Argon2Params::DEFAULT_TIME_COST)
            * f64::from(Argon2Params::DEFAULT_MEMORY_KIB);
        let cost = f64::from(params.t_cost()) * f64::from(params.m_cost_kib());
        self.reference_rate_at_defaults() * default_cost / cost
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: i64,
    class: DeviceClass,
    /// Where it came from: the estimates take one rate per network, so a
    /// client cannot supply the median on its own, whatever its addresses.
    network: NetKey,
    elapsed_ms: u64,
    /// Whole-client hashes per second, when reported.
    rate: Option<f64>,
}

/// Solve telemetry that passed [`SolveReport::vet`]: physically possible
/// and consistent with the challenge and with what the server observed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SolveReport {
    elapsed_ms: u64,
    /// Whole-client hashes per second, when hashes were reported.
    rate: Option<f64>,
}

impl SolveReport {
    /// Checks what a client says about solving a challenge of difficulty
    /// `d` with `params`, solved `observed_secs` after it was issued.
    /// `None` drops the sample: clamping a lie would still let it move the
    /// estimates.
    ///
    /// A sample is dropped when its time is zero or longer than the server
    /// saw pass, when its hashes exceed a generous multiple of the
    /// difficulty, or when its rate is beyond the fastest or below the
    /// slowest plausible device.
    pub(crate) fn vet(
        t: Telemetry,
        d: Difficulty,
        params: Argon2Params,
        observed_secs: i64,
    ) -> Option<Self> {
        let observed_ms = u64::try_from(observed_secs)
            .unwrap_or(0)
            .saturating_mul(1000)
            .saturating_add(ELAPSED_SLACK_MS);
        let elapsed_ms = t.elapsed_ms.filter(|ms| (1..=observed_ms).contains(ms))?;
        let max_hashes = d
            .get()
            .saturating_mul(MAX_HASHES_PER_DIFFICULTY)
            .saturating_add(WORKER_OVERSHOOT_HASHES);
        let rate = match t.hashes {
            None => None,
            Some(h) => {
                if !(1..=max_hashes).contains(&h) {
                    return None;
                }
                #[allow(clippy::cast_precision_loss)]
                let rate = h as f64 * 1000.0 / elapsed_ms as f64;
                if rate > DeviceClass::Desktop.reference_rate(params) * MAX_RATE_OVER_DESKTOP
                    || rate < DeviceClass::Phone.reference_rate(params) / MIN_RATE_UNDER_PHONE
                {
                    return None;
                }
                Some(rate)
            }
        };
        Some(Self { elapsed_ms, rate })
    }

    pub(crate) fn elapsed_ms(&self) -> u64 {
        self.elapsed_ms
    }
}

/// The latest [`SAMPLES`] vetted solves, oldest first.
#[derive(Debug, Default)]
pub(crate) struct SolveModel(Mutex<VecDeque<Sample>>);

#[derive(Debug, Clone, Serialize)]
pub(crate) struct HistogramBucket {
    /// Upper bound in ms; `None` is +Inf.
    pub le_ms: Option<u64>,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct SolveTimes {
    pub samples: usize,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub histogram: Vec<HistogramBucket>,
}

/// Expected solve time for one device class at the current difficulty.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClassEstimate {
    pub class: DeviceClass,
    pub label: &'static str,
    /// Hashes per second for the whole device.
    pub hash_rate: f64,
    /// `measured` from client telemetry, or the `reference` fallback.
    pub source: &'static str,
    pub samples: usize,
    pub mean_seconds: f64,
    pub p95_seconds: f64,
    pub exceeds_timeout: bool,
}

/// A device class's whole-device hash rate, and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct ClassRate {
    /// Hashes per second.
    pub rate: f64,
    /// `measured` from client telemetry, or the `reference` fallback.
    pub source: &'static str,
    /// Networks whose telemetry gave a rate.
    pub samples: usize,
}

/// Mean and 95th percentile of the solve time at `rate` hashes per second.
/// Each hash wins with probability 1/D, so the time is (nearly) exponential
/// with mean D/rate, and P(T > t) = 5 % at t = ln(20)·D/rate.
pub(crate) fn expected_times(d: Difficulty, rate: f64) -> (f64, f64) {
    #[allow(clippy::cast_precision_loss)]
    let mean = d.get() as f64 / rate.max(1e-9);
    (mean, mean * 20f64.ln())
}

const HISTOGRAM_MS: [u64; 10] = [
    1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 60_000, 120_000, 300_000, 900_000,
];

impl SolveModel {
    fn with<R>(&self, f: impl FnOnce(&mut VecDeque<Sample>) -> R) -> R {
        f(&mut self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    pub(crate) fn record(
        &self,
        now: i64,
        class: DeviceClass,
        network: NetKey,
        report: SolveReport,
    ) {
        let SolveReport { elapsed_ms, rate } = report;
        self.with(|samples| {
            samples.push_back(Sample {
                at: now,
                class,
                network,
                elapsed_ms,
                rate,
            });
            while samples.len() > SAMPLES {
                samples.pop_front();
            }
        });
    }

    pub(crate) fn solve_times(&self, now: i64) -> SolveTimes {
        let mut ms: Vec<u64> = self.with(|samples| {
            samples
                .iter()
                .filter(|x| x.at > now - 86_400 && x.class.is_browser())
                .map(|x| x.elapsed_ms)
                .collect()
        });
        ms.sort_unstable();
        let pct = |p: f64| {
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let i = ((ms.len() as f64 - 1.0) * p).round() as usize;
            ms.get(i).copied()
        };
        let mut histogram: Vec<HistogramBucket> = HISTOGRAM_MS
            .iter()
            .map(|le| HistogramBucket {
                le_ms: Some(*le),
                count: 0,
            })
            .collect();
        histogram.push(HistogramBucket {
            le_ms: None,
            count: 0,
        });
        for v in &ms {
            let i = HISTOGRAM_MS
                .iter()
                .position(|le| v <= le)
                .unwrap_or(HISTOGRAM_MS.len());
            histogram[i].count += 1;
        }
        SolveTimes {
            samples: ms.len(),
            p50_ms: pct(0.5),
            p95_ms: pct(0.95),
            histogram,
        }
    }

    /// The hash rate of `class`: the median of the latest rate of each
    /// network that reported one, when enough networks did, else the
    /// reference rate.
    pub(crate) fn rate(&self, now: i64, class: DeviceClass, params: Argon2Params) -> ClassRate {
        // The latest rate of each network: samples are oldest first.
        let mut rates: Vec<f64> = self.with(|samples| {
            samples
                .iter()
                .filter(|x| x.class == class && x.at > now - 86_400)
                .filter_map(|x| x.rate.map(|r| (x.network, r)))
                .collect::<HashMap<NetKey, f64>>()
                .into_values()
                .collect()
        });
        rates.sort_by(f64::total_cmp);
        if rates.len() >= MIN_SAMPLES {
            ClassRate {
                rate: rates[rates.len() / 2],
                source: "measured",
                samples: rates.len(),
            }
        } else {
            ClassRate {
                rate: class.reference_rate(params),
                source: "reference",
                samples: rates.len(),
            }
        }
    }

    /// Expected solve times per browser class, from the median measured
    /// rate when there are enough samples, else the reference rate.
    pub(crate) fn estimates(
        &self,
        now: i64,
        d: Difficulty,
        params: Argon2Params,
        timeout_secs: f64,
    ) -> Vec<ClassEstimate> {
        DeviceClass::BROWSERS
            .iter()
            .map(|class| self.estimate(now, *class, d, params, timeout_secs))
            .collect()
    }

    /// Expected solve time of one class.
    pub(crate) fn estimate(
        &self,
        now: i64,
        class: DeviceClass,
        d: Difficulty,
        params: Argon2Params,
        timeout_secs: f64,
    ) -> ClassEstimate {
        let ClassRate {
            rate,
            source,
            samples,
        } = self.rate(now, class, params);
        let (mean, p95) = expected_times(d, rate);
        ClassEstimate {
            class,
            label: class.label(),
            hash_rate: rate,
            source,
            samples,
            mean_seconds: mean,
            p95_seconds: p95,
            exceeds_timeout: p95 > timeout_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_ip::IpKey;

    /// Issue 13: an Android browser without "Chrome" in its User-Agent is a
    /// phone to the page, so the class the page reports wins over anything
    /// the header suggests.
    #[test]
    fn a_browser_is_filed_under_the_class_its_page_reports() {
        let android_webview = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Mobile Safari/537.36";
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        let class = DeviceClass::of_solve;
        assert_eq!(
            class(Some(ReportedClass::Phone), android_webview),
            DeviceClass::Phone
        );
        assert_eq!(
            class(Some(ReportedClass::SafariIos), chrome),
            DeviceClass::SafariIos
        );
        assert_eq!(
            class(Some(ReportedClass::Desktop), android_webview),
            DeviceClass::Desktop
        );
    }

    /// Issue 19: `powgate solve` (User-Agent `ureq/…`, no class) counted as
    /// a desktop, and one CLI solve moved the desktop estimate from 166 to
    /// 623 H/s. Whatever it claims, a non-browser is `Other`; so is a
    /// browser whose telemetry names no class the page knows.
    #[test]
    fn non_browser_clients_and_classless_solves_are_other() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        let class = DeviceClass::of_solve;
        for ua in ["ureq/3.1.2", "curl/8.5.0", "python-requests/2.31", ""] {
            assert_eq!(class(None, ua), DeviceClass::Other, "{ua}");
            assert_eq!(
                class(Some(ReportedClass::Desktop), ua),
                DeviceClass::Other,
                "{ua}"
            );
            assert_eq!(
                class(Some(ReportedClass::Phone), ua),
                DeviceClass::Other,
                "{ua}"
            );
        }
        assert_eq!(class(None, chrome), DeviceClass::Other);
        assert_eq!(
            class(Some(ReportedClass::Unknown), chrome),
            DeviceClass::Other
        );
    }

    /// The same bug seen from the model: samples filed as `Other` stay out
    /// of every browser estimate, the phone rate adaptive difficulty reads,
    /// and the visitors' solve times.
    #[test]
    fn other_clients_do_not_move_the_browser_estimates() {
        let s = SolveModel::default();
        let now = 1_000_000;
        let d = Difficulty::new(100).unwrap();
        let fast = SolveReport::vet(
            Telemetry {
                hashes: Some(1000),
                elapsed_ms: Some(10_000),
                workers: Some(64),
                class: None,
            },
            d,
            Argon2Params::DEFAULT,
            10,
        )
        .unwrap();
        let net = |i: usize| IpKey::of(format!("198.51.{i}.7").parse().unwrap()).network();
        for i in 0..2 * MIN_SAMPLES {
            s.record(now, DeviceClass::Other, net(i), fast);
        }
        for e in s.estimates(now, d, Argon2Params::DEFAULT, 1800.0) {
            assert_eq!((e.source, e.samples), ("reference", 0), "{e:?}");
        }
        assert_eq!(
            s.rate(now, DeviceClass::Phone, Argon2Params::DEFAULT)
                .source,
            "reference"
        );
        assert_eq!(s.solve_times(now).samples, 0);
        let other = s.estimate(now, DeviceClass::Other, d, Argon2Params::DEFAULT, 1800.0);
        assert_eq!((other.source, other.hash_rate), ("measured", 100.0));
    }

    /// What the admin page's estimate promises before any client reported:
    /// twice the difficulty or twice argon2's passes is twice the wait, and
    /// a timeout below the 95th percentile is flagged, one above is not.
    #[test]
    fn reference_estimates_follow_difficulty_argon2_cost_and_the_timeout() {
        let s = SolveModel::default();
        let desktop = |d: u64, t_cost: u32, timeout: f64| {
            let params = Argon2Params::new(
                t_cost,
                Argon2Params::DEFAULT_MEMORY_KIB,
                Argon2Params::DEFAULT_PARALLELISM,
                Argon2Params::DEFAULT_HASH_LENGTH,
            )
            .unwrap();
            s.estimates(0, Difficulty::new(d).unwrap(), params, timeout)
                .into_iter()
                .find(|e| e.class == DeviceClass::Desktop)
                .unwrap()
        };
        let t = Argon2Params::DEFAULT_TIME_COST;
        let base = desktop(900, t, 1e9);
        assert_eq!(base.source, "reference");
        assert!(base.mean_seconds > 0.0 && base.p95_seconds > base.mean_seconds);
        let ratio = |a: f64, b: f64| (a / b - 2.0).abs() < 1e-9;
        assert!(ratio(desktop(1800, t, 1e9).mean_seconds, base.mean_seconds));
        assert!(ratio(
            desktop(900, 2 * t, 1e9).mean_seconds,
            base.mean_seconds
        ));
        assert!(desktop(900, t, base.p95_seconds * 0.99).exceeds_timeout);
        assert!(!desktop(900, t, base.p95_seconds * 1.01).exceeds_timeout);
    }

    #[test]
    fn measured_rates_replace_the_reference_after_enough_samples() {
        let s = SolveModel::default();
        let now = 1_000_000;
        let t = Telemetry {
            hashes: Some(100),
            elapsed_ms: Some(10_000),
            workers: Some(2),
            class: None,
        };
        let d = Difficulty::new(100).unwrap();
        let report = SolveReport::vet(t, d, Argon2Params::DEFAULT, 10).unwrap();
        let net = |i: usize| IpKey::of(format!("198.51.{i}.7").parse().unwrap()).network();
        for i in 0..MIN_SAMPLES - 1 {
            s.record(now, DeviceClass::Phone, net(i), report);
        }
        let phone = |s: &SolveModel| {
            s.estimates(now, d, Argon2Params::DEFAULT, 1800.0)
                .into_iter()
                .find(|e| e.class == DeviceClass::Phone)
                .unwrap()
        };
        assert_eq!(phone(&s).source, "reference", "too few samples yet");
        s.record(now, DeviceClass::Phone, net(0), report);
        assert_eq!(
            phone(&s).source,
            "reference",
            "a network counts once, however often it reports"
        );
        s.record(now, DeviceClass::Phone, net(MIN_SAMPLES), report);
        let est = s.estimates(
            now,
            Difficulty::new(100).unwrap(),
            Argon2Params::DEFAULT,
            1800.0,
        );
        let phone = est.iter().find(|e| e.class == DeviceClass::Phone).unwrap();
        assert_eq!((phone.source, phone.hash_rate), ("measured", 10.0));
        assert!((phone.mean_seconds - 10.0).abs() < 1e-9);
        let desktop = est
            .iter()
            .find(|e| e.class == DeviceClass::Desktop)
            .unwrap();
        assert_eq!(desktop.source, "reference");
        assert_eq!(s.solve_times(now).p50_ms, Some(10_000));
    }

    /// Issue 12, attacker's pass: `hashes` or `elapsed_ms` of 2^64-1 showed
    /// 1.8e22 H/s and 2^64 ms solve times on the admin page.
    #[test]
    fn poisoned_telemetry_is_dropped_not_clamped() {
        let d = Difficulty::new(200).unwrap();
        let p = Argon2Params::DEFAULT;
        let vet = |hashes, elapsed_ms, observed| {
            SolveReport::vet(
                Telemetry {
                    hashes,
                    elapsed_ms,
                    workers: None,
                    class: None,
                },
                d,
                p,
                observed,
            )
        };
        assert!(vet(Some(u64::MAX), Some(10_000), 20).is_none());
        assert!(vet(Some(100), Some(u64::MAX), 20).is_none());
        assert!(vet(Some(100), Some(0), 20).is_none());
        assert!(vet(Some(0), Some(1_000), 20).is_none());
        assert!(
            vet(Some(100), Some(23_000), 20).is_none(),
            "beyond the observed 20 s + slack"
        );
        assert!(vet(Some(200 * 32 + 257), Some(10_000), 600).is_none());
        assert!(
            vet(Some(6_000), Some(1_000), 600).is_none(),
            "6000 H/s at 64 MiB"
        );
        let honest = vet(Some(150), Some(12_000), 13).unwrap();
        assert_eq!((honest.elapsed_ms(), honest.rate), (12_000, Some(12.5)));
        assert_eq!(vet(None, Some(12_000), 13).unwrap().rate, None);
    }
}

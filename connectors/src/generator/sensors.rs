//! The `sensors` profile: a deterministic synthetic model of host metrics.
//!
//! Every host of every tenant reports the five [`SENSOR_METRICS`]; one (tenant, host, metric) triple is a
//! *series*. A sample of a series at event time `ts` is
//!
//! ```text
//! base + drift + amplitude · sin(2π · ts / season_period + phase) + noise
//! ```
//!
//! clamped to the metric's physical range and rounded to 4 decimals. `base`, `amplitude` and `phase` are drawn
//! once per series, `noise` is Gaussian, and `drift` is a slow clamped random walk (only `mem` and `disk`
//! drift). With probability `spike_probability` a sample is a spike: it jumps 50–90% of the way to the top of
//! the range.
//!
//! Each series draws from its own SplitMix64 stream seeded from `(seed, series)`, and every sample consumes
//! the same number of draws. So a series' values depend only on the seed, the series index and how many
//! samples it has produced — not on which worker generates it or how series interleave — and two configs
//! that differ only in `spike_probability` agree on every sample that is not a spike.

use std::collections::{BTreeMap, HashMap};
use std::f64::consts::TAU;

use pulse_core::{DurationSpec, Event, EventBody, Metric};
use serde::Deserialize;

/// The metrics every host reports, in this order.
pub const SENSOR_METRICS: [&str; 5] = ["cpu", "mem", "disk", "net", "temp"];

const TENANT_NAMES: [&str; 8] = [
    "acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka",
];
/// Series per host: metric is the fastest-varying part of a series index.
const METRICS_PER_HOST: u64 = SENSOR_METRICS.len() as u64;
const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Settings of the `sensors` profile, as written in a pipeline file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SensorsConfig {
    /// Number of tenants, at least 1.
    pub tenants: u32,
    /// Names of the first tenants, in order (e.g. `["demo", "acme"]`); the
    /// rest are named `acme`, `globex`, ... as by default, skipping names taken.
    pub tenant_names: Vec<String>,
    /// Hosts per tenant, at least 1.
    pub hosts_per_tenant: u32,
    /// Seed of every series' random stream.
    pub seed: u64,
    /// Period of the daily-ish seasonality.
    pub season_period: DurationSpec,
    /// Chance that a sample is a spike, in [0, 1].
    pub spike_probability: f64,
}

impl Default for SensorsConfig {
    fn default() -> Self {
        Self {
            tenants: 3,
            tenant_names: Vec::new(),
            hosts_per_tenant: 20,
            seed: 42,
            season_period: DurationSpec::from_secs(86_400),
            spike_probability: 0.001,
        }
    }
}

impl SensorsConfig {
    /// Checks every setting; the error names the setting and says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.tenants == 0 {
            return Err("sensors: `tenants` is 0; set it to 1 or more".to_owned());
        }
        if self.tenant_names.len() > self.tenants as usize {
            return Err(format!(
                "sensors: `tenant_names` lists {} names but `tenants` is {}; raise `tenants` or drop names",
                self.tenant_names.len(),
                self.tenants
            ));
        }
        if let Some(bad) = self.tenant_names.iter().find(|name| name.trim().is_empty()) {
            return Err(format!(
                "sensors: `tenant_names` has an empty name {bad:?}; name every tenant"
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = self.tenant_names.iter().find(|name| !seen.insert(name.as_str())) {
            return Err(format!(
                "sensors: `tenant_names` lists {twice:?} twice; names must be distinct"
            ));
        }
        if self.hosts_per_tenant == 0 {
            return Err("sensors: `hosts_per_tenant` is 0; set it to 1 or more".to_owned());
        }
        if !(0.0..=1.0).contains(&self.spike_probability) {
            return Err(format!(
                "sensors: `spike_probability` is {}; set it to a number from 0 to 1, e.g. 0.001",
                self.spike_probability
            ));
        }
        if self.season_period.as_millis() == 0 {
            return Err("sensors: `season_period` is 0s; set it to a positive duration, e.g. \"1d\"".to_owned());
        }
        Ok(())
    }
}

/// How one metric behaves. `amplitude` and `noise` are fractions of the series' base level.
#[derive(Debug)]
struct Profile {
    range: (f64, f64),
    base: (f64, f64),
    amplitude: (f64, f64),
    noise: f64,
    drift_step: f64,
    drift_limit: f64,
}

/// One profile per entry of [`SENSOR_METRICS`], in the same order.
static PROFILES: [Profile; 5] = [
    // cpu, %: strongly seasonal, noisy.
    Profile::new((0.0, 100.0), (15.0, 55.0), (0.2, 0.6), 0.08, (0.0, 0.0)),
    // mem, %: mildly seasonal, wanders as caches fill and processes leak.
    Profile::new((0.0, 100.0), (30.0, 70.0), (0.05, 0.12), 0.02, (0.05, 20.0)),
    // disk, %: barely seasonal, fills and gets cleaned up.
    Profile::new((0.0, 100.0), (20.0, 80.0), (0.0, 0.02), 0.005, (0.02, 15.0)),
    // net, Mbit/s: traffic follows the day.
    Profile::new((0.0, 10_000.0), (100.0, 2_000.0), (0.2, 0.6), 0.1, (0.0, 0.0)),
    // temp, °C: follows the load a little.
    Profile::new((15.0, 95.0), (35.0, 55.0), (0.05, 0.15), 0.03, (0.0, 0.0)),
];

impl Profile {
    /// Arguments in field order; `drift` is (step sd, limit).
    const fn new(range: (f64, f64), base: (f64, f64), amplitude: (f64, f64), noise: f64, drift: (f64, f64)) -> Self {
        Self {
            range,
            base,
            amplitude,
            noise,
            drift_step: drift.0,
            drift_limit: drift.1,
        }
    }
}

/// SplitMix64: tiny, fast and plenty for synthetic data; one stream per series.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn for_series(seed: u64, series: u64) -> Self {
        // Hashing both inputs keeps neighbouring seeds and series from starting on overlapping stretches.
        Self(mix(seed ^ mix(series.wrapping_add(GOLDEN_GAMMA))))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn between(&mut self, (lo, hi): (f64, f64)) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal by Box–Muller; the second variate is dropped to keep the draws per sample fixed.
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // in (0, 1], so the logarithm is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
    }
}

/// The SplitMix64 output function, also used to hash seeds.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One series: its stream, the parameters drawn once from it, and its drift so far.
#[derive(Clone, Debug)]
struct Series {
    rng: SplitMix64,
    profile: &'static Profile,
    base: f64,
    amplitude: f64,
    phase: f64,
    drift: f64,
}

impl Series {
    fn new(seed: u64, index: u64) -> Self {
        let profile = &PROFILES[(index % METRICS_PER_HOST) as usize];
        let mut rng = SplitMix64::for_series(seed, index);
        let base = rng.between(profile.base);
        let amplitude = base * rng.between(profile.amplitude);
        let phase = TAU * rng.uniform();
        Self {
            rng,
            profile,
            base,
            amplitude,
            phase,
            drift: 0.0,
        }
    }

    /// The seasonal factor in [-1, 1] at `ts`.
    fn season(&self, ts: u64, period_ms: u64) -> f64 {
        // Reducing modulo the period first keeps full precision for epoch-millisecond timestamps.
        (TAU * (ts % period_ms) as f64 / period_ms as f64 + self.phase).sin()
    }

    /// The next value at `ts` and whether it is a spike. Always six draws, spike or not.
    fn next(&mut self, ts: u64, period_ms: u64, spike_probability: f64) -> (f64, bool) {
        let p = self.profile;
        let noise = self.rng.normal() * p.noise * self.base;
        let step = self.rng.normal() * p.drift_step;
        let spike = self.rng.uniform() < spike_probability;
        let spike_height = self.rng.between((0.5, 0.9));
        self.drift = (self.drift + step).clamp(-p.drift_limit, p.drift_limit);
        let (lo, hi) = p.range;
        let seasonal = self.amplitude * self.season(ts, period_ms);
        let mut value = (self.base + self.drift + seasonal + noise).clamp(lo, hi);
        if spike {
            value += (hi - value) * spike_height;
        }
        ((value * 1e4).round() / 1e4, spike)
    }
}

/// The `sensors` profile as a model that produces the next sample of any series on demand.
#[derive(Clone, Debug)]
pub struct SensorsModel {
    seed: u64,
    hosts_per_tenant: u64,
    period_ms: u64,
    spike_probability: f64,
    tenants: Vec<String>,
    /// Created on first use, so a worker holds state only for the series it generates.
    series: HashMap<u64, Series>,
}

impl SensorsModel {
    /// A model of `config`, which should have passed [`SensorsConfig::validate`].
    pub fn new(config: &SensorsConfig) -> Self {
        Self {
            seed: config.seed,
            hosts_per_tenant: config.hosts_per_tenant.into(),
            period_ms: config.season_period.as_millis().max(1),
            spike_probability: config.spike_probability,
            tenants: tenant_names(config),
            series: HashMap::new(),
        }
    }

    /// Number of series: tenants × hosts_per_tenant × 5 metrics, metric fastest-varying.
    pub fn series_count(&self) -> u64 {
        self.tenants.len() as u64 * self.hosts_per_tenant * METRICS_PER_HOST
    }

    /// The next sample of series `series` at event time `ts`; panics if `series >= series_count()`.
    pub fn sample(&mut self, series: u64, ts: u64) -> Event {
        let (value, _spike) = self.draw(series, ts);
        let metric = series % METRICS_PER_HOST;
        let host = series / METRICS_PER_HOST % self.hosts_per_tenant;
        let tenant = series / METRICS_PER_HOST / self.hosts_per_tenant;
        Event {
            ts,
            tenant: self.tenants[tenant as usize].as_str().into(),
            source: format!("host-{host:03}").into(),
            body: EventBody::Metric(Metric {
                metric: SENSOR_METRICS[metric as usize].into(),
                value,
                labels: BTreeMap::from([("region".to_owned(), REGIONS[(host % 3) as usize].to_owned())]),
            }),
        }
    }

    /// The next value of `series` at `ts` and whether it is a spike.
    fn draw(&mut self, series: u64, ts: u64) -> (f64, bool) {
        let count = self.series_count();
        assert!(series < count, "series {series} out of range: the model has {count}");
        let seed = self.seed;
        let state = self.series.entry(series).or_insert_with(|| Series::new(seed, series));
        state.next(ts, self.period_ms, self.spike_probability)
    }
}

/// The name of tenant `index`: a company name for the first eight, then `tenant-NN`.
/// `config.tenants` distinct names: the configured ones first, then the
/// default names (`acme`, `globex`, ..., `tenant-08`, ...) not already taken.
fn tenant_names(config: &SensorsConfig) -> Vec<String> {
    let defaults = (0u32..).map(|index| match TENANT_NAMES.get(index as usize) {
        Some(name) => (*name).to_owned(),
        None => format!("tenant-{index:02}"),
    });
    let mut names = config.tenant_names.clone();
    for name in defaults {
        if names.len() >= config.tenants as usize {
            break;
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const T0: u64 = 1_732_345_678_000;

    fn config(seed: u64, spike_probability: f64) -> SensorsConfig {
        SensorsConfig {
            tenants: 2,
            tenant_names: Vec::new(),
            hosts_per_tenant: 10,
            seed,
            season_period: "1h".parse().unwrap(),
            spike_probability,
        }
    }

    /// `samples` (series, ts) pairs: round-robin over every series, one round every 10 seconds.
    fn schedule(model: &SensorsModel, samples: u64) -> impl Iterator<Item = (u64, u64)> + use<> {
        let n = model.series_count();
        (0..samples).map(move |i| (i % n, T0 + i / n * 10_000))
    }

    fn value(event: &Event) -> f64 {
        event.value().expect("the sensors model emits metrics")
    }

    #[test]
    fn same_config_gives_same_values_whatever_the_interleaving() {
        let cfg = config(7, 0.01);
        let (mut round_robin, mut one_by_one) = (SensorsModel::new(&cfg), SensorsModel::new(&cfg));
        let (n, rounds) = (round_robin.series_count(), 200);
        let ts = |round: u64| T0 + round * 60_000;
        let mut a = vec![Vec::new(); n as usize];
        for round in 0..rounds {
            for s in 0..n {
                a[s as usize].push(round_robin.sample(s, ts(round)));
            }
        }
        let mut b = vec![Vec::new(); n as usize];
        for s in (0..n).rev() {
            for round in 0..rounds {
                b[s as usize].push(one_by_one.sample(s, ts(round)));
            }
        }
        assert_eq!(a, b);
        let mut again = SensorsModel::new(&cfg);
        assert!((0..n).all(|s| again.sample(s, ts(0)) == a[s as usize][0]));
    }

    #[test]
    fn values_stay_in_range_and_have_four_decimals() {
        let mut model = SensorsModel::new(&config(42, 0.05));
        let ranges = [(0.0, 100.0), (0.0, 100.0), (0.0, 100.0), (0.0, 10_000.0), (15.0, 95.0)];
        for (s, ts) in schedule(&model, 100_000) {
            let v = value(&model.sample(s, ts));
            let (lo, hi) = ranges[(s % 5) as usize];
            assert!((lo..=hi).contains(&v), "series {s}: {v} outside [{lo}, {hi}]");
            assert!((v * 1e4 - (v * 1e4).round()).abs() < 1e-6, "{v} has over 4 decimals");
        }
    }

    #[test]
    fn different_seeds_give_different_values() {
        let (mut a, mut b) = (SensorsModel::new(&config(1, 0.0)), SensorsModel::new(&config(2, 0.0)));
        let samples: Vec<_> = schedule(&a, 10_000).collect();
        let same = samples
            .iter()
            .filter(|&&(s, ts)| a.sample(s, ts) == b.sample(s, ts))
            .count();
        assert!(same < 100, "{same} of 10000 samples equal across seeds");
    }

    #[test]
    fn spikes_come_at_the_configured_rate_and_leave_the_rest_alone() {
        let (mut spiky, mut calm) = (SensorsModel::new(&config(3, 0.05)), SensorsModel::new(&config(3, 0.0)));
        let (mut spikes, mut calm_spikes) = (0, 0);
        for (s, ts) in schedule(&spiky, 100_000) {
            let (v, spike) = spiky.draw(s, ts);
            let (baseline, calm_spike) = calm.draw(s, ts);
            spikes += u32::from(spike);
            calm_spikes += u32::from(calm_spike);
            if spike {
                assert!(v >= baseline, "a spike lowered series {s}: {v} < {baseline}");
            } else {
                assert_eq!(v, baseline, "series {s} changed without a spike");
            }
        }
        // Binomial(100000, 0.05): mean 5000, sd 69.
        assert!((4_500..=5_500).contains(&spikes), "{spikes} spikes at p = 0.05");
        assert_eq!(calm_spikes, 0);
    }

    #[test]
    fn cpu_follows_the_season() {
        let mut model = SensorsModel::new(&config(5, 0.0));
        let period_ms = model.period_ms;
        for cpu in (0..model.series_count()).step_by(5) {
            // 2000 samples 7 s apart cover almost four one-hour periods.
            let samples: Vec<_> = (0..2_000)
                .map(|k| T0 + k * 7_000)
                .map(|ts| (ts, value(&model.sample(cpu, ts))))
                .collect();
            let series = &model.series[&cpu];
            let (high, low): (Vec<_>, Vec<_>) =
                samples.iter().partition(|(ts, _)| series.season(*ts, period_ms) >= 0.0);
            let mean = |half: &[&(u64, f64)]| half.iter().map(|(_, v)| v).sum::<f64>() / half.len() as f64;
            let (high, low) = (mean(&high), mean(&low));
            assert!(high - low > 1.0, "series {cpu}: high {high:.2}, low {low:.2}");
        }
    }

    #[test]
    fn validate_names_the_bad_setting() {
        assert_eq!(SensorsConfig::default().validate(), Ok(()));
        let with = |change: fn(&mut SensorsConfig)| {
            let mut config = SensorsConfig::default();
            change(&mut config);
            config
        };
        let bad = [
            (with(|c| c.tenants = 0), "tenants"),
            (with(|c| c.hosts_per_tenant = 0), "hosts_per_tenant"),
            (with(|c| c.tenant_names = vec!["a".into(); 4]), "tenant_names"),
            (with(|c| c.tenant_names = vec!["a".into(), "a".into()]), "tenant_names"),
            (with(|c| c.tenant_names = vec![" ".into()]), "tenant_names"),
            (with(|c| c.spike_probability = -0.1), "spike_probability"),
            (with(|c| c.spike_probability = 1.5), "spike_probability"),
            (with(|c| c.spike_probability = f64::NAN), "spike_probability"),
            (
                with(|c| c.season_period = DurationSpec::from_millis(0)),
                "season_period",
            ),
        ];
        for (config, setting) in bad {
            let err = config.validate().unwrap_err();
            assert!(err.contains(&format!("`{setting}`")), "{config:?}: {err}");
        }
    }

    #[test]
    fn named_tenants_come_first_and_defaults_fill_the_rest() {
        let named = |names: &[&str], tenants| SensorsConfig {
            tenants,
            tenant_names: names.iter().map(|n| (*n).to_owned()).collect(),
            ..Default::default()
        };
        assert_eq!(tenant_names(&named(&[], 3)), ["acme", "globex", "initech"]);
        assert_eq!(tenant_names(&named(&["demo"], 3)), ["demo", "acme", "globex"]);
        assert_eq!(tenant_names(&named(&["globex", "demo"], 3)), ["globex", "demo", "acme"]);
        assert_eq!(tenant_names(&named(&[], 10))[8..], ["tenant-08", "tenant-09"]);
        let mut model = SensorsModel::new(&SensorsConfig {
            hosts_per_tenant: 1,
            ..named(&["demo"], 2)
        });
        let tenants: BTreeSet<String> = (0..model.series_count())
            .map(|s| model.sample(s, T0).tenant.into_string())
            .collect();
        assert_eq!(tenants, BTreeSet::from(["demo".to_owned(), "acme".to_owned()]));
    }

    #[test]
    fn config_reads_from_a_pipeline_file_with_defaults() {
        let config: SensorsConfig = serde_json::from_str(r#"{"tenants": 5, "season_period": "1h"}"#).unwrap();
        let expected = SensorsConfig {
            tenants: 5,
            season_period: DurationSpec::from_secs(3_600),
            ..Default::default()
        };
        assert_eq!(config, expected);
        let err = serde_json::from_str::<SensorsConfig>(r#"{"tenant": 5}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `tenant`"), "{err}");
    }

    #[test]
    fn series_map_to_tenant_host_and_metric() {
        let mut model = SensorsModel::new(&SensorsConfig {
            tenants: 10,
            hosts_per_tenant: 12,
            ..Default::default()
        });
        assert_eq!(model.series_count(), 600);
        let cases = [
            (0, "acme", "host-000", "cpu", "eu-west"),
            (4, "acme", "host-000", "temp", "eu-west"),
            (5, "acme", "host-001", "cpu", "us-east"),
            (61, "globex", "host-000", "mem", "eu-west"),
            ((8 * 12 + 11) * 5 + 3, "tenant-08", "host-011", "net", "ap-south"),
            (599, "tenant-09", "host-011", "temp", "ap-south"),
        ];
        for (series, tenant, host, metric, region) in cases {
            let event = model.sample(series, T0);
            let EventBody::Metric(m) = &event.body else {
                panic!("expected a metric, got {event:?}")
            };
            let got = (
                event.tenant.as_str(),
                event.source.as_str(),
                m.metric.as_str(),
                m.labels["region"].as_str(),
            );
            assert_eq!(got, (tenant, host, metric, region), "series {series}");
        }
        assert_eq!(model.sample(0, T0).ts, T0);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn series_past_the_end_is_a_bug() {
        let mut model = SensorsModel::new(&config(1, 0.0));
        model.sample(model.series_count(), T0);
    }
}

//! Writing families through the `prometheus-client` encoder (Prometheus text
//! format 0.0.4): a family is declared with its type, so a counter's name gets
//! `_total` from the encoder and histograms get `_bucket`/`_sum`/`_count`;
//! a name can no longer say one type while its samples say another.
//!
//! The values are read at scrape time (a [`MetricsSnapshot`](super::MetricsSnapshot)),
//! not kept in the crate's own metric objects, so each exposition registers one
//! [`Collector`] that writes the snapshot it owns.

use crate::error::{Error, ErrorKind, Result};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    prometheus_text, DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The content type of the text [`expose`] returns.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// What a family writer returns: the encoder's error (writing to a `String` itself never fails).
pub(super) type Res<T = ()> = std::result::Result<T, std::fmt::Error>;

/// Label pairs of one sample, in order.
pub(super) type Labels<'l> = &'l [(&'l str, &'l str)];

/// The families of one exposition, written in the order they are declared.
pub(super) struct Out<'a>(DescriptorEncoder<'a>);

impl Out<'_> {
    pub(super) fn gauges<'s>(&'s mut self, name: &'s str, help: &str) -> Res<Gauges<'s>> {
        Ok(Gauges(self.0.encode_descriptor(name, help, None, MetricType::Gauge)?))
    }

    /// A counter family: `name` without `_total`, which the encoder appends.
    pub(super) fn counters<'s>(&'s mut self, name: &'s str, help: &str) -> Res<Counters<'s>> {
        debug_assert!(!name.ends_with("_total"), "counter {name}: the encoder appends _total");
        Ok(Counters(self.0.encode_descriptor(name, help, None, MetricType::Counter)?))
    }

    pub(super) fn histograms<'s>(&'s mut self, name: &'s str, help: &str) -> Res<Histograms<'s>> {
        Ok(Histograms(self.0.encode_descriptor(name, help, None, MetricType::Histogram)?))
    }

    /// A gauge family of one unlabelled sample.
    pub(super) fn gauge(&mut self, name: &str, help: &str, value: impl EncodeGaugeValue) -> Res {
        self.gauges(name, help)?.sample(&[], value)
    }

    /// A counter family of one unlabelled sample.
    pub(super) fn counter(&mut self, name: &str, help: &str, value: impl EncodeCounterValue) -> Res {
        self.counters(name, help)?.sample(&[], value)
    }
}

pub(super) struct Gauges<'s>(MetricEncoder<'s>);

impl Gauges<'_> {
    pub(super) fn sample(&mut self, labels: Labels<'_>, value: impl EncodeGaugeValue) -> Res {
        self.0.encode_family(&labels)?.encode_gauge(&value)
    }
}

pub(super) struct Counters<'s>(MetricEncoder<'s>);

impl Counters<'_> {
    pub(super) fn sample(&mut self, labels: Labels<'_>, value: impl EncodeCounterValue) -> Res {
        self.0.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&value, None)
    }
}

pub(super) struct Histograms<'s>(MetricEncoder<'s>);

impl Histograms<'_> {
    /// One histogram: `buckets` are (upper bound, observations in that bucket alone),
    /// bounds ascending; the encoder adds them up and writes the `+Inf` bucket as `count`.
    pub(super) fn sample(&mut self, labels: Labels<'_>, sum: f64, count: u64, buckets: &[(f64, u64)]) -> Res {
        self.0.encode_family(&labels)?.encode_histogram::<NoLabelSet>(sum, count, buckets, None)
    }
}

/// A counter value from a server's signed counter (never negative there).
pub(super) fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A 0/1 gauge value.
pub(super) fn flag(v: bool) -> i64 {
    i64::from(v)
}

/// The exposition of `data`, written by `write`.
pub(super) fn expose<T: Send + Sync + 'static>(data: T, write: fn(&mut Out<'_>, &T) -> Res) -> Result<String> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Source { data, write }));
    let mut text = String::with_capacity(16 * 1024);
    prometheus_text::encode(&mut text, &registry).map_err(|e| {
        Error::new(ErrorKind::Internal, "encoding the metrics in the Prometheus text format failed").with_source(e)
    })?;
    Ok(text)
}

/// What one exposition shows, as the registry's only collector (it owns its data:
/// a registry keeps `'static` collectors).
struct Source<T> {
    data: T,
    write: fn(&mut Out<'_>, &T) -> Res,
}

impl<T> std::fmt::Debug for Source<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fwdb metrics source")
    }
}

impl<T: Send + Sync + 'static> Collector for Source<T> {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> Res {
        (self.write)(&mut Out(encoder), &self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(o: &mut Out<'_>, _: &()) -> Res {
        o.counter("fwdb_things", "Things done.", 3u64)?;
        o.gauges("fwdb_level", "A level.")?.sample(&[("pool", "a\"b")], 1.5)?;
        o.histograms("fwdb_wait_seconds", "Waits.")?.sample(&[("pool", "p")], 0.7, 3, &[(0.1, 1), (1.0, 1)])
    }

    #[test]
    fn counters_get_total_from_the_encoder_and_histograms_their_series() {
        let t = expose((), sample).unwrap();
        assert!(
            t.contains(
                "# HELP fwdb_things_total Things done.\n# TYPE fwdb_things_total counter\nfwdb_things_total 3\n"
            ),
            "{t}"
        );
        assert!(t.contains("# TYPE fwdb_level gauge\nfwdb_level{pool=\"a\\\"b\"} 1.5\n"), "{t}");
        assert!(t.contains("# TYPE fwdb_wait_seconds histogram\n"), "{t}");
        assert!(
            t.contains(
                "fwdb_wait_seconds_bucket{pool=\"p\",le=\"0.1\"} 1\nfwdb_wait_seconds_bucket{pool=\"p\",le=\"1\"} 2\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("fwdb_wait_seconds_bucket{pool=\"p\",le=\"+Inf\"} 3\nfwdb_wait_seconds_sum{pool=\"p\"} 0.7\nfwdb_wait_seconds_count{pool=\"p\"} 3\n"),
            "{t}"
        );
        assert!(!t.contains("# EOF"), "the Prometheus text format has no EOF marker: {t}");
    }
}

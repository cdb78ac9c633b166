//! The `metrics` recorder behind the EMF records: one cell per metric and label set, and
//! [`EmfRecorder::take`], which reads what changed since the last take (a counter's
//! increase, a gauge's value once set, the values a histogram recorded) for the documents.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

use crate::document::{Kind, Sample};

/// A counter: its total, and the total at the last take.
#[derive(Default)]
struct CounterCell {
    total: AtomicU64,
    taken: AtomicU64,
}

impl CounterFn for CounterCell {
    fn increment(&self, value: u64) {
        self.total.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.total.fetch_max(value, Ordering::Relaxed);
    }
}

/// A gauge: its value (f64 bits), reported once set.
#[derive(Default)]
struct GaugeCell {
    bits: AtomicU64,
    set: AtomicBool,
}

impl GaugeCell {
    fn update(&self, f: impl Fn(f64) -> f64) {
        let _ = self
            .bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(f(f64::from_bits(b)).to_bits())
            });
        self.set.store(true, Ordering::Relaxed);
    }
}

impl GaugeFn for GaugeCell {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.update(|_| value);
    }
}

/// A histogram: the values recorded since the last take.
#[derive(Default)]
struct HistogramCell {
    values: Mutex<Vec<f64>>,
}

impl HistogramFn for HistogramCell {
    fn record(&self, value: f64) {
        self.values
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(value);
    }
}

enum Cell {
    Counter(Arc<CounterCell>),
    Gauge(Arc<GaugeCell>),
    Histogram(Arc<HistogramCell>),
}

type SeriesKey = (String, Vec<(String, String)>);

/// A `metrics` recorder keeping what the EMF records need. Cheap to clone (one shared
/// registry): install one clone, take from another.
#[derive(Clone, Default)]
pub struct EmfRecorder {
    cells: Arc<Mutex<BTreeMap<SeriesKey, Cell>>>,
}

fn series(key: &Key) -> SeriesKey {
    let mut labels: Vec<(String, String)> = key
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect();
    labels.sort();
    (key.name().to_owned(), labels)
}

impl EmfRecorder {
    pub fn new() -> EmfRecorder {
        EmfRecorder::default()
    }

    fn cell<T: Default>(
        &self,
        key: &Key,
        wrap: fn(Arc<T>) -> Cell,
        unwrap: fn(&Cell) -> Option<Arc<T>>,
    ) -> Option<Arc<T>> {
        let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        let cell = cells
            .entry(series(key))
            .or_insert_with(|| wrap(Arc::new(T::default())));
        // A name registered as another kind before: this handle records nothing.
        unwrap(cell)
    }

    /// What changed since the last take: every counter that grew (by how much), every gauge
    /// set at least once (its value), every histogram that recorded (its values).
    pub fn take(&self) -> Vec<Sample> {
        let cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for ((name, labels), cell) in cells.iter() {
            let (kind, values) = match cell {
                Cell::Counter(c) => {
                    let total = c.total.load(Ordering::Relaxed);
                    let before = c.taken.swap(total, Ordering::Relaxed);
                    let grown = total.saturating_sub(before);
                    (Kind::Counter, if grown > 0 { vec![grown as f64] } else { vec![] })
                }
                Cell::Gauge(g) => {
                    let set = g.set.load(Ordering::Relaxed);
                    let value = f64::from_bits(g.bits.load(Ordering::Relaxed));
                    (Kind::Gauge, if set { vec![value] } else { vec![] })
                }
                Cell::Histogram(h) => (
                    Kind::Histogram,
                    std::mem::take(&mut *h.values.lock().unwrap_or_else(PoisonError::into_inner)),
                ),
            };
            if !values.is_empty() {
                out.push(Sample {
                    name: name.clone(),
                    labels: labels.clone(),
                    kind,
                    values,
                });
            }
        }
        out
    }
}

impl Recorder for EmfRecorder {
    // Units come from the metric names (`document::unit`), descriptions are not sent.
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.cell(key, Cell::Counter, |c| match c {
            Cell::Counter(c) => Some(c.clone()),
            _ => None,
        })
        .map_or_else(Counter::noop, Counter::from_arc)
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.cell(key, Cell::Gauge, |c| match c {
            Cell::Gauge(g) => Some(g.clone()),
            _ => None,
        })
        .map_or_else(Gauge::noop, Gauge::from_arc)
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.cell(key, Cell::Histogram, |c| match c {
            Cell::Histogram(h) => Some(h.clone()),
            _ => None,
        })
        .map_or_else(Histogram::noop, Histogram::from_arc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_take_reports_what_changed_since_the_last() {
        let r = EmfRecorder::new();
        metrics::with_local_recorder(&r, || {
            metrics::counter!("c_total", "b" => "2", "a" => "1").increment(3);
            metrics::counter!("c_total", "a" => "1", "b" => "2").increment(1);
            metrics::counter!("zero_total").increment(0);
            metrics::gauge!("g").set(5.0);
            metrics::gauge!("g").increment(2.0);
            metrics::histogram!("h_seconds").record(0.5);
            metrics::histogram!("h_seconds").record(1.5);
        });
        let mut first = r.take();
        first.sort_by(|a, b| a.name.cmp(&b.name));
        let pairs = |l: &[(&str, &str)]| -> Vec<(String, String)> {
            l.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
        };
        assert_eq!(
            first,
            [
                Sample {
                    name: "c_total".into(),
                    labels: pairs(&[("a", "1"), ("b", "2")]),
                    kind: Kind::Counter,
                    values: vec![4.0],
                },
                Sample {
                    name: "g".into(),
                    labels: vec![],
                    kind: Kind::Gauge,
                    values: vec![7.0],
                },
                Sample {
                    name: "h_seconds".into(),
                    labels: vec![],
                    kind: Kind::Histogram,
                    values: vec![0.5, 1.5],
                },
            ]
        );
        // Nothing recorded since: only the gauge's value stands.
        let second = r.take();
        assert_eq!(second.len(), 1, "{second:?}");
        assert_eq!((second[0].name.as_str(), second[0].kind), ("g", Kind::Gauge));
        metrics::with_local_recorder(&r, || metrics::counter!("c_total", "a" => "1", "b" => "2").absolute(10));
        let third = r.take();
        let c = third.iter().find(|s| s.name == "c_total").unwrap();
        assert_eq!(c.values, [6.0], "the increase up to the absolute value");
    }

    #[test]
    fn a_name_registered_as_another_kind_records_nothing() {
        let r = EmfRecorder::new();
        metrics::with_local_recorder(&r, || {
            metrics::counter!("x").increment(1);
            metrics::gauge!("x").set(9.0);
        });
        let taken = r.take();
        assert_eq!(taken.len(), 1);
        assert_eq!((taken[0].kind, taken[0].values.clone()), (Kind::Counter, vec![1.0]));
    }
}

//! The EMF documents of one flush: samples grouped by their label set, each group one JSON
//! object whose `_aws.CloudWatchMetrics` directive names the namespace, the labels as the
//! dimension set and every metric with its unit, the labels and values as root members.
//! Pure: the recorder hands the samples in, the caller writes the documents out.

use serde_json::{Map, Value, json};

/// The most metrics one directive may name (CloudWatch's limit).
pub const MAX_METRICS: usize = 100;
/// The most values one metric may carry in one document (CloudWatch's limit).
pub const MAX_VALUES: usize = 100;
/// The longest dimension value CloudWatch accepts, in bytes.
pub const MAX_DIMENSION_VALUE: usize = 1024;

/// What kind of metric a sample is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric of one label set since the last flush: a counter's increase, a gauge's last
/// value, or every value a histogram recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// Label names and values, sorted by name.
    pub labels: Vec<(String, String)>,
    pub kind: Kind,
    pub values: Vec<f64>,
}

/// The CloudWatch unit of a metric, from the Prometheus naming convention its name follows:
/// `_seconds` is Seconds, `_bytes` Bytes; otherwise counters and gauges count things
/// (Count) and histograms have no unit (None).
pub fn unit(name: &str, kind: Kind) -> &'static str {
    if name.ends_with("_seconds") {
        "Seconds"
    } else if name.ends_with("_bytes") {
        "Bytes"
    } else {
        match kind {
            Kind::Counter | Kind::Gauge => "Count",
            Kind::Histogram => "None",
        }
    }
}

/// A label value as a valid CloudWatch dimension value: ASCII without control characters
/// (others become `?`), at least one non-blank character (else `none`), at most
/// [`MAX_DIMENSION_VALUE`] bytes.
pub fn dimension_value(value: &str) -> String {
    let mut out: String = value
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect();
    out.truncate(MAX_DIMENSION_VALUE);
    if out.trim().is_empty() {
        "none".into()
    } else {
        out
    }
}

/// The documents for `samples` (in any order), stamped `timestamp_ms` (milliseconds since
/// the Unix epoch). One document per label set, more when a set has over [`MAX_METRICS`]
/// metrics or a histogram over [`MAX_VALUES`] values. A metric with no value is left out.
pub fn documents(namespace: &str, timestamp_ms: u64, samples: &[Sample]) -> Vec<Value> {
    let mut sorted: Vec<&Sample> = samples.iter().filter(|s| !s.values.is_empty()).collect();
    sorted.sort_by(|a, b| (&a.labels, &a.name).cmp(&(&b.labels, &b.name)));
    let mut docs = Vec::new();
    for group in sorted.chunk_by(|a, b| a.labels == b.labels) {
        let labels = &group[0].labels;
        let rounds = group
            .iter()
            .map(|s| s.values.len().div_ceil(MAX_VALUES))
            .max()
            .unwrap_or(0);
        for round in 0..rounds {
            let present: Vec<(&Sample, &[f64])> = group
                .iter()
                .filter_map(|s| s.values.chunks(MAX_VALUES).nth(round).map(|c| (*s, c)))
                .collect();
            for part in present.chunks(MAX_METRICS) {
                docs.push(document(namespace, timestamp_ms, labels, part));
            }
        }
    }
    docs
}

fn document(
    namespace: &str,
    timestamp_ms: u64,
    labels: &[(String, String)],
    metrics: &[(&Sample, &[f64])],
) -> Value {
    let mut root = Map::new();
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(s, _)| json!({"Name": s.name, "Unit": unit(&s.name, s.kind)}))
        .collect();
    let dimensions: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimensions],
                "Metrics": definitions,
            }],
        }),
    );
    for (k, v) in labels {
        root.insert(k.clone(), Value::String(dimension_value(v)));
    }
    for (s, values) in metrics {
        let value = match values {
            [one] => json!(one),
            many => json!(many),
        };
        root.insert(s.name.clone(), value);
    }
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, labels: &[(&str, &str)], kind: Kind, values: &[f64]) -> Sample {
        Sample {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            kind,
            values: values.to_vec(),
        }
    }

    #[test]
    fn units_follow_the_metric_names() {
        let rows = [
            ("wa_http_request_duration_seconds", Kind::Histogram, "Seconds"),
            ("wa_queue_oldest_age_seconds", Kind::Gauge, "Seconds"),
            ("wa_media_bytes", Kind::Histogram, "Bytes"),
            ("wa_http_requests_total", Kind::Counter, "Count"),
            ("wa_queue_depth", Kind::Gauge, "Count"),
            ("wa_batch_size", Kind::Histogram, "None"),
        ];
        for (name, kind, want) in rows {
            assert_eq!(unit(name, kind), want, "{name}");
        }
    }

    #[test]
    fn dimension_values_are_valid_for_cloudwatch() {
        let long = "a".repeat(2000);
        let rows: [(&str, String); 5] = [
            ("/devices/{device_id}", "/devices/{device_id}".into()),
            ("", "none".into()),
            ("  ", "none".into()),
            ("caf\u{e9}\n", "caf??".into()),
            (long.as_str(), "a".repeat(MAX_DIMENSION_VALUE)),
        ];
        for (input, want) in rows {
            assert_eq!(dimension_value(input), want, "{input:?}");
        }
    }

    #[test]
    fn a_document_names_its_namespace_dimensions_and_metrics_with_units() {
        let samples = [
            sample(
                "wa_http_requests_total",
                &[("method", "POST"), ("route", "/apps"), ("status", "201")],
                Kind::Counter,
                &[2.0],
            ),
            sample("wa_devices", &[("status", "connected")], Kind::Gauge, &[3.0]),
        ];
        let docs = documents("wa-server", 1_700_000_000_123, &samples);
        assert_eq!(docs.len(), 2, "one document per label set: {docs:?}");
        let http = docs
            .iter()
            .find(|d| d.get("wa_http_requests_total").is_some())
            .unwrap();
        assert_eq!(
            *http,
            json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_123u64,
                    "CloudWatchMetrics": [{
                        "Namespace": "wa-server",
                        "Dimensions": [["method", "route", "status"]],
                        "Metrics": [{"Name": "wa_http_requests_total", "Unit": "Count"}],
                    }],
                },
                "method": "POST",
                "route": "/apps",
                "status": "201",
                "wa_http_requests_total": 2.0,
            })
        );
    }

    #[test]
    fn metrics_of_one_label_set_share_a_document() {
        let labels = [("method", "GET"), ("route", "/health")];
        let samples = [
            sample(
                "wa_http_request_duration_seconds",
                &labels,
                Kind::Histogram,
                &[0.01, 0.02],
            ),
            sample("wa_http_requests_total", &labels, Kind::Counter, &[2.0]),
        ];
        let docs = documents("ns", 1, &samples);
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(
            d["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([
                {"Name": "wa_http_request_duration_seconds", "Unit": "Seconds"},
                {"Name": "wa_http_requests_total", "Unit": "Count"},
            ])
        );
        assert_eq!(d["wa_http_request_duration_seconds"], json!([0.01, 0.02]));
    }

    #[test]
    fn a_metric_without_labels_has_an_empty_dimension_set() {
        let docs = documents(
            "ns",
            1,
            &[sample("wa_send_latency_seconds", &[], Kind::Histogram, &[1.5])],
        );
        assert_eq!(docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!(docs[0]["wa_send_latency_seconds"], json!(1.5));
    }

    #[test]
    fn large_histograms_and_label_sets_are_split_within_cloudwatchs_limits() {
        let values: Vec<f64> = (0..250).map(f64::from).collect();
        let docs = documents(
            "ns",
            1,
            &[sample("h_seconds", &[("a", "b")], Kind::Histogram, &values)],
        );
        let sizes: Vec<usize> = docs
            .iter()
            .map(|d| d["h_seconds"].as_array().map_or(1, Vec::len))
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
        let carried: Vec<f64> = docs
            .iter()
            .flat_map(|d| d["h_seconds"].as_array().unwrap().clone())
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(carried, values, "every value once, in order");

        let many: Vec<Sample> = (0..150)
            .map(|i| sample(&format!("m{i:03}"), &[("a", "b")], Kind::Counter, &[1.0]))
            .collect();
        let docs = documents("ns", 1, &many);
        let counts: Vec<usize> = docs
            .iter()
            .map(|d| {
                d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(counts, [100, 50]);
    }

    #[test]
    fn metrics_without_values_are_left_out() {
        let docs = documents("ns", 1, &[sample("c_total", &[], Kind::Counter, &[])]);
        assert!(docs.is_empty(), "{docs:?}");
    }
}

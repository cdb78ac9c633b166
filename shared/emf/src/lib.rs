//! CloudWatch Embedded Metric Format (EMF) for the AWS deployment: a `metrics` recorder that
//! keeps the process's metrics (the names and labels `/metrics` has, from
//! `wa_core::metrics`) and writes them as EMF JSON lines to stdout, from which CloudWatch
//! Logs extracts them as CloudWatch metrics (labels as dimensions). The Lambdas flush at
//! the end of every invocation, the worker every [`INTERVAL`].
//!
//! Whether it is on and under which namespace is [`Settings::from_lookup`]: on by default
//! under Lambda, where stdout is the function's log.

mod document;
mod recorder;

use std::io::Write;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use document::{Kind, Sample, documents, unit};
pub use recorder::EmfRecorder;

/// The namespace when `WA_METRICS_NAMESPACE` is unset.
pub const DEFAULT_NAMESPACE: &str = "wa-server";

/// How often a long-running process (the worker) writes its records.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// Whether to write EMF records, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The CloudWatch namespace of every metric (`WA_METRICS_NAMESPACE`).
    pub namespace: String,
}

impl Settings {
    /// `WA_EMF` (`1`/`true` on, `0`/`false` off; unset: on under Lambda, that is when
    /// `AWS_LAMBDA_FUNCTION_NAME` is set) and `WA_METRICS_NAMESPACE` (default
    /// [`DEFAULT_NAMESPACE`], 1-255 characters). `None`: off. Fails naming the variable
    /// whose value is invalid.
    pub fn from_lookup(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Settings>, (&'static str, String)> {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let on = match var("WA_EMF").as_deref() {
            Some("1" | "true") => true,
            Some("0" | "false") => false,
            Some(_) => return Err(("WA_EMF", "must be 1, 0, true or false".into())),
            None => var("AWS_LAMBDA_FUNCTION_NAME").is_some(),
        };
        if !on {
            return Ok(None);
        }
        let namespace = var("WA_METRICS_NAMESPACE").unwrap_or_else(|| DEFAULT_NAMESPACE.into());
        if namespace.len() > 255 || namespace.starts_with(':') || !namespace.is_ascii() {
            return Err((
                "WA_METRICS_NAMESPACE",
                "must be 1-255 ASCII characters, not starting with ':'".into(),
            ));
        }
        Ok(Some(Settings { namespace }))
    }

    pub fn from_env() -> Result<Option<Settings>, (&'static str, String)> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }
}

struct Installed {
    recorder: EmfRecorder,
    namespace: String,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Installs the EMF recorder as the process's `metrics` recorder (once; later calls do
/// nothing). Returns false when another recorder was installed first: then nothing is
/// recorded here and [`flush`] writes nothing.
pub fn install(settings: &Settings) -> bool {
    if INSTALLED.get().is_some() {
        return true;
    }
    let recorder = EmfRecorder::new();
    if metrics::set_global_recorder(recorder.clone()).is_err() {
        tracing::warn!("another metrics recorder is installed: no EMF records");
        return false;
    }
    let _ = INSTALLED.set(Installed {
        recorder,
        namespace: settings.namespace.clone(),
    });
    true
}

/// Installs the recorder when [`Settings::from_env`] says so; `Err` for an invalid setting.
/// Whether it is on.
pub fn install_from_env() -> Result<bool, String> {
    match Settings::from_env() {
        Ok(Some(s)) => Ok(install(&s)),
        Ok(None) => Ok(false),
        Err((var, problem)) => Err(format!("{var}: {problem}")),
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Writes one JSON line per document of what `recorder` took to `out`.
pub fn flush_to(
    recorder: &EmfRecorder,
    namespace: &str,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    for doc in documents(namespace, now_ms(), &recorder.take()) {
        // One write per line: a log event is one line, whole.
        let mut line = doc.to_string();
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    out.flush()
}

/// Writes what changed since the last flush to stdout, as EMF lines; nothing when the
/// recorder is not installed. A failed write is logged, never fatal.
pub fn flush() {
    let Some(installed) = INSTALLED.get() else {
        return;
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if let Err(e) = flush_to(&installed.recorder, &installed.namespace, &mut out) {
        tracing::warn!(error = %e, "writing the EMF records failed");
    }
}

/// Until `stop` turns true: every `every`, runs `refresh` (the gauges read from the store
/// and the queues), then [`flush`]es; flushes once more when stopping.
pub async fn flush_periodically<F, Fut>(
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    refresh: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once: nothing to report yet.
    tick.tick().await;
    while !*stop.borrow() {
        tokio::select! {
            _ = tick.tick() => {
                refresh().await;
                flush();
            }
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The environment given, and the settings it makes.
    type Row<'a> = (&'a [(&'a str, &'a str)], Result<Option<Settings>, &'a str>);

    #[test]
    fn settings_come_from_the_environment() {
        let on = |ns: &str| -> Result<Option<Settings>, &str> {
            Ok(Some(Settings {
                namespace: ns.into(),
            }))
        };
        let rows: [Row; 8] = [
            (&[], Ok(None)),
            (
                &[("AWS_LAMBDA_FUNCTION_NAME", "wa-AppsFunction")],
                on("wa-server"),
            ),
            (
                &[("AWS_LAMBDA_FUNCTION_NAME", "f"), ("WA_EMF", "0")],
                Ok(None),
            ),
            (&[("WA_EMF", "1")], on("wa-server")),
            (
                &[("WA_EMF", "true"), ("WA_METRICS_NAMESPACE", "prod-wa")],
                on("prod-wa"),
            ),
            (&[("WA_EMF", "yes")], Err("WA_EMF")),
            (
                &[("WA_EMF", "1"), ("WA_METRICS_NAMESPACE", ":bad")],
                Err("WA_METRICS_NAMESPACE"),
            ),
            (
                &[("WA_EMF", "1"), ("WA_METRICS_NAMESPACE", "")],
                on("wa-server"),
            ),
        ];
        for (vars, want) in rows {
            let got = Settings::from_lookup(&|k| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            })
            .map_err(|(var, _)| var);
            assert_eq!(got, want, "{vars:?}");
        }
    }

    #[test]
    fn a_flush_writes_one_emf_line_per_document() {
        let r = EmfRecorder::new();
        metrics::with_local_recorder(&r, || {
            metrics::counter!("wa_sends_total", "outcome" => "sent").increment(2);
            metrics::histogram!("wa_send_latency_seconds").record(0.25);
        });
        let mut out = Vec::new();
        flush_to(&r, "wa-test", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        for doc in &lines {
            let directive = &doc["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], "wa-test");
            assert!(doc["_aws"]["Timestamp"].as_u64().unwrap() > 1_600_000_000_000);
            for m in directive["Metrics"].as_array().unwrap() {
                let name = m["Name"].as_str().unwrap();
                assert!(doc.get(name).is_some(), "{doc}");
                assert!(m["Unit"].is_string(), "{doc}");
            }
            for dim in directive["Dimensions"][0].as_array().unwrap() {
                assert!(doc[dim.as_str().unwrap()].is_string(), "{doc}");
            }
        }
        let mut again = Vec::new();
        flush_to(&r, "wa-test", &mut again).unwrap();
        assert!(again.is_empty(), "nothing new: nothing written");
    }
}

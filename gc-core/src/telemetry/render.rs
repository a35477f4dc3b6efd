//! Metrics as text and JSON, and histograms as a table: what an embedder prints or ships to a
//! monitoring system without writing a formatter for each metric kind.
//!
//! * `Display` for [`Metrics`]: one `name value` line per metric, in the order of
//!   [`ALL`](crate::metrics::ALL); a histogram as its count and the upper bounds of its 50th,
//!   99th and 100th percentiles.
//! * [`Metrics::to_json`]: one JSON object, `{"name": value, …}`; a histogram as
//!   `{"counts": […], "buckets": […]}` with the last boundary (+∞) as `null`.
//! * `Display` for [`Histogram`]: its non-empty buckets, one line each, with the bounds in
//!   human units (`ns`, `µs`, `ms`, `s`), the count and a bar; the pause histogram printed this
//!   way is a pause-time distribution at a glance.

use std::fmt::{self, Write as _};

use crate::telemetry::metrics::{Histogram, Metrics, Value};

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in self.samples() {
            match &s.value {
                Value::Uint64(v) => writeln!(f, "{} {v}", s.name)?,
                Value::Float64(v) => writeln!(f, "{} {v}", s.name)?,
                Value::Histogram(h) => {
                    let q = |q: f64| h.quantile_upper_bound(q).map_or("-".into(), seconds);
                    writeln!(
                        f,
                        "{} count={} p50<={} p99<={} max<={}",
                        s.name,
                        h.total(),
                        q(0.5),
                        q(0.99),
                        q(1.0)
                    )?
                }
            }
        }
        Ok(())
    }
}

impl Metrics {
    /// The snapshot as one JSON object: `{"name": value, …}` in the order of
    /// [`ALL`](crate::metrics::ALL). Numbers are JSON numbers (a non-finite float is `null`); a
    /// histogram is `{"counts": [...], "buckets": [...]}`, its boundaries in seconds and the
    /// last one, +∞, as `null`.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        for (i, s) in self.samples().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Metric names are ASCII without quotes or backslashes (see `ALL`).
            let _ = write!(out, "\"{}\":", s.name);
            match &s.value {
                Value::Uint64(v) => {
                    let _ = write!(out, "{v}");
                }
                Value::Float64(v) => json_f64(&mut out, *v),
                Value::Histogram(h) => {
                    out.push_str("{\"counts\":[");
                    for (j, c) in h.counts.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{c}");
                    }
                    out.push_str("],\"buckets\":[");
                    for (j, b) in h.buckets.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        json_f64(&mut out, *b);
                    }
                    out.push_str("]}");
                }
            }
        }
        out.push('}');
        out
    }
}

/// A float as JSON: its shortest round-trip form, or `null` if it is not finite.
fn json_f64(out: &mut String, v: f64) {
    if v.is_finite() {
        // `{:?}` always has a digit after the point or an exponent: valid JSON.
        let _ = write!(out, "{v:?}");
    } else {
        out.push_str("null");
    }
}

/// A duration in seconds, in the unit that keeps it between 1 and 1000 (`ns` … `s`).
fn seconds(s: f64) -> String {
    if !s.is_finite() {
        return "inf".into();
    }
    let (v, unit) = if s < 1e-6 {
        (s * 1e9, "ns")
    } else if s < 1e-3 {
        (s * 1e6, "µs")
    } else if s < 1.0 {
        (s * 1e3, "ms")
    } else {
        (s, "s")
    };
    let v = (v * 100.0).round() / 100.0;
    format!("{v}{unit}")
}

impl fmt::Display for Histogram {
    /// The non-empty buckets, one line each: `[low, high)  count  bar`, the bar scaled to the
    /// fullest bucket (40 characters); boundaries as durations (the pause histogram's unit).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = self.counts.iter().copied().max().unwrap_or(0);
        if max == 0 {
            return writeln!(f, "(empty)");
        }
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let bar = "#".repeat(((c as f64 / max as f64) * 40.0).ceil() as usize);
            writeln!(
                f,
                "[{:>9}, {:>9})  {c:>8}  {bar}",
                seconds(self.buckets[i]),
                seconds(self.buckets[i + 1])
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist() -> Histogram {
        Histogram {
            counts: vec![0, 3, 0, 1],
            buckets: vec![0.0, 1e-6, 2e-6, 1e-3, f64::INFINITY],
        }
    }

    #[test]
    fn histogram_prints_its_non_empty_buckets() {
        let s = hist().to_string();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 2, "{s}");
        assert!(
            lines[0].starts_with('[') && lines[0].contains(" 1µs,"),
            "{s}"
        );
        assert!(
            lines[0].contains(" 2µs)") && lines[0].contains(" 3  #"),
            "{s}"
        );
        assert!(lines[0].ends_with(&"#".repeat(40)), "{s}");
        assert!(
            lines[1].contains(" 1ms,") && lines[1].contains(" inf)"),
            "{s}"
        );
        assert!(
            lines[1].ends_with(&format!(" 1  {}", "#".repeat(14))),
            "{s}"
        );
        let empty = Histogram {
            counts: vec![0],
            buckets: vec![0.0, f64::INFINITY],
        };
        assert_eq!(empty.to_string(), "(empty)\n");
    }

    /// A comma between members and between array elements, none before the first or after
    /// the last: a snapshot whose first metrics are an integer, a float and a histogram of four
    /// buckets, rendered whole.
    #[test]
    fn json_members_and_elements_are_separated_by_single_commas() {
        use crate::telemetry::metrics::ALL;
        let n = ALL.len();
        let mut values = vec![
            Value::Uint64(7),
            Value::Float64(0.5),
            Value::Histogram(hist()),
        ];
        values.resize(n, Value::Uint64(0));
        let json = Metrics::from_values(values).to_json();
        let (a, b, c) = (ALL[0].0, ALL[1].0, ALL[2].0);
        let head = format!(
            "{{\"{a}\":7,\"{b}\":0.5,\"{c}\":{{\"counts\":[0,3,0,1],\
             \"buckets\":[0.0,1e-6,2e-6,0.001,null]}},\""
        );
        assert!(json.starts_with(&head), "{json}");
        assert!(
            json.ends_with(&format!(",\"{}\":0}}", ALL[n - 1].0)),
            "{json}"
        );
        for bad in ["{,", "[,", ",,", ",]", ",}"] {
            assert!(!json.contains(bad), "{bad} in {json}");
        }
        assert_eq!(json.matches(",\"/").count(), n - 1, "{json}");
    }

    #[test]
    fn floats_render_as_json_numbers_or_null() {
        let mut s = String::new();
        json_f64(&mut s, 0.25);
        s.push(' ');
        json_f64(&mut s, 3.0);
        s.push(' ');
        json_f64(&mut s, f64::INFINITY);
        assert_eq!(s, "0.25 3.0 null");
        assert_eq!(seconds(1.5e-7), "150ns");
        assert_eq!(seconds(0.0123), "12.3ms");
        // Each unit from its first whole value: 1µs, not 1000ns.
        assert_eq!(seconds(1e-6), "1µs");
        assert_eq!(seconds(1e-3), "1ms");
        assert_eq!(seconds(1.0), "1s");
        assert_eq!(seconds(f64::INFINITY), "inf");
    }
}

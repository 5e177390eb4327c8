//! Figures, tables and the summary of targets.

use serde_json::Value;

/// One measured figure: median and spread of its samples.
#[derive(Clone, Debug)]
pub struct Metric {
    pub name: String,
    pub unit: String,
    pub n: usize,
    pub median: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
}

impl Metric {
    /// From samples (any order).
    pub fn from_samples(name: &str, unit: &str, samples: &[f64]) -> Metric {
        let mut v = samples.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let at = |q: f64| if n == 0 { f64::NAN } else { v[((n - 1) as f64 * q).round() as usize] };
        Metric {
            name: name.into(),
            unit: unit.into(),
            n,
            median: if n == 0 { f64::NAN } else { v[(n - 1) / 2] },
            p99: at(0.99),
            min: at(0.0),
            max: at(1.0),
        }
    }

    pub fn single(name: &str, unit: &str, x: f64) -> Metric {
        Metric::from_samples(name, unit, &[x])
    }

    /// A JSON line printed by the C or Lua programs.
    pub fn from_json_line(line: &str) -> Option<Metric> {
        let v: Value = serde_json::from_str(line).ok()?;
        let f = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
        Some(Metric {
            name: v.get("metric")?.as_str()?.to_string(),
            unit: v.get("unit")?.as_str()?.to_string(),
            n: v.get("n")?.as_u64()? as usize,
            median: f("median"),
            p99: f("p99"),
            min: f("min"),
            max: f("max"),
        })
    }
}

/// Numbers with a sensible number of digits.
pub fn num(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A titled table of figures, printed as Markdown.
pub struct Table {
    pub title: String,
    pub note: String,
    pub rows: Vec<(String, Metric)>,
}

impl Table {
    pub fn new(title: &str, note: &str) -> Table {
        Table { title: title.into(), note: note.into(), rows: Vec::new() }
    }

    pub fn add(&mut self, label: &str, m: &Metric) {
        self.rows.push((label.into(), m.clone()));
    }

    pub fn print(&self) {
        println!("\n### {}\n", self.title);
        if !self.note.is_empty() {
            println!("{}\n", self.note);
        }
        println!("| figure | median | p99 | min | max | n | unit |");
        println!("|---|---:|---:|---:|---:|---:|---|");
        for (label, m) in &self.rows {
            println!(
                "| {label} | {} | {} | {} | {} | {} | {} |",
                num(m.median),
                num(m.p99),
                num(m.min),
                num(m.max),
                m.n,
                m.unit
            );
        }
    }
}

/// One target from the issue, as measured.
pub struct Check {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub pass: bool,
}

pub fn print_summary(checks: &[Check]) {
    println!("\n### Summary: targets\n");
    println!("| target | limit | measured | |");
    println!("|---|---|---|---|");
    for c in checks {
        println!("| {} | {} | {} | {} |", c.what, c.target, c.measured, if c.pass { "PASS" } else { "MISS" });
    }
}

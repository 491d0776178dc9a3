//! What a run of a pack found: each check's status and failing items, how
//! they changed since the previous run, and the run's summary. The JSON
//! report is a [`Run`]; [`crate::history`] stores it and reads the [`Previous`] one back.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::severity::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The query ran and returned no rows.
    Pass,
    /// The query returned failing items.
    Fail,
    /// The check could not be decided: invalid definition, failed or timed-out query.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }
}

/// How a failing item relates to the previous run of the same pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Failing now, not in the previous run (or there is none).
    New,
    /// Failing now and in the previous run.
    StillFailing,
    /// Failing in the previous run, not now (the check ran and passed for it).
    Resolved,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::StillFailing => "still_failing",
            Change::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Change> {
        [Change::New, Change::StillFailing, Change::Resolved].into_iter().find(|c| c.as_str() == s)
    }
}

/// One row of a check's result: something that fails it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub host: String,
    pub scope: String,
    pub scope_id: Option<String>,
    /// Container name, when the query returns a `container` column.
    pub container: Option<String>,
    pub item: String,
    pub reason: String,
    pub change: Change,
    /// The result's other columns, as text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<(String, String)>,
}

#[cfg(test)]
impl Item {
    /// A new failing item of container `name` (scope id `id-{name}`), for tests.
    pub(crate) fn example(name: &str) -> Item {
        Item {
            host: "h".into(),
            scope: "container".into(),
            scope_id: Some(format!("id-{name}")),
            container: Some(name.into()),
            item: name.into(),
            reason: "r".into(),
            change: Change::New,
            details: vec![("image".into(), "debian".into())],
        }
    }
}

impl Item {
    /// What identifies an item across runs.
    pub fn key(&self) -> (String, String, String, String) {
        (self.host.clone(), self.scope.clone(), self.scope_id.clone().unwrap_or_default(), self.item.clone())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckRun {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub tags: Vec<String>,
    pub rationale: String,
    pub remediation: String,
    pub status: Status,
    pub error: Option<String>,
    /// The check's definition is invalid, so it never ran (its severity may be a guess).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invalid: bool,
    pub duration_ms: u64,
    /// Failing items, each marked new or still failing.
    pub failing: Vec<Item>,
    /// Items that failed in the previous run and no longer do.
    pub resolved: Vec<Item>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCount {
    pub severity: String,
    pub checks: usize,
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub failing_items: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub checks: usize,
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub failing_items: usize,
    pub new_items: usize,
    pub resolved_items: usize,
    /// Critical first.
    pub by_severity: Vec<SeverityCount>,
}

/// One run of a pack: what the JSON report is, and what is stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub run_id: String,
    pub pack: String,
    pub pack_title: String,
    pub pack_file: String,
    /// The data directory or server the checks read.
    pub source: String,
    /// cli or schedule.
    pub trigger: String,
    /// RFC 3339, UTC.
    pub started: String,
    pub started_us: i64,
    pub duration_ms: u64,
    /// The run this one was diffed against, if any.
    pub previous_run_id: Option<String>,
    pub summary: Summary,
    /// Problems of the pack file not tied to one check (syntax errors, unknown keys, duplicate ids).
    pub problems: Vec<String>,
    pub checks: Vec<CheckRun>,
}

impl Run {
    /// Checks at or above `fail_on` that failed or could not be decided; a pipeline gates on these.
    /// Invalid checks and pack problems count at any severity: a check lost to a typo must not pass silently.
    pub fn gate(&self, fail_on: Severity) -> Vec<String> {
        let mut out: Vec<String> = self
            .checks
            .iter()
            .filter(|c| c.invalid || (c.severity >= fail_on && c.status != Status::Pass))
            .map(|c| format!("{} ({}, {})", c.id, c.severity, c.status.as_str()))
            .collect();
        out.extend(self.problems.iter().map(|p| format!("pack problem: {p}")));
        out
    }

    pub(crate) fn summarize(&mut self) {
        let mut s = Summary::default();
        for sev in Severity::ALL.into_iter().rev() {
            let mut c = SeverityCount { severity: sev.to_string(), ..Default::default() };
            for r in self.checks.iter().filter(|r| r.severity == sev) {
                c.checks += 1;
                match r.status {
                    Status::Pass => c.passed += 1,
                    Status::Fail => c.failed += 1,
                    Status::Error => c.errors += 1,
                }
                c.failing_items += r.failing.len();
            }
            s.checks += c.checks;
            s.passed += c.passed;
            s.failed += c.failed;
            s.errors += c.errors;
            s.failing_items += c.failing_items;
            s.by_severity.push(c);
        }
        for r in &self.checks {
            s.new_items += r.failing.iter().filter(|i| i.change == Change::New).count();
            s.resolved_items += r.resolved.len();
        }
        self.summary = s;
    }
}

/// The previous run's failing items per check, and that run's id.
pub struct Previous {
    pub run_id: Option<String>,
    /// Check id -> items failing when that check last ran without error.
    pub failing: HashMap<String, Vec<Item>>,
}

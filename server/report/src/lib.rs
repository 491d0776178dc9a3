//! Compliance reports: query packs of checks run over the store, their runs
//! stored and diffed, and the reports people and pipelines read.
//!
//! A pack ([`pack`]) is a TOML file of checks, each one SQL query whose rows are
//! the failing items. [`run`] runs a pack's checks over one snapshot of a data
//! directory or against a server and diffs them with the previous run of the
//! same pack ([`history`], which also stores runs as the `report_*` tables).
//! [`render`] writes a run as a table, JSON, CSV and JUnit XML, [`html`] as a
//! self-contained page, and [`schedule`] runs packs on their cron schedules
//! inside `periscope serve`.
//!
//! May import: `periscope-query` (every check runs through it) and
//! `periscope-store` (snapshots). Never a front or the binary.

pub mod deliver;
pub mod history;
pub mod html;
pub mod outcome;
pub mod pack;
pub mod render;
pub mod run;
pub mod schedule;
pub mod severity;

pub use deliver::{TREND_RUNS, post_webhook, trend, write_files};
pub use history::{REPORTS_DIR, install};
pub use severity::Severity;

//! Query packs: one TOML file of checks (`queries/<pack>.toml`), loaded and
//! validated. The format is documented in `queries/README.md`.
//!
//! Loading never stops at the first problem: a syntax error, an unknown field,
//! a duplicate id, SQL that does not plan against the catalog or a result that
//! lacks the columns every check must return each become a [`Problem`] naming
//! the file and line, and every check without one still runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::severity::Severity;

/// Columns every check's result must have. `scope_id`, `container` and any
/// other columns are optional; extra columns are kept as the item's details.
pub const REQUIRED_COLUMNS: [&str; 4] = ["host", "scope", "item", "reason"];

/// A problem found while loading a pack: the user's mistake, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file (e.g. unreadable).
    pub line: usize,
    /// The check it belongs to, when its id is known.
    pub check: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(c) = &self.check {
            write!(f, ": check {c}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// One check of a pack.
#[derive(Debug, Clone)]
pub struct Check {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub rationale: String,
    pub remediation: String,
    pub tags: Vec<String>,
    /// Cron expression overriding the pack's schedule for this check.
    pub schedule: Option<String>,
    pub sql: String,
    pub timeout: Option<Duration>,
    /// Line of the check's `[[check]]` entry.
    pub line: usize,
    /// Line of its `sql` (or `sql_file`) key, where SQL errors point.
    pub sql_line: usize,
    /// Why this check cannot run; it is then reported as an error, never silently dropped.
    pub problem: Option<Problem>,
}

/// A loaded pack: its checks and whatever was wrong with the file.
#[derive(Debug, Clone)]
pub struct Pack {
    /// The pack's name: `[pack] name`, else the file stem.
    pub name: String,
    pub title: String,
    pub description: String,
    pub path: PathBuf,
    /// Cron expression for the whole pack, run by `periscope serve --packs`.
    pub schedule: Option<String>,
    /// Time limit of each check unless the check sets its own.
    pub timeout: Option<Duration>,
    pub checks: Vec<Check>,
    /// Problems not tied to a check that could be identified (syntax errors, unknown top-level keys, ...).
    pub problems: Vec<Problem>,
    /// `[pack.params]`: values checks use as `{{name}}` in their SQL (overridable with `report run --param`).
    pub params: std::collections::BTreeMap<String, toml::Value>,
}

impl Pack {
    /// Every problem: the pack's own and its checks'.
    pub fn all_problems(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().chain(self.checks.iter().filter_map(|c| c.problem.as_ref()))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    name: Option<String>,
    title: Option<String>,
    description: Option<String>,
    schedule: Option<Spanned<String>>,
    timeout_secs: Option<u64>,
    #[serde(default)]
    params: std::collections::BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    id: String,
    title: String,
    severity: Severity,
    rationale: String,
    remediation: String,
    #[serde(default)]
    tags: Vec<String>,
    schedule: Option<Spanned<String>>,
    sql: Option<Spanned<String>>,
    sql_file: Option<Spanned<String>>,
    timeout_secs: Option<u64>,
}

/// Finds a pack: a path to a `.toml` file, or a name looked up as `<dir>/<name>.toml`.
pub fn locate(pack: &str, dir: &Path) -> PathBuf {
    let p = Path::new(pack);
    if p.extension().is_some_and(|e| e == "toml") || p.components().count() > 1 {
        p.to_path_buf()
    } else {
        dir.join(format!("{pack}.toml"))
    }
}

/// The starter packs of `queries/`, compiled into the binary: `periscope report
/// run cis-docker` works from any directory.
pub const BUILTIN: &[(&str, &str)] = &[
    ("cis-docker", include_str!("../../../queries/cis-docker.toml")),
    ("images", include_str!("../../../queries/images.toml")),
    ("packages", include_str!("../../../queries/packages.toml")),
    ("runtime", include_str!("../../../queries/runtime.toml")),
    ("vulns", include_str!("../../../queries/vulns.toml")),
];

/// How a compiled-in pack is named in messages and reports.
pub fn builtin_path(name: &str) -> PathBuf {
    PathBuf::from(format!("<built-in>/{name}.toml"))
}

/// Where a pack comes from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Builtin { name: &'static str, text: &'static str },
}

/// Finds a pack as [`locate`] does in `dir` when one is given (`--packs DIR`
/// adds packs and overrides compiled-in ones of the same name), else among
/// the compiled-in packs; a name found nowhere is the file it would have been.
pub fn find(pack: &str, dir: Option<&Path>) -> Source {
    let in_dir = locate(pack, dir.unwrap_or(Path::new(".")));
    let is_name =
        !(Path::new(pack).extension().is_some_and(|e| e == "toml") || Path::new(pack).components().count() > 1);
    if !is_name || (dir.is_some() && in_dir.is_file()) {
        return Source::File(in_dir);
    }
    match BUILTIN.iter().find(|(n, _)| *n == pack) {
        Some((name, text)) => Source::Builtin { name, text },
        None => Source::File(in_dir),
    }
}

/// [`load_with`] of a pack from wherever [`find`] found it.
pub async fn load_source(source: &Source, overrides: &std::collections::BTreeMap<String, toml::Value>) -> Pack {
    match source {
        Source::File(path) => load_with(path, overrides).await,
        Source::Builtin { name, text } => {
            let path = builtin_path(name);
            let mut pack = parse(&path, text);
            override_params(&mut pack, &path, overrides);
            substitute_params(&mut pack);
            validate_sql(&mut pack).await;
            pack
        }
    }
}

/// Every pack file in `dir` (`*.toml`), sorted.
pub fn list(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Reads and parses a pack file, then plans every check's SQL against the catalog.
pub async fn load(path: &Path) -> Pack {
    load_with(path, &Default::default()).await
}

/// [`load`] with some of `[pack.params]` overridden. Overriding a parameter
/// the pack does not declare is a problem (a typo must not be ignored).
pub async fn load_with(path: &Path, overrides: &std::collections::BTreeMap<String, toml::Value>) -> Pack {
    let mut pack = parse_file(path);
    override_params(&mut pack, path, overrides);
    substitute_params(&mut pack);
    validate_sql(&mut pack).await;
    pack
}

fn override_params(pack: &mut Pack, path: &Path, overrides: &std::collections::BTreeMap<String, toml::Value>) {
    for (k, v) in overrides {
        if pack.params.contains_key(k) {
            pack.params.insert(k.clone(), v.clone());
        } else {
            let known: Vec<&str> = pack.params.keys().map(String::as_str).collect();
            let message = format!("--param {k}: the pack has no such parameter (it has: {})", known.join(", "));
            pack.problems.push(Problem { file: path.to_path_buf(), line: 0, check: None, message });
        }
    }
}

/// Parses `NAME=VALUE` (VALUE as a TOML value: `30`, `"text"`, `["a", "b"]`; bare text is a string).
pub fn parse_param(arg: &str) -> Result<(String, toml::Value), String> {
    let (name, value) = arg.split_once('=').ok_or_else(|| format!("--param {arg:?}: expected NAME=VALUE"))?;
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}")).ok().and_then(|mut t| t.remove("v"));
    Ok((name.trim().to_string(), parsed.unwrap_or_else(|| toml::Value::String(value.to_string()))))
}

/// A parameter as SQL: a quoted string, a number, a boolean, or an array's elements comma-separated.
fn sql_literal(v: &toml::Value) -> Result<String, String> {
    Ok(match v {
        toml::Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        toml::Value::Array(a) => {
            let items = a
                .iter()
                .map(|x| match x {
                    toml::Value::Array(_) | toml::Value::Table(_) => Err("arrays of arrays or tables".to_string()),
                    x => sql_literal(x),
                })
                .collect::<Result<Vec<_>, _>>()?;
            items.join(", ")
        }
        other => return Err(format!("a {} cannot be used in SQL", other.type_str())),
    })
}

/// Replaces each `{{name}}` in the checks' SQL with the parameter's SQL literal.
fn substitute_params(pack: &mut Pack) {
    for c in pack.checks.iter_mut().filter(|c| c.problem.is_none()) {
        let mut out = String::with_capacity(c.sql.len());
        let mut rest = c.sql.as_str();
        while let Some(at) = rest.find("{{") {
            out.push_str(&rest[..at]);
            let Some(end) = rest[at..].find("}}") else {
                out.push_str(&rest[at..]);
                rest = "";
                break;
            };
            let name = rest[at + 2..at + end].trim();
            // The SQL of `sql = """` starts on the line after the key.
            let offset = c.sql.len() - rest.len() + at;
            let line = c.sql_line + 1 + c.sql[..offset].matches('\n').count();
            let fail = |message: String| Problem { file: pack.path.clone(), line, check: Some(c.id.clone()), message };
            match pack.params.get(name).map(sql_literal) {
                Some(Ok(lit)) => out.push_str(&lit),
                Some(Err(e)) => {
                    c.problem = Some(fail(format!("parameter {name}: {e}")));
                    break;
                }
                None => {
                    c.problem = Some(fail(format!("unknown parameter {{{{{name}}}}} (declare it in [pack.params])")));
                    break;
                }
            }
            rest = &rest[at + end + 2..];
        }
        out.push_str(rest);
        c.sql = out;
    }
}

/// Reads and parses a pack file without planning its SQL.
pub fn parse_file(path: &Path) -> Pack {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) => {
            let mut pack = empty(path);
            pack.problems.push(Problem {
                file: path.into(),
                line: 0,
                check: None,
                message: format!("cannot read: {e}"),
            });
            pack
        }
    }
}

fn empty(path: &Path) -> Pack {
    Pack {
        name: path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        title: String::new(),
        description: String::new(),
        path: path.to_path_buf(),
        schedule: None,
        timeout: None,
        checks: Vec::new(),
        problems: Vec::new(),
        params: Default::default(),
    }
}

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Parses pack `text` read from `path` (used for `sql_file` and in messages).
pub fn parse(path: &Path, text: &str) -> Pack {
    let mut pack = empty(path);
    let problem = |span: Option<std::ops::Range<usize>>, check: Option<&str>, message: String| Problem {
        file: path.to_path_buf(),
        line: span.map(|s| line_of(text, s.start)).unwrap_or(0),
        check: check.map(str::to_string),
        message,
    };
    // Recoverable: a syntax error in one place still leaves the rest of the file's checks.
    let (root, errors) = DeTable::parse_recoverable(text);
    for e in errors {
        pack.problems.push(problem(e.span(), None, format!("TOML syntax: {}", e.message().trim())));
    }
    let root = root.into_inner();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for (key, value) in root.iter() {
        match key.get_ref().as_ref() {
            "pack" => match RawMeta::deserialize(ValueDeserializer::from(value.clone())) {
                Ok(m) => {
                    if let Some(n) = m.name {
                        if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                            let msg = format!("pack name {n:?} must be letters, digits, '-' or '_'");
                            pack.problems.push(problem(Some(value.span()), None, msg));
                        } else {
                            pack.name = n;
                        }
                    }
                    pack.title = m.title.unwrap_or_default();
                    pack.description = m.description.unwrap_or_default();
                    pack.timeout = m.timeout_secs.map(Duration::from_secs);
                    pack.params = m.params;
                    if let Some(s) = m.schedule {
                        match parse_cron(s.get_ref()) {
                            Ok(_) => pack.schedule = Some(s.get_ref().clone()),
                            Err(e) => pack.problems.push(problem(Some(s.span()), None, e)),
                        }
                    }
                }
                Err(e) => pack.problems.push(problem(
                    e.span().or(Some(value.span())),
                    None,
                    format!("[pack]: {e_msg}", e_msg = e.message()),
                )),
            },
            "check" => {
                let DeValue::Array(checks) = value.get_ref() else {
                    let msg = "`check` must be an array of tables: write each check as [[check]]".to_string();
                    pack.problems.push(problem(Some(value.span()), None, msg));
                    continue;
                };
                for c in checks {
                    let line = line_of(text, c.span().start);
                    // What can be read of a check even when it does not deserialize, to report it by name.
                    let field = |name: &str| match c.get_ref() {
                        DeValue::Table(t) => t.get(name).and_then(|v| v.get_ref().as_str()).map(str::to_string),
                        _ => None,
                    };
                    let id = field("id");
                    let raw = match RawCheck::deserialize(ValueDeserializer::from(c.clone())) {
                        Ok(r) => r,
                        Err(e) => {
                            let p = problem(e.span().or(Some(c.span())), id.as_deref(), e.message().trim().to_string());
                            match id {
                                // Known id: the check stays in the pack as one that cannot run.
                                Some(id) => {
                                    let mut b = broken(id, line, p);
                                    b.title = field("title").unwrap_or_default();
                                    b.severity =
                                        field("severity").and_then(|s| Severity::parse(&s)).unwrap_or(b.severity);
                                    pack.checks.push(b);
                                }
                                None => pack.problems.push(p),
                            }
                            continue;
                        }
                    };
                    let mut check = Check {
                        id: raw.id.clone(),
                        title: raw.title,
                        severity: raw.severity,
                        rationale: raw.rationale,
                        remediation: raw.remediation,
                        tags: raw.tags,
                        schedule: raw.schedule.as_ref().map(|s| s.get_ref().clone()),
                        sql: String::new(),
                        timeout: raw.timeout_secs.map(Duration::from_secs),
                        line,
                        sql_line: line,
                        problem: None,
                    };
                    let fail = |span: std::ops::Range<usize>, m: String| problem(Some(span), Some(&raw.id), m);
                    if let Some(&first) = first_line.get(&raw.id) {
                        // The first stays runnable; the duplicate is reported where it is.
                        let p = fail(c.span(), format!("duplicate check id (first defined at line {first})"));
                        pack.problems.push(p);
                        continue;
                    }
                    first_line.insert(raw.id.clone(), line);
                    if raw.id.is_empty() || raw.id.chars().any(|c| c.is_whitespace()) {
                        check.problem = Some(fail(c.span(), "id must be non-empty and without spaces".into()));
                    }
                    if let Some(s) = &raw.schedule
                        && let Err(e) = parse_cron(s.get_ref())
                    {
                        check.problem = Some(fail(s.span(), e));
                    }
                    match (&raw.sql, &raw.sql_file) {
                        (Some(sql), None) => check.sql = sql.get_ref().clone(),
                        (None, Some(file)) => {
                            let p = path.parent().unwrap_or(Path::new(".")).join(file.get_ref());
                            match std::fs::read_to_string(&p) {
                                Ok(sql) => check.sql = sql,
                                Err(e) => {
                                    check.problem = Some(fail(file.span(), format!("sql_file {}: {e}", p.display())))
                                }
                            }
                        }
                        (Some(_), Some(f)) => {
                            check.problem = Some(fail(f.span(), "give either sql or sql_file, not both".into()))
                        }
                        (None, None) => check.problem = Some(fail(c.span(), "missing sql (or sql_file)".into())),
                    }
                    if let Some(sql) = raw.sql.as_ref().or(raw.sql_file.as_ref()) {
                        check.sql_line = line_of(text, sql.span().start);
                    }
                    pack.checks.push(check);
                }
            }
            other => {
                let msg = format!("unknown top-level key `{other}` (expected [pack] and [[check]] entries)");
                pack.problems.push(problem(Some(key.span()), None, msg));
            }
        }
    }
    pack
}

fn broken(id: String, line: usize, problem: Problem) -> Check {
    Check {
        id,
        title: String::new(),
        severity: Severity::Info,
        rationale: String::new(),
        remediation: String::new(),
        tags: Vec::new(),
        schedule: None,
        sql: String::new(),
        timeout: None,
        line,
        sql_line: line,
        problem: Some(problem),
    }
}

/// Parses a cron expression (5 fields, or 6 with seconds first).
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::new().parse(expr).map_err(|e| format!("invalid cron schedule {expr:?}: {e}"))
}

/// Plans each check's SQL against the catalog without running it: unknown
/// tables or columns, syntax errors and results lacking [`REQUIRED_COLUMNS`]
/// become the check's problem.
pub async fn validate_sql(pack: &mut Pack) {
    let ctx = match periscope_query::catalog::context(periscope_store::store::Snapshot::empty()).await {
        Ok(c) => Arc::new(c),
        Err(e) => {
            // The catalog itself failing is our bug, not the pack's.
            let message = format!("internal error: cannot build the SQL catalog to check queries against: {e}");
            pack.problems.push(Problem { file: pack.path.clone(), line: 0, check: None, message });
            return;
        }
    };
    for c in &mut pack.checks {
        if c.problem.is_some() {
            continue;
        }
        c.problem = plan(&ctx, &c.sql).await.err().map(|(sql_offset, message)| Problem {
            file: pack.path.clone(),
            line: c.sql_line + sql_offset,
            check: Some(c.id.clone()),
            message,
        });
    }
}

/// Plans `sql`; on error, the line offset into the SQL it points at (when the
/// parser says) and the message.
async fn plan(ctx: &datafusion::prelude::SessionContext, sql: &str) -> Result<(), (usize, String)> {
    let opts = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx.sql_with_options(sql, opts).await.map_err(|e| {
        let m = e.strip_backtrace();
        (sql_error_line(sql, &m), format!("SQL does not plan: {m}"))
    })?;
    let fields: Vec<&str> = df.schema().fields().iter().map(|f| f.name().as_str()).collect();
    let missing: Vec<&str> = REQUIRED_COLUMNS.iter().copied().filter(|c| !fields.contains(c)).collect();
    if !missing.is_empty() {
        return Err((
            0,
            format!(
                "the query must return columns {} (missing {}; it returns {})",
                REQUIRED_COLUMNS.join(", "),
                missing.join(", "),
                fields.join(", ")
            ),
        ));
    }
    Ok(())
}

/// sqlparser errors say "at Line: N, Column: M" counting from the SQL's first
/// line; a pack's SQL usually starts on the line after `sql = """`.
fn sql_error_line(sql: &str, message: &str) -> usize {
    let Some(rest) = message.split("Line: ").nth(1) else { return 0 };
    let n: usize = rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(1);
    // TOML drops a newline right after the opening """, so the SQL's line 1 is the next line.
    n.saturating_sub(1) + usize::from(!sql.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"[pack]
name = "demo"
title = "Demo"
schedule = "0 6 * * *"

[[check]]
id = "privileged"
title = "Privileged containers"
severity = "high"
rationale = "r"
remediation = "m"
tags = ["cis:5.4"]
sql = """
SELECT host, 'container' AS scope, name AS item, 'privileged' AS reason
FROM containers WHERE privileged
"""
"#;

    #[tokio::test]
    async fn a_good_pack_loads_with_no_problems() {
        let mut p = parse(Path::new("demo.toml"), GOOD);
        validate_sql(&mut p).await;
        assert_eq!(p.all_problems().collect::<Vec<_>>(), Vec::<&Problem>::new());
        assert_eq!((p.name.as_str(), p.checks.len(), p.checks[0].line), ("demo", 1, 6));
        assert_eq!(p.checks[0].severity, Severity::High);
        assert_eq!(p.schedule.as_deref(), Some("0 6 * * *"));
    }

    /// Each bad pack: (text, expected line, check id, part of the message).
    #[tokio::test]
    async fn problems_name_the_line_and_the_check_and_spare_the_good_checks() {
        let bad: &[(&str, usize, Option<&str>, &str)] = &[
            ("[[check]]\nid = \"x\"\nsevrity = \"high\"\n", 3, Some("x"), "unknown field `sevrity`"),
            ("[[check]]\nid = \"x\"\ntitle = \"t\"\nseverity = \"urgent\"\n", 4, Some("x"), "unknown variant `urgent`"),
            (
                "[[check]]\nid = \"x\"\ntitle = \"t\"\nseverity = \"low\"\nrationale = \"r\"\nremediation = \"m\"\nsql = \"\"\"\nSELECT host, scope, name AS item, 'r' AS reason\nFROM containerz\n\"\"\"\n",
                7,
                Some("x"),
                "containerz",
            ),
            (
                "[[check]]\nid = \"x\"\ntitle = \"t\"\nseverity = \"low\"\nrationale = \"r\"\nremediation = \"m\"\nsql = \"\"\"\nSELECT host, scope, nme AS item, 'r' AS reason\nFROM containers\n\"\"\"\n",
                7,
                Some("x"),
                "nme",
            ),
            (
                "[[check]]\nid = \"x\"\ntitle = \"t\"\nseverity = \"low\"\nrationale = \"r\"\nremediation = \"m\"\nsql = \"\"\"\nSELECT host,\n  scope\n  FROMM containers\n\"\"\"\n",
                10,
                Some("x"),
                "SQL does not plan",
            ),
            (
                "[[check]]\nid = \"x\"\ntitle = \"t\"\nseverity = \"low\"\nrationale = \"r\"\nremediation = \"m\"\nsql = \"SELECT host FROM containers\"\n",
                7,
                Some("x"),
                "missing scope, item, reason",
            ),
            (
                "[[check]]\nid = \"x\"\ntitle = \"t\"\nseverity = \"low\"\nrationale = \"r\"\nremediation = \"m\"\nschedule = \"every day\"\nsql = \"SELECT 1\"\n",
                7,
                Some("x"),
                "invalid cron schedule",
            ),
            (
                "[[check]]\nid = \"x\"\ntitle = \"t\"\nseverity = \"low\"\nrationale = \"r\"\nremediation = \"m\"\n",
                1,
                Some("x"),
                "missing sql",
            ),
            (
                "[[check]]\nid = \"privileged\"\ntitle = \"t\"\nseverity = \"low\"\nrationale = \"r\"\nremediation = \"m\"\nsql = \"SELECT 1\"\n",
                1,
                Some("privileged"),
                "duplicate check id (first defined at line 6)",
            ),
            ("[[check]\nid = \"x\"\n", 1, None, "TOML syntax"),
            ("[extra]\na = 1\n", 1, None, "unknown top-level key `extra`"),
            (
                "[[check]]\nid = \"x\"\ntitle = \"t\"\nseverity = \"low\"\nrationale = \"r\"\nremediation = \"m\"\nsql = \"DROP TABLE containers\"\n",
                7,
                Some("x"),
                "SQL does not plan",
            ),
        ];
        for (extra, line, check, msg) in bad {
            let text = format!("{GOOD}\n{extra}");
            let offset = GOOD.lines().count() + 1;
            let mut p = parse(Path::new("queries/demo.toml"), &text);
            validate_sql(&mut p).await;
            let problems: Vec<_> = p.all_problems().collect();
            // A syntax error may leave stray keys behind it; the first problem is the one that matters.
            assert!(problems.len() == 1 || *msg == "TOML syntax", "{extra}: {problems:?}");
            let got = problems[0];
            assert!(got.message.contains(msg), "{extra}: {got}");
            assert_eq!((got.line, got.check.as_deref()), (offset + line, *check), "{extra}: {got}");
            assert!(got.to_string().starts_with(&format!("queries/demo.toml:{}", offset + line)), "{got}");
            // The good check is still there and runnable.
            let good = p.checks.iter().find(|c| c.id == "privileged" && c.problem.is_none());
            assert!(good.is_some(), "{extra}: the good check was lost");
        }
    }

    #[test]
    fn an_unknown_pack_field_names_its_line() {
        let p = parse(Path::new("demo.toml"), &GOOD.replace("title = \"Demo\"", "nme = \"x\""));
        let problems: Vec<_> = p.all_problems().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("demo.toml:3: [pack]: unknown field `nme`"), "{problems:?}");
        assert_eq!(p.checks.len(), 1);
    }

    #[tokio::test]
    async fn params_become_sql_literals_and_unknown_ones_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        let text = r#"[pack]
params = { days = 30, names = ["a", "o'b"], on = true }

[[check]]
id = "x"
title = "t"
severity = "low"
rationale = "r"
remediation = "m"
sql = """
SELECT host, scope, name AS item, 'r' AS reason FROM containers
WHERE {{ on }} AND restart_count > {{days}} AND name IN ({{names}})
"""

[[check]]
id = "y"
title = "t"
severity = "low"
rationale = "r"
remediation = "m"
sql = """
SELECT host, scope, name AS item, 'r' AS reason FROM containers
WHERE restart_count > {{dayz}}
"""
"#;
        let path = dir.path().join("p.toml");
        std::fs::write(&path, text).unwrap();
        let p = load(&path).await;
        let x = &p.checks[0];
        assert!(x.problem.is_none(), "{:?}", x.problem);
        assert!(x.sql.contains("WHERE TRUE AND restart_count > 30 AND name IN ('a', 'o''b')"), "{}", x.sql);
        let y = p.checks[1].problem.as_ref().unwrap();
        assert_eq!(y.line, 23, "{y}");
        assert!(y.message.contains("unknown parameter {{dayz}}"), "{y}");

        let overrides = [parse_param("days=7").unwrap(), parse_param("names=[\"c\"]").unwrap()].into();
        let p = load_with(&path, &overrides).await;
        assert!(p.checks[0].sql.contains("restart_count > 7 AND name IN ('c')"), "{}", p.checks[0].sql);
        let p = load_with(&path, &[parse_param("nmes=x").unwrap()].into()).await;
        assert!(p.problems.iter().any(|e| e.message.contains("--param nmes: the pack has no such parameter")));
        assert_eq!(parse_param("s=plain text").unwrap().1, toml::Value::String("plain text".into()));
    }

    #[test]
    fn sql_file_is_read_beside_the_pack() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("q.sql"), "SELECT 1").unwrap();
        let text = "[[check]]\nid = \"x\"\ntitle = \"t\"\nseverity = \"low\"\nrationale = \"r\"\nremediation = \"m\"\nsql_file = \"q.sql\"\n";
        let p = parse(&dir.path().join("p.toml"), text);
        assert_eq!(p.checks[0].sql, "SELECT 1");
        let p = parse(&dir.path().join("p.toml"), &text.replace("q.sql", "nope.sql"));
        let problem = p.checks[0].problem.as_ref().unwrap();
        assert!(problem.message.contains("nope.sql") && problem.line == 7, "{problem}");
    }
}

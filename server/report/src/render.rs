//! A run as people and pipelines read it: an aligned table of failures, JSON
//! (the [`Run`] itself), CSV (one row per item, or per check without items)
//! and JUnit XML (each check a testcase, failing ones with a `<failure>`).

use std::io::Write;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use super::run::{Run, Status};

/// Escapes text for XML and HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn table_batch(names: &[&str], rows: Vec<Vec<String>>) -> RecordBatch {
    let schema = Arc::new(Schema::new(names.iter().map(|n| Field::new(*n, DataType::Utf8, false)).collect::<Vec<_>>()));
    let cols: Vec<ArrayRef> = (0..names.len())
        .map(|i| Arc::new(StringArray::from(rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>())) as ArrayRef)
        .collect();
    RecordBatch::try_new(schema, cols).expect("columns of one length")
}

/// Failing items (and checks in error) as an aligned table, then a summary line.
pub fn table(run: &Run, out: &mut impl Write) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut checks: Vec<_> = run.checks.iter().collect();
    checks.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(&b.id)));
    for c in &checks {
        for i in &c.failing {
            let what = match &i.container {
                Some(name) if *name != i.item => format!("{} ({name})", i.item),
                _ => i.item.clone(),
            };
            rows.push(vec![
                c.severity.to_string(),
                c.id.clone(),
                i.host.clone(),
                what,
                i.reason.clone(),
                i.change.as_str().into(),
            ]);
        }
    }
    let names = ["severity", "check", "host", "item", "reason", "change"];
    if rows.is_empty() {
        writeln!(out, "no failing items")?;
    } else {
        let b = table_batch(&names, rows);
        writeln!(out, "{}", arrow_cast::pretty::pretty_format_batches(&[b])?)?;
    }
    for c in checks.iter().filter(|c| c.status == Status::Error) {
        writeln!(out, "error: {} ({}): {}", c.id, c.severity, c.error.as_deref().unwrap_or(""))?;
    }
    for p in &run.problems {
        writeln!(out, "error: {p}")?;
    }
    let s = &run.summary;
    writeln!(
        out,
        "{}: {} checks, {} passed, {} failed, {} errors; {} failing items ({} new, {} resolved since {})",
        run.pack,
        s.checks,
        s.passed,
        s.failed,
        s.errors,
        s.failing_items,
        s.new_items,
        s.resolved_items,
        run.previous_run_id.as_deref().unwrap_or("no previous run")
    )?;
    Ok(())
}

pub fn json(run: &Run, out: &mut impl Write) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, run)?;
    writeln!(out)?;
    Ok(())
}

/// One row per failing or resolved item; a check with neither gets one row with empty item fields.
pub fn csv(run: &Run, out: &mut impl Write) -> anyhow::Result<()> {
    let names = [
        "run_id",
        "pack",
        "check_id",
        "title",
        "severity",
        "status",
        "error",
        "host",
        "scope",
        "scope_id",
        "container",
        "item",
        "reason",
        "change",
    ];
    let mut rows = Vec::new();
    for c in &run.checks {
        let head = || {
            vec![
                run.run_id.clone(),
                run.pack.clone(),
                c.id.clone(),
                c.title.clone(),
                c.severity.to_string(),
                c.status.as_str().to_string(),
                c.error.clone().unwrap_or_default(),
            ]
        };
        let items: Vec<_> = c.failing.iter().chain(&c.resolved).collect();
        if items.is_empty() {
            let mut r = head();
            r.extend(std::iter::repeat_n(String::new(), 7));
            rows.push(r);
        }
        for i in items {
            let mut r = head();
            r.extend([
                i.host.clone(),
                i.scope.clone(),
                i.scope_id.clone().unwrap_or_default(),
                i.container.clone().unwrap_or_default(),
                i.item.clone(),
                i.reason.clone(),
                i.change.as_str().to_string(),
            ]);
            rows.push(r);
        }
    }
    let b = table_batch(&names, rows);
    let mut w = arrow_csv::WriterBuilder::new().with_header(true).build(&mut *out);
    w.write(&b)?;
    Ok(())
}

/// JUnit XML: the pack is a testsuite, each check a testcase; a failing check
/// has a `<failure>` listing its items, one that could not run an `<error>`.
pub fn junit(run: &Run, out: &mut impl Write) -> anyhow::Result<()> {
    let s = &run.summary;
    let errors = s.errors + run.problems.len();
    let secs = |ms: u64| format!("{:.3}", ms as f64 / 1000.0);
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="periscope" tests="{}" failures="{}" errors="{errors}" time="{}">"#,
        s.checks + run.problems.len(),
        s.failed,
        secs(run.duration_ms)
    )?;
    writeln!(
        out,
        r#"  <testsuite name="{}" tests="{}" failures="{}" errors="{errors}" skipped="0" time="{}" timestamp="{}">"#,
        escape(&run.pack),
        s.checks + run.problems.len(),
        s.failed,
        secs(run.duration_ms),
        escape(&run.started)
    )?;
    for c in &run.checks {
        writeln!(
            out,
            r#"    <testcase classname="{}.{}" name="{}: {}" time="{}">"#,
            escape(&run.pack),
            c.severity,
            escape(&c.id),
            escape(&c.title),
            secs(c.duration_ms)
        )?;
        match c.status {
            Status::Pass => {}
            Status::Fail => {
                let n = c.failing.len();
                writeln!(
                    out,
                    r#"      <failure type="{}" message="{n} failing item{}">"#,
                    c.severity,
                    if n == 1 { "" } else { "s" }
                )?;
                for i in &c.failing {
                    let line = format!("{} {} {}: {} [{}]", i.host, i.scope, i.item, i.reason, i.change.as_str());
                    writeln!(out, "{}", escape(&line))?;
                }
                writeln!(out, "{}", escape(&format!("Remediation: {}", c.remediation)))?;
                writeln!(out, "      </failure>")?;
            }
            Status::Error => {
                let e = c.error.as_deref().unwrap_or("error");
                writeln!(out, r#"      <error type="error" message="{}">{}</error>"#, escape(e), escape(e))?;
            }
        }
        writeln!(out, "    </testcase>")?;
    }
    for (n, p) in run.problems.iter().enumerate() {
        writeln!(out, r#"    <testcase classname="{}.pack" name="pack problem {}">"#, escape(&run.pack), n + 1)?;
        writeln!(out, r#"      <error type="pack" message="{}">{}</error>"#, escape(p), escape(p))?;
        writeln!(out, "    </testcase>")?;
    }
    writeln!(out, "  </testsuite>\n</testsuites>")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_quotes_and_control_characters() {
        let cases = [
            ("plain", "plain"),
            ("<b>&\"'", "&lt;b&gt;&amp;&quot;&#39;"),
            ("tab\tnew\nline", "tab\tnew\nline"),
            ("bell\u{7}", "bell\u{fffd}"),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), want, "{input:?}");
        }
    }

    #[test]
    fn junit_and_csv_carry_hostile_item_text_safely() {
        let json = r#"{"run_id":"r","pack":"p","pack_title":"p","pack_file":"p.toml","source":"s","trigger":"cli",
            "started":"2026-01-01T00:00:00Z","started_us":0,"duration_ms":5,"previous_run_id":null,
            "summary":{"checks":2,"passed":0,"failed":1,"errors":1,"failing_items":1,"new_items":1,"resolved_items":0,
                       "by_severity":[]},
            "problems":["p.toml:9: TOML syntax: <oops>"],
            "checks":[{"id":"c1","title":"t","severity":"high","tags":[],"rationale":"","remediation":"fix \"it\"",
                       "status":"fail","error":null,"duration_ms":1,"resolved":[],
                       "failing":[{"host":"h","scope":"container","scope_id":null,"container":"x",
                                   "item":"</failure><x>","reason":"a,b \"c\"","change":"new"}]},
                      {"id":"c2","title":"t","severity":"low","tags":[],"rationale":"","remediation":"",
                       "status":"error","error":"boom & <bust>","duration_ms":1,"failing":[],"resolved":[]}]}"#;
        let run: Run = serde_json::from_str(json).unwrap();
        let mut x = Vec::new();
        junit(&run, &mut x).unwrap();
        let x = String::from_utf8(x).unwrap();
        assert!(!x.contains("</failure><x>") && x.contains("&lt;/failure&gt;&lt;x&gt;"), "{x}");
        assert_eq!(x.matches("<testcase ").count(), 3, "two checks and one pack problem");
        assert_eq!((x.matches("<failure ").count(), x.matches("<error ").count()), (1, 2), "{x}");
        assert!(x.contains(r#"message="boom &amp; &lt;bust&gt;""#), "{x}");
        let mut c = Vec::new();
        csv(&run, &mut c).unwrap();
        let c = String::from_utf8(c).unwrap();
        assert_eq!(c.lines().count(), 3, "{c}");
        assert!(c.contains(r#""a,b ""c""""#), "{c}");
    }
}

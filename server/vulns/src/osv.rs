//! OSV records (<https://ossf.github.io/osv-schema/>) as Periscope reads them:
//! the fields matching and the stored tables need, every other field ignored,
//! `null` read as absent. A record that is not an object with an `id` and a
//! `modified` time is an error naming what is missing.

use serde::{Deserialize, Deserializer};

/// One OSV record.
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    pub id: String,
    pub modified: String,
    #[serde(default)]
    pub published: Option<String>,
    #[serde(default)]
    pub withdrawn: Option<String>,
    #[serde(default, deserialize_with = "or_empty")]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default, deserialize_with = "or_empty")]
    pub severity: Vec<Severity>,
    #[serde(default, deserialize_with = "or_empty")]
    pub affected: Vec<Affected>,
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

/// A `severity` entry: `type` is CVSS_V2, CVSS_V3, CVSS_V4 or a database's own
/// (Ubuntu's `Ubuntu`, with `score` a word such as `medium`).
#[derive(Debug, Clone, Deserialize)]
pub struct Severity {
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Affected {
    #[serde(default)]
    pub package: Option<Package>,
    #[serde(default, deserialize_with = "or_empty")]
    pub ranges: Vec<Range>,
    #[serde(default, deserialize_with = "or_empty")]
    pub versions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Package {
    pub ecosystem: String,
    pub name: String,
    #[serde(default)]
    pub purl: Option<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct Range {
    /// SEMVER, ECOSYSTEM or GIT.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default, deserialize_with = "or_empty")]
    pub events: Vec<Event>,
}

/// One event of a range: exactly one of its fields is set in a valid record.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct Event {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

fn or_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Parses one record, or a JSON array of them, from `bytes`.
pub fn parse(bytes: &[u8]) -> Result<Vec<Record>, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let one = |v: serde_json::Value| serde_json::from_value::<Record>(v).map_err(|e| format!("not an OSV record: {e}"));
    match value {
        serde_json::Value::Array(items) => items.into_iter().map(one).collect(),
        v => Ok(vec![one(v)?]),
    }
}

/// An RFC 3339 time (what OSV's timestamps are) as microseconds since the epoch.
pub fn micros(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text.trim()).ok().map(|t| t.timestamp_micros())
}

/// The record's severity, as the stored table holds it: the CVSS vector
/// Periscope scores (the newest CVSS version the record gives), its base score
/// and qualitative rating, and the database's own word where it gives one
/// (a `severity` entry of another type, or `database_specific.severity`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rated {
    pub vector: Option<String>,
    pub score: Option<f64>,
    /// CRITICAL, HIGH, MEDIUM, LOW or NONE: from the score, else the database's word.
    pub rating: Option<String>,
    pub database: Option<String>,
}

impl Record {
    pub fn rated(&self) -> Rated {
        let rank = |k: &str| match k {
            "CVSS_V4" => 3,
            "CVSS_V3" => 2,
            "CVSS_V2" => 1,
            _ => 0,
        };
        let mut out = Rated::default();
        let best = self.severity.iter().filter(|s| rank(&s.kind) > 0).max_by_key(|s| rank(&s.kind));
        if let Some(s) = best {
            out.vector = Some(s.score.clone());
            out.score = base_score(&s.score);
        }
        out.database = self
            .severity
            .iter()
            .find(|s| rank(&s.kind) == 0)
            .map(|s| s.score.clone())
            .or_else(|| {
                let d = self.database_specific.as_ref()?.get("severity")?;
                d.as_str().map(str::to_string)
            })
            .filter(|s| !s.trim().is_empty());
        out.rating = out.score.map(|s| rating(s).to_string()).or_else(|| {
            let word = out.database.as_deref()?.trim().to_ascii_uppercase();
            // GitHub's MODERATE is CVSS's MEDIUM; Ubuntu's "negligible" and "untriaged" have no CVSS word.
            let word = if word == "MODERATE" { "MEDIUM".to_string() } else { word };
            ["CRITICAL", "HIGH", "MEDIUM", "LOW", "NONE"].contains(&word.as_str()).then_some(word)
        });
        out
    }
}

/// The base score of a CVSS v2, v3.0, v3.1 or v4.0 vector; None when the vector does not parse.
pub fn base_score(vector: &str) -> Option<f64> {
    let v = vector.trim();
    if v.starts_with("CVSS:") {
        v.parse::<cvss::Cvss>().ok().map(|c| c.score())
    } else {
        // CVSS v2 vectors carry no prefix.
        v.parse::<cvss::v2::Vector>().ok().map(|c| c.score().value())
    }
}

/// CVSS's qualitative rating of a base score.
pub fn rating(score: f64) -> &'static str {
    match score {
        s if s >= 9.0 => "CRITICAL",
        s if s >= 7.0 => "HIGH",
        s if s >= 4.0 => "MEDIUM",
        s if s > 0.0 => "LOW",
        _ => "NONE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_read_as_absent_and_a_record_needs_its_id_and_modified_time() {
        let r = parse(br#"{"id":"X-1","modified":"2024-01-02T03:04:05Z","aliases":null,"affected":null}"#).unwrap();
        assert_eq!(r[0].id, "X-1");
        assert!(r[0].aliases.is_empty() && r[0].affected.is_empty());
        assert_eq!(micros(&r[0].modified), Some(1_704_164_645_000_000));
        let e = parse(br#"{"modified":"2024-01-02T03:04:05Z"}"#).unwrap_err();
        assert!(e.contains("missing field `id`"), "{e}");
        assert!(parse(b"{").unwrap_err().starts_with("not JSON"));
        assert_eq!(parse(br#"[{"id":"a","modified":"x"},{"id":"b","modified":"y"}]"#).unwrap().len(), 2);
    }

    #[test]
    fn scores_come_from_the_vector_and_ratings_from_the_score_or_the_database() {
        // FIRST's calculator: 9.8 for the first, 6.1 for the second; v2 AV:N/AC:L/Au:N/C:P/I:P/A:P is 7.5.
        assert_eq!(base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), Some(9.8));
        assert_eq!(base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"), Some(6.1));
        assert_eq!(base_score("AV:N/AC:L/Au:N/C:P/I:P/A:P"), Some(7.5));
        assert_eq!(base_score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"), Some(9.3));
        assert_eq!(base_score("CVSS:3.1/nonsense"), None);
        let r = &parse(
            br#"{"id":"a","modified":"x","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"}],
                "database_specific":{"severity":"HIGH"}}"#,
        )
        .unwrap()[0];
        let rated = r.rated();
        assert_eq!(
            (rated.score, rated.rating.as_deref(), rated.database.as_deref()),
            (Some(6.1), Some("MEDIUM"), Some("HIGH"))
        );
        let r = &parse(br#"{"id":"a","modified":"x","severity":[{"type":"Ubuntu","score":"high"}]}"#).unwrap()[0];
        assert_eq!(r.rated().rating.as_deref(), Some("HIGH"));
        let r = &parse(br#"{"id":"a","modified":"x","database_specific":{"severity":"MODERATE"}}"#).unwrap()[0];
        assert_eq!(r.rated().rating.as_deref(), Some("MEDIUM"));
    }
}

//! `periscope sbom` and the server's `Query.Sbom` call: the inventory of one
//! container, image or host as a CycloneDX 1.6 or SPDX 2.3 JSON document,
//! from a data directory or a server's store. [`inventory`] reads the rows
//! through SQL (so a server's read scopes and query limits hold), [`purl`] and [`license`] make what the formats identify
//! packages and licenses by, and [`cyclonedx`] and [`spdx`] write the
//! documents. Output is deterministic: the same rows and timestamp give the
//! same bytes (`SOURCE_DATE_EPOCH` sets the timestamp).

pub mod cyclonedx;
pub mod inventory;
pub mod license;
pub mod purl;
pub mod shared;
pub mod spdx;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// CycloneDX 1.6 JSON.
    CyclonedxJson,
    /// SPDX 2.3 JSON.
    SpdxJson,
}

impl Format {
    /// The name `--format` and the gRPC call take.
    pub fn name(self) -> &'static str {
        match self {
            Format::CyclonedxJson => "cyclonedx-json",
            Format::SpdxJson => "spdx-json",
        }
    }

    /// A format by [`Format::name`]; empty means CycloneDX.
    pub fn parse(name: &str) -> Result<Format, String> {
        match name {
            "" | "cyclonedx-json" => Ok(Format::CyclonedxJson),
            "spdx-json" => Ok(Format::SpdxJson),
            other => Err(format!("unknown SBOM format {other:?}: cyclonedx-json or spdx-json")),
        }
    }
}

/// The document as pretty-printed JSON with a final newline.
pub fn render(format: Format, inv: &inventory::Inventory, created: &str) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let doc = match format {
        Format::CyclonedxJson => cyclonedx::document(inv, created, version),
        Format::SpdxJson => spdx::document(inv, created, version),
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("a JSON value serializes");
    s.push('\n');
    s
}

/// The documents' timestamp: `SOURCE_DATE_EPOCH` (seconds since 1970, the
/// reproducible-builds convention) when set, else now; UTC, whole seconds.
pub fn timestamp() -> Result<String, String> {
    timestamp_at(source_date_epoch()?)
}

/// `SOURCE_DATE_EPOCH`'s seconds, when it is set.
pub fn source_date_epoch() -> Result<Option<i64>, String> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s.trim().parse().map(Some).map_err(|_| format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds")),
        Err(_) => Ok(None),
    }
}

/// The timestamp `secs` seconds after 1970 (None: now), as the documents write it.
pub fn timestamp_at(secs: Option<i64>) -> Result<String, String> {
    let at = match secs {
        Some(secs) => chrono::DateTime::from_timestamp(secs, 0)
            .filter(|t| (0..=9999).contains(&chrono::Datelike::year(t)))
            .ok_or_else(|| format!("{secs} seconds since 1970 is out of range for a document's timestamp"))?,
        None => chrono::Utc::now(),
    };
    Ok(at.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_go_by_the_names_the_command_line_and_the_call_take() {
        for f in [Format::CyclonedxJson, Format::SpdxJson] {
            assert_eq!(Format::parse(f.name()), Ok(f));
            let by_clap = <Format as clap::ValueEnum>::from_str(f.name(), false);
            assert_eq!(by_clap, Ok(f), "clap spells {} the same", f.name());
        }
        assert_eq!(Format::parse(""), Ok(Format::CyclonedxJson));
        assert!(Format::parse("spdx-tag-value").unwrap_err().contains("cyclonedx-json or spdx-json"));
    }

    #[test]
    fn a_timestamp_is_whole_utc_seconds_within_four_digit_years() {
        assert_eq!(timestamp_at(Some(0)).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp_at(Some(1_700_000_000)).unwrap(), "2023-11-14T22:13:20Z");
        // A caller's number, not ours: out of range is an error, never a panic or a five-digit year.
        for bad in [i64::MAX, i64::MIN, 253_402_300_800] {
            assert!(timestamp_at(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(timestamp_at(None).unwrap().len(), "1970-01-01T00:00:00Z".len());
    }
}

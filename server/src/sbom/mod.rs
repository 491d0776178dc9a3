//! `periscope sbom`: the inventory of one container, image or host as a
//! CycloneDX 1.6 or SPDX 2.3 JSON document, from a data directory or a
//! server. [`inventory`] reads the rows through SQL (so a server's read
//! scopes hold), [`purl`] and [`license`] make what the formats identify
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
    let at = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => {
            let secs: i64 =
                s.trim().parse().map_err(|_| format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds"))?;
            chrono::DateTime::from_timestamp(secs, 0).ok_or_else(|| format!("SOURCE_DATE_EPOCH={s} is out of range"))?
        }
        Err(_) => chrono::Utc::now(),
    };
    Ok(at.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

//! `periscope serve --vulns-source`: the advisories re-imported on an interval
//! from configured files, directories or URLs (an air-gapped site points it
//! at the directory it copies osv.dev's archives into). Each round imports
//! every source in one import, so only records new or modified since the
//! last round are stored; a source that cannot be read is logged and the
//! others still land. A round in progress ends between files (or an
//! archive's members) when the server stops; what it read is kept.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::import::{Summary, import_until};

/// The largest download read from a URL source (osv.dev's biggest per-ecosystem archive is a few hundred MB).
pub const MAX_DOWNLOAD_BYTES: u64 = 4 << 30;

/// Imports `sources` into `data` now and then every `every`, until `stop` turns true.
pub async fn run(data: PathBuf, sources: Vec<String>, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let (d, s, rx) = (data.clone(), sources.clone(), stop.clone());
        match tokio::task::spawn_blocking(move || once(&d, &s, &|| *rx.borrow())).await {
            Ok(Ok(summary)) => {
                tracing::info!(
                    records = summary.records,
                    new = summary.new,
                    updated = summary.updated,
                    unchanged = summary.unchanged,
                    errors = summary.errors.len(),
                    "advisories imported"
                );
                for e in summary.errors.iter().take(20) {
                    tracing::warn!("advisory import: {e}");
                }
            }
            Ok(Err(e)) => tracing::error!("advisory import failed: {e}"),
            Err(e) => tracing::error!("advisory import failed: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One round: URLs downloaded to temporary files first, then one import of
/// everything, ended early (what was read is stored) once `stop` says so.
pub fn once(data: &Path, sources: &[String], stop: &dyn Fn() -> bool) -> Result<Summary, String> {
    let scratch = tempfile::Builder::new()
        .prefix(".vulns-download-")
        .tempdir_in(data)
        .map_err(|e| format!("{}: {e}", data.display()))?;
    let mut paths = Vec::new();
    let mut failed = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        if stop() {
            break;
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            let ext = if s.ends_with(".zip") { "zip" } else { "json" };
            let to = scratch.path().join(format!("source-{i}.{ext}"));
            match download(s, &to) {
                Ok(()) => paths.push(to),
                Err(e) => failed.push(format!("{s}: {e}")),
            }
        } else {
            paths.push(PathBuf::from(s));
        }
    }
    let mut summary = import_until(data, &paths, stop)?;
    summary.errors.extend(failed);
    Ok(summary)
}

fn download(url: &str, to: &Path) -> Result<(), String> {
    let config = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(600))).build();
    let response = ureq::Agent::new_with_config(config).get(url).call().map_err(|e| e.to_string())?;
    let mut body = response.into_body().into_reader().take(MAX_DOWNLOAD_BYTES + 1);
    let mut file = std::fs::File::create(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let n = std::io::copy(&mut body, &mut file).map_err(|e| e.to_string())?;
    if n > MAX_DOWNLOAD_BYTES {
        return Err(format!("larger than {MAX_DOWNLOAD_BYTES} bytes, not imported"));
    }
    Ok(())
}

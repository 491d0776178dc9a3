//! `packages`: installed OS packages. Today: dpkg's status database.

use periscope_proto::tables::PACKAGES;

use super::dpkg::parse_status;
use super::{Scope, Sink};

pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";

pub fn collect(scope: &Scope, out: &mut Sink) {
    let bytes = match scope.root.read(DPKG_STATUS) {
        Ok(b) => b,
        Err(e) => {
            out.error("packages", Some(DPKG_STATUS), &format!("dpkg database unreadable: {e}"));
            return;
        }
    };
    let (pkgs, errors) = parse_status(&String::from_utf8_lossy(&bytes));
    for e in errors {
        out.error("packages", Some(DPKG_STATUS), &format!("line {}: {}", e.line, e.message));
    }
    for p in pkgs.iter().filter(|p| p.is_installed()) {
        out.row(
            &PACKAGES,
            &[
                ("manager", "dpkg".into()),
                ("name", (&p.name).into()),
                ("version", p.version.as_ref().into()),
                ("architecture", p.architecture.as_ref().into()),
                ("source", p.source.as_ref().into()),
                ("source_version", p.source_version.as_ref().into()),
                ("status", p.status.as_ref().into()),
                ("maintainer", p.maintainer.as_ref().into()),
                ("installed_size", p.installed_size.into()),
            ],
        );
    }
}

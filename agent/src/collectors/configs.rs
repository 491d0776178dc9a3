//! `configs`: contents of a configured list of configuration files, size-capped.

use periscope_proto::tables::CONFIGS;

use super::{Scope, Sink};

pub fn collect(scope: &Scope, out: &mut Sink) {
    let cap = scope.config.config_max_bytes;
    for path in &scope.config.config_files {
        match scope.root.read_prefix(path, cap) {
            Ok((bytes, truncated)) => {
                let content = String::from_utf8_lossy(&bytes);
                let size = match scope.root.open_file(path) {
                    Ok((_, size)) => Some(size as i64),
                    Err(_) => None,
                };
                out.row(
                    &CONFIGS,
                    &[
                        ("path", path.as_str().into()),
                        ("size", size.into()),
                        ("content", content.as_ref().into()),
                        ("truncated", truncated.into()),
                    ],
                );
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => out.read_error("configs", path, &e),
        }
    }
}

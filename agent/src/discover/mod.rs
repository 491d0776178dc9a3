//! Discovering what a host runs, from its container runtimes' APIs. Rows land
//! in the host scope; the container and image filesystems are separate scopes.

pub mod cgroups;
pub mod containerd;
pub mod docker;
pub mod host;
pub mod netmount;
pub mod processes;
pub mod sockets;

/// Reads at most `cap` bytes of a file of the host's own procfs or cgroupfs
/// (trusted, unlike container filesystems, but still bounded). None when the
/// file is gone, as files of exiting processes are.
pub(crate) fn read_host(path: impl AsRef<std::path::Path>, cap: u64) -> Option<String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path).ok()?.take(cap).read_to_string(&mut s).ok()?;
    Some(s)
}

/// Names whose values are secrets by their look: never stored, only hashed
/// (Periscope's own SQL users, name:password pairs, among them).
const SECRET_NAMES: &[&str] =
    &["PASS", "TOKEN", "SECRET", "KEY", "CREDENTIAL", "AUTH", "PRIVATE", "PERISCOPE_SQL_USERS"];

/// Whether `value` is a URL with a password in it (`postgres://user:pw@host/db`).
fn has_url_password(value: &str) -> bool {
    value
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
        .is_some_and(|authority| authority.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':')))
}

/// A `container_env` row per `NAME=value` of a container's configured
/// environment; values of names that look secret are replaced by a hash.
pub(crate) fn env_rows<'a>(id: &str, env: impl IntoIterator<Item = &'a str>, out: &mut crate::collectors::Sink) {
    use sha2::Digest;
    for var in env {
        let (name, value) = var.split_once('=').unwrap_or((var, ""));
        let upper = name.to_ascii_uppercase();
        let secret = SECRET_NAMES.iter().any(|s| upper.contains(s)) || has_url_password(value);
        let value = if secret {
            let digest = sha2::Sha256::digest(value.as_bytes());
            format!("sha256:{}", digest[..8].iter().map(|b| format!("{b:02x}")).collect::<String>())
        } else {
            value.to_string()
        };
        out.row(
            &periscope_proto::tables::CONTAINER_ENV,
            &[
                ("container_id", id.into()),
                ("name", name.into()),
                ("value", value.as_str().into()),
                ("redacted", secret.into()),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;

    #[test]
    fn secret_looking_names_are_hashed_and_the_rest_kept() {
        let common =
            crate::encode::Common { host: "h".into(), scope: "host".into(), scope_id: "s".into(), crawl_time_us: 0 };
        let mut out = crate::collectors::Sink::new(common);
        let env = [
            "PATH=/usr/bin",
            "DB_PASSWORD=hunter2",
            "api_key=abc",
            "GITHUB_TOKEN=x=y",
            "EMPTY",
            "DATABASE_URL=postgres://app:pw@db:5432/app",
            "HOME_URL=https://example.org/a@b",
        ];
        super::env_rows("c1", env, &mut out);
        let table = &periscope_proto::tables::CONTAINER_ENV;
        let mut got: Vec<(String, String, bool)> = Vec::new();
        for b in out.finish().iter().filter(|b| table.matches(b.schema_ref())) {
            let (n, v) = (
                b.column_by_name("name").unwrap().as_string::<i32>(),
                b.column_by_name("value").unwrap().as_string::<i32>(),
            );
            let r = b.column_by_name("redacted").unwrap().as_boolean();
            got.extend((0..b.num_rows()).map(|i| (n.value(i).to_string(), v.value(i).to_string(), r.value(i))));
        }
        // `echo -n hunter2 | sha256sum`: f52fbd32b2b3b86f...
        assert_eq!(got[0], ("PATH".into(), "/usr/bin".into(), false));
        assert_eq!(got[1], ("DB_PASSWORD".into(), "sha256:f52fbd32b2b3b86f".into(), true));
        assert!(got[2].2 && got[2].1.starts_with("sha256:") && got[2].1.len() == 23, "{got:?}");
        assert!(got[3].2 && !got[3].1.contains('y'), "the value after the first = is the secret: {got:?}");
        assert_eq!(got[4], ("EMPTY".into(), "".into(), false));
        assert!(got[5].2, "a password in a URL: {got:?}");
        assert_eq!(got[6], ("HOME_URL".into(), "https://example.org/a@b".into(), false));
        assert_eq!(got.len(), 7);
    }
}

//! One package row of the benchmarks' synthetic hosts, as dpkg's collector
//! would send it.

use periscope_agent::collectors::Sink;
use periscope_agent::encode::Value;
use periscope_proto::tables::PACKAGES;

/// Package `i` of a host, named `name` at `version`, with dpkg status
/// `status` and, when given, a description.
pub fn push(sink: &mut Sink, i: usize, name: &str, version: &str, status: &str, description: Option<&str>) {
    let mut row: Vec<(&str, Value)> = vec![
        ("manager", "dpkg".into()),
        ("name", name.into()),
        ("version", version.into()),
        ("architecture", "amd64".into()),
        ("source", name.into()),
        ("status", status.into()),
        ("maintainer", "Debian Developers <debian-devel@lists.debian.org>".into()),
        ("installed_size", Value::Int(1000 + (i as i64 * 37) % 90_000)),
        ("db_path", "/var/lib/dpkg/status".into()),
    ];
    if let Some(d) = description {
        row.push(("description", d.into()));
    }
    sink.row(&PACKAGES, &row);
}

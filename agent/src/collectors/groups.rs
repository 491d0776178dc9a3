//! `groups`: local groups from /etc/group, parsed here (never NSS).

use periscope_proto::tables::GROUPS;

use super::accounts::parse_group;
use super::{Scope, Sink};

const C: &str = "groups";
pub const GROUP: &str = "/etc/group";

pub fn collect(scope: &Scope, out: &mut Sink) {
    let bytes = match scope.root.read_limited(GROUP, 16 << 20) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return,
        Err(e) => return out.read_error(C, GROUP, &e),
    };
    let (groups, errors) = parse_group(&String::from_utf8_lossy(&bytes));
    for e in errors {
        out.error(C, Some(GROUP), &format!("line {}: {}", e.line, e.message));
    }
    for g in &groups {
        let members = g.members.join(",");
        out.row(&GROUPS, &[("name", (&g.name).into()), ("gid", g.gid.into()), ("members", members.as_str().into())]);
    }
}

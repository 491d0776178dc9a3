//! `groups`: local groups from /etc/group, parsed here (never NSS), each
//! group's row made as its line is read (see [`Records`]).

use periscope_proto::tables::GROUPS;

use super::accounts::{Group, Records};
use super::{Scope, Sink};

const C: &str = "groups";
pub const GROUP: &str = "/etc/group";

pub fn collect(scope: &Scope, out: &mut Sink) {
    let mut parser = Records::group();
    let mut row = |g: Group| {
        out.row(&GROUPS, &[("name", (&g.name).into()), ("gid", g.gid.into()), ("members", g.members.as_str().into())]);
    };
    let read = scope.root.stream(GROUP, 16 << 20, |chunk| parser.feed(chunk, &mut row));
    let errors = match read {
        Ok(_) => parser.finish(&mut row),
        Err(e) if e.is_not_found() => return,
        Err(e) => {
            out.read_error(C, GROUP, &e);
            parser.abort()
        }
    };
    for e in errors {
        out.error(C, Some(GROUP), &format!("line {}: {}", e.line, e.message));
    }
}

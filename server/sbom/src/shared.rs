//! What both formats need alike: a UUID derived from the document, and
//! checks that keep values the schemas restrict out of their fields.

use sha2::{Digest, Sha256};

/// A UUID made from `content`'s SHA-256, as RFC 9562 §B.2 makes a name-based
/// version 8 UUID (version 5 would mean SHA-1): the same content gives the
/// same UUID, other content another.
pub fn uuid_of(content: &[u8]) -> String {
    let mut b: [u8; 16] = Sha256::digest(content)[..16].try_into().expect("16 of 32 bytes");
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// `url` when it is a plain http(s) URL (what both formats' URL fields
/// accept); package databases also hold "none", bare host names and text.
pub fn web_url(url: &str) -> Option<&str> {
    let u = url.trim();
    let rest = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let bad = |c: char| c.is_whitespace() || c.is_control() || "<>\"{}|\\^`".contains(c) || !c.is_ascii();
    (!host.is_empty() && !u.chars().any(bad)).then_some(u)
}

/// A container id as `docker ps` shows it.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_8_and_follow_the_content() {
        let u = uuid_of(b"a");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "8");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        assert_eq!(u, uuid_of(b"a"));
        assert_ne!(u, uuid_of(b"b"));
    }

    #[test]
    fn only_plain_web_urls_pass() {
        assert_eq!(web_url("https://www.gnu.org/software/bash/"), Some("https://www.gnu.org/software/bash/"));
        assert_eq!(web_url(" http://x.org "), Some("http://x.org"));
        for bad in
            ["none", "www.example.org", "https://", "https://a b", "ftp://x.org", "https://x.org/<y>", "https://é.org"]
        {
            assert_eq!(web_url(bad), None, "{bad}");
        }
    }
}

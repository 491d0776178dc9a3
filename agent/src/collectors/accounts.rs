//! Parsers for /etc/passwd, /etc/group and /etc/shadow (never NSS). (Being written.)

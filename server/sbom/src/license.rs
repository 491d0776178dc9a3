//! A package's license as its database records it, sorted into what both
//! formats can state as an SPDX license expression and what they can only
//! quote: apk and npm mostly write SPDX expressions (`MIT`, `GPL-2.0-only AND
//! MIT`), rpm and Python often free text (`GPLv2+`, `BSD`). Deciding with the
//! SPDX license list (the `spdx` crate's copy) keeps a text that merely looks
//! like an identifier out of the SPDX fields, where validators would refuse it.

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum License {
    /// A valid SPDX license expression of listed licenses and exceptions (deprecated ones too).
    Expression(String),
    /// Anything else, quoted as recorded.
    Text(String),
}

impl License {
    /// None for a missing or blank license.
    pub fn of(recorded: Option<&str>) -> Option<License> {
        let s = recorded?.trim();
        if s.is_empty() {
            return None;
        }
        // Deprecated ids (`GPL-2.0`, `GPL-2.0+`, older apk and rpm databases write them) are still SPDX ids.
        let mode =
            spdx::ParseMode { allow_deprecated: true, allow_postfix_plus_on_gpl: true, ..spdx::ParseMode::STRICT };
        let listed = |e: &spdx::Expression| {
            e.requirements().all(|r| {
                matches!(r.req.license, spdx::LicenseItem::Spdx { .. })
                    && r.req.addition.as_ref().is_none_or(|a| matches!(a, spdx::AdditionItem::Spdx(_)))
            })
        };
        match spdx::Expression::parse_mode(s, mode) {
            // LicenseRef-… of the package's own would name a text this document does not hold.
            Ok(e) if listed(&e) => Some(License::Expression(s.to_string())),
            _ => Some(License::Text(s.to_string())),
        }
    }

    /// The SPDX `LicenseRef-` id a quoted text goes by: its first characters
    /// that SPDX ids allow and a hash of the whole, so that two texts never
    /// share one.
    pub fn reference(text: &str) -> String {
        let mut readable: String = text
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' })
            .take(40)
            .collect();
        while readable.contains("--") {
            readable = readable.replace("--", "-");
        }
        let hash = Sha256::digest(text.as_bytes());
        let hex: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
        format!("LicenseRef-{}-{hex}", readable.trim_matches('-'))
    }
}

/// The version of the SPDX license list the decision above uses, as SPDX
/// documents state it (`3.29`: major and minor only).
pub fn list_version() -> String {
    spdx::identifiers::VERSION.split('.').take(2).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spdx_expressions_are_told_from_free_text() {
        let e = |s: &str| Some(License::Expression(s.into()));
        let t = |s: &str| Some(License::Text(s.into()));
        let cases = [
            ("MIT", e("MIT")),
            (" GPL-2.0-only AND MIT ", e("GPL-2.0-only AND MIT")),
            ("Apache-2.0 OR (MIT WITH LLVM-exception)", e("Apache-2.0 OR (MIT WITH LLVM-exception)")),
            ("GPL-2.0+", e("GPL-2.0+")),
            ("GPL-2.0", e("GPL-2.0")),
            ("GPL-2.0-or-later+", t("GPL-2.0-or-later+")),
            ("GPL-2.0-or-later WITH Classpath-exception-2.0", e("GPL-2.0-or-later WITH Classpath-exception-2.0")),
            ("GPLv2+", t("GPLv2+")),
            ("BSD", t("BSD")),
            ("MIT, Apache-2.0", t("MIT, Apache-2.0")),
            ("MIT BSD", t("MIT BSD")),
            ("mit", t("mit")),
            ("LicenseRef-mine", t("LicenseRef-mine")),
            (
                "Copyright (c) 2020 Someone\nPermission is hereby granted",
                t("Copyright (c) 2020 Someone\nPermission is hereby granted"),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(License::of(Some(raw)), want, "{raw:?}");
        }
        assert_eq!(License::of(Some("  ")), None);
        assert_eq!(License::of(None), None);
    }

    #[test]
    fn the_list_version_is_major_and_minor() {
        let v = list_version();
        assert_eq!(v.split('.').count(), 2, "{v}");
        assert!(v.split('.').all(|p| p.parse::<u32>().is_ok()), "{v}");
    }

    #[test]
    fn a_reference_is_an_spdx_id_of_its_text() {
        let r = License::reference("GPLv2+ and (LGPL, v2)");
        assert!(r.starts_with("LicenseRef-GPLv2-and-LGPL-v2-"), "{r}");
        assert!(r.chars().skip("LicenseRef-".len()).all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'), "{r}");
        assert_ne!(License::reference("BSD"), License::reference("BSD "));
        assert_eq!(License::reference("BSD"), License::reference("BSD"));
    }
}

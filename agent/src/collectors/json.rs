//! Reading only what the application collectors use from a JSON manifest
//! (composer's installed.json, .NET's deps.json, npm's package.json, the
//! cargo-auditable list in a Rust binary's `.dep-v0`).
//!
//! The files are the scope's (hostile) input: parsed into a whole
//! `serde_json::Value`, 4 MB of `[0,0,…]` cost 99 MB and 16 MB of object
//! keys 395 MB. Here each manifest's own visitor walks the document and keeps
//! only the fields its rows use, as [`Loose`] values; everything else is
//! skipped as it is read ([`IgnoredAny`]), and the lists kept are bounded by
//! their collectors. A repeated key's last value wins, as in `JSON.parse`.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Items of an array a [`Loose`] keeps (a license list has one to three).
pub const MAX_ITEMS: usize = 16;

/// What a field of a manifest may hold that a row uses: a string or a bool,
/// or an object's `"name"` and `"type"` strings, or (for a list) the first
/// [`MAX_ITEMS`] items of an array as such. Anything else is skipped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loose {
    pub text: Option<String>,
    pub flag: Option<bool>,
    pub name: Option<String>,
    pub kind: Option<String>,
    pub items: Vec<Loose>,
}

impl<'de> de::Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor { items: true })
    }
}

/// A [`Loose`] whose arrays are skipped (an item of a list, a value whose
/// lists do not matter).
pub struct Item;

impl<'de> DeserializeSeed<'de> for Item {
    type Value = Loose;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Loose, D::Error> {
        d.deserialize_any(LooseVisitor { items: false })
    }
}

struct LooseVisitor {
    items: bool,
}

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Loose, E> {
        Ok(Loose { text: Some(v.to_string()), ..Loose::default() })
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Loose, E> {
        Ok(Loose { text: Some(v), ..Loose::default() })
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Loose, E> {
        Ok(Loose { flag: Some(v), ..Loose::default() })
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Loose, E> {
        Ok(Loose::default())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Loose, E> {
        Ok(Loose::default())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Loose, E> {
        Ok(Loose::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Loose, E> {
        Ok(Loose::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose, A::Error> {
        let mut out = Loose::default();
        if self.items {
            while out.items.len() < MAX_ITEMS {
                match seq.next_element_seed(Item)? {
                    Some(item) => out.items.push(item),
                    None => return Ok(out),
                }
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(out)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
        let mut out = Loose::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key.0.as_deref() {
                Some("name") => out.name = map.next_value_seed(Item)?.text,
                Some("type") => out.kind = map.next_value_seed(Item)?.text,
                _ => map.next_value::<IgnoredAny>().map(drop)?,
            }
        }
        Ok(out)
    }
}

/// An object's key, kept only when it is one a visitor looks for (at most
/// [`Key::MAX`] bytes); any other is read without being copied.
pub struct Key(pub Option<String>);

impl Key {
    pub const MAX: usize = 32;
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key((v.len() <= Key::MAX).then(|| v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The scalar visits of a [`Visitor`] that takes any JSON value and makes
/// `$v` of a string, number, bool or null (a field of the wrong type is
/// skipped, as a missing one).
macro_rules! skip_scalars {
    ($v:expr) => {
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($v)
        }
    };
}
pub(crate) use skip_scalars;

/// The fields named in `.0` of a JSON object, as [`Loose`] values in that
/// order (a repeated key's last value wins); every other field is skipped as
/// it is read. A value that is not an object gives none of them.
pub struct Pick<const N: usize>(pub [&'static str; N]);

impl<'de, const N: usize> DeserializeSeed<'de> for Pick<N> {
    type Value = [Option<Loose>; N];
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Pick<N> {
    type Value = [Option<Loose>; N];

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out: Self::Value = std::array::from_fn(|_| None);
        while let Some(key) = map.next_key::<Key>()? {
            match key.0.as_deref().and_then(|k| self.0.iter().position(|want| *want == k)) {
                Some(i) => out[i] = Some(map.next_value::<Loose>()?),
                None => map.next_value::<IgnoredAny>().map(drop)?,
            }
        }
        Ok(out)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(std::array::from_fn(|_| None))
    }

    skip_scalars!(std::array::from_fn(|_| None));
}

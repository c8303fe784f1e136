//! Typed digests: [`Digest`] (the BLAKE3 of some bytes: a blob, a directory manifest, an input) and
//! [`StageKey`] (the digest of a stage's key manifest). Both are 64 lowercase hex digits, checked on
//! construction and on deserialisation, so a key can never be mistaken for a content hash or for an
//! arbitrary string.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use super::canon::is_hash;

/// A BLAKE3 content digest (64 lowercase hex digits).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(blake3::hash(bytes).to_hex().to_string())
    }

    /// Parse hex text; `None` unless it is 64 lowercase hex digits.
    pub fn parse(text: &str) -> Option<Digest> {
        is_hash(text).then(|| Digest(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 digits, for messages.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl TryFrom<String> for Digest {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if is_hash(&s) {
            Ok(Digest(s))
        } else {
            Err(format!(
                "`{s}` is not a BLAKE3 digest (64 lowercase hex digits)"
            ))
        }
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl Deref for Digest {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

/// The key of a stage: the digest of its canonical key manifest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StageKey(Digest);

impl StageKey {
    /// The key of canonical manifest text.
    pub fn of_manifest(canonical_json: &str) -> StageKey {
        StageKey(Digest::of(canonical_json.as_bytes()))
    }

    pub fn parse(text: &str) -> Option<StageKey> {
        Digest::parse(text).map(StageKey)
    }

    pub fn digest(&self) -> &Digest {
        &self.0
    }

    pub fn short(&self) -> &str {
        self.0.short()
    }
}

impl Deref for StageKey {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StageKey({})", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_digests_parse() {
        let d = Digest::of(b"x");
        assert_eq!(Digest::parse(&d), Some(d.clone()));
        assert!(Digest::parse("abc").is_none());
        assert!(Digest::parse(&d.to_uppercase()).is_none());
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"nothex\"").is_err());
        let k = StageKey::of_manifest("{}");
        assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
    }
}

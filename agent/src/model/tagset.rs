//! [`TagSet`]: a context's tags in one shared allocation.

use std::sync::Arc;

/// A list of tags (a context's: sorted and de-duplicated by whoever builds it) stored as one shared
/// allocation of their text, each tag preceded by its length (LEB128). Cloning shares it.
///
/// Why not a slice of interned strings: a context's tags were an `Arc<[Arc<str>]>` (16 bytes per tag, plus
/// the interned strings and their table), and a tag unique to a context (an id, a pod, a user) was stored
/// three times over: at 100k contexts of the load generator's mix, ~150 bytes per context for tags that are
/// ~45 bytes of text. Here a context's tags take their text plus one byte per tag, whether or not other
/// contexts share them, and making a context interns nothing but its name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TagSet(Arc<[u8]>);

impl TagSet {
    /// The tags in the given order (duplicates kept: the caller sorts and de-duplicates).
    pub fn new<'a>(tags: impl IntoIterator<Item = &'a str>) -> TagSet {
        let mut buf = Vec::new();
        for t in tags {
            let mut len = t.len();
            while len >= 0x80 {
                buf.push((len as u8) | 0x80);
                len >>= 7;
            }
            buf.push(len as u8);
            buf.extend_from_slice(t.as_bytes());
        }
        TagSet(Arc::from(buf))
    }

    /// The tags, in order.
    pub fn iter(&self) -> TagIter<'_> {
        TagIter { rest: &self.0 }
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tags as owned strings.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }

    /// Bytes of text and length prefixes held.
    pub fn encoded_len(&self) -> usize {
        self.0.len()
    }
}

impl Default for TagSet {
    fn default() -> Self {
        TagSet::new([])
    }
}

impl std::fmt::Debug for TagSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a TagSet {
    type Item = &'a str;
    type IntoIter = TagIter<'a>;
    fn into_iter(self) -> TagIter<'a> {
        self.iter()
    }
}

impl<'a> FromIterator<&'a str> for TagSet {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> TagSet {
        TagSet::new(iter)
    }
}

impl<S: AsRef<str>> From<&[S]> for TagSet {
    fn from(tags: &[S]) -> TagSet {
        TagSet::new(tags.iter().map(AsRef::as_ref))
    }
}

impl<S: AsRef<str>> From<Vec<S>> for TagSet {
    fn from(tags: Vec<S>) -> TagSet {
        TagSet::from(tags.as_slice())
    }
}

impl<S: AsRef<str>, const N: usize> From<[S; N]> for TagSet {
    fn from(tags: [S; N]) -> TagSet {
        TagSet::from(tags.as_slice())
    }
}

/// The tags of a [`TagSet`], in order.
#[derive(Clone, Debug)]
pub struct TagIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for TagIter<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let (&first, mut rest) = self.rest.split_first()?;
        let mut len = usize::from(first & 0x7f);
        if first >= 0x80 {
            let mut shift = 7;
            while let Some((&b, r)) = rest.split_first() {
                rest = r;
                len |= usize::from(b & 0x7f) << shift;
                shift += 7;
                if b < 0x80 {
                    break;
                }
            }
        }
        let (tag, rest) = rest.split_at(len);
        self.rest = rest;
        // SAFETY: a TagSet's bytes are only written by `TagSet::new`, as each tag's length followed by that
        // tag's bytes copied whole from a `&str`; reading the same lengths back yields exactly those bytes.
        Some(unsafe { std::str::from_utf8_unchecked(tag) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_come_back_as_they_went_in() {
        let long = "k:".to_string() + &"v".repeat(300);
        let huge = "x".repeat(70_000);
        let edges = [
            "y".repeat(127),
            "z".repeat(128),
            "w".repeat(16_383),
            "q".repeat(16_384),
        ];
        let cases: Vec<Vec<&str>> = vec![
            vec![],
            vec![""],
            vec!["a"],
            vec!["env:prod", "", "service:web", "é:ü", "env:prod"],
            vec![&long, "b", &huge, "c"],
            edges.iter().map(String::as_str).collect(),
        ];
        for tags in cases {
            let set = TagSet::new(tags.iter().copied());
            assert_eq!(set.iter().collect::<Vec<_>>(), tags);
            assert_eq!(set.len(), tags.len());
            assert_eq!(set.is_empty(), tags.is_empty());
        }
    }

    #[test]
    fn equal_lists_are_equal_sets_and_short_tags_cost_one_byte_each() {
        let a = TagSet::from(["a:1", "b:2"]);
        assert_eq!(a, TagSet::from(vec!["a:1".to_string(), "b:2".to_string()]));
        assert_ne!(a, TagSet::from(["a:1"]));
        assert_ne!(a, TagSet::from(["a:1b:2"]));
        assert_eq!(a.encoded_len(), 3 + 3 + 2);
        assert_eq!(format!("{a:?}"), r#"["a:1", "b:2"]"#);
        assert_eq!(TagSet::default(), TagSet::new([]));
    }
}

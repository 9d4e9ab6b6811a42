//! Values a report writes as a text label and reads back from any text ([`CachePolicy`],
//! [`ComputeType`]): a label this version does not know (an older or newer file) is kept
//! verbatim in the value's `Other` variant, never an error that loses the whole report.
//!
//! [`CachePolicy`]: crate::backend::CachePolicy
//! [`ComputeType`]: crate::dtype::ComputeType

/// For a type whose `Display` is its label and whose `From<&str>` never fails: serde as that
/// label, and comparison with a label as reports and tests spell it (`cache == "rotate(8)"`).
macro_rules! text_label {
    ($t:ty) => {
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                let shown = self.to_string();
                shown == *other
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                Ok(<$t>::from(s.as_str()))
            }
        }
    };
}
/// `Display` as the value's `name()` (the word flags, reports and ids use), or as the word
/// another method returns (`display_name!(Verdict, as_str)`).
macro_rules! display_name {
    ($t:ty) => {
        crate::label::display_name!($t, name);
    };
    ($t:ty, $word:ident) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.$word())
            }
        }
    };
}

pub(crate) use {display_name, text_label};

/// Asserts that each of `labels` reads into a `T` that shows, writes and reads back as exactly
/// that label.
#[cfg(test)]
pub(crate) fn assert_round_trips<T>(labels: &[&str])
where
    T: for<'s> From<&'s str>
        + std::fmt::Display
        + std::fmt::Debug
        + PartialEq
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    for &s in labels {
        let v = T::from(s);
        assert_eq!(v.to_string(), s);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, serde_json::to_string(s).unwrap());
        assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v, "{s}");
    }
}

//! Sweep axes as typed data: the values one parameter takes, and the one cross product every
//! workload kind expands its axes with.
//!
//! Every axis takes a comma-separated list whose items are single values, arithmetic ranges or
//! powers of two, mixed freely: `1,16,64`, `64..1024:64` (64 to 1024 in steps of 64, both ends
//! included when the step lands on them), `pow2:1..8192` (1, 2, 4, … 8192). Memory sizes take
//! byte units (`pow2:1MiB..1GiB`).

use crate::units::Bytes;
use std::str::FromStr;

/// Most values one axis may expand to, and most workloads one sweep may make: past these a
/// typo (`1..100000000`) would plan for hours.
pub const MAX_AXIS_VALUES: usize = 4096;
pub const MAX_SWEEP_WORKLOADS: usize = 10_000;

/// The values of one axis, in the order given, duplicates removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Axis(pub Vec<u64>);

impl Axis {
    /// An axis of one value.
    pub fn one(v: u64) -> Axis {
        Axis(vec![v])
    }

    /// Parses an axis whose values are plain whole numbers.
    pub fn parse_count(s: &str) -> std::result::Result<Axis, String> {
        parse_axis(s, &|t| {
            t.trim().parse::<u64>().map_err(|e| match e.kind() {
                std::num::IntErrorKind::PosOverflow => format!("`{t}` is too large"),
                _ => format!("`{t}` is not a whole number"),
            })
        })
    }

    /// Parses an axis whose values are byte sizes (`4096`, `256MiB`, `1GiB`).
    pub fn parse_bytes(s: &str) -> std::result::Result<Axis, String> {
        parse_axis(s, &|t| Bytes::from_str(t.trim()).map(|b| b.0))
    }

    /// Parses an axis whose values `value` reads (a user kernel's `--set` takes `64Mi`).
    pub fn parse_with(
        s: &str,
        value: &dyn Fn(&str) -> std::result::Result<u64, String>,
    ) -> std::result::Result<Axis, String> {
        parse_axis(s, value)
    }
}

impl FromStr for Axis {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Axis, String> {
        Axis::parse_count(s)
    }
}

fn parse_axis(
    s: &str,
    value: &dyn Fn(&str) -> std::result::Result<u64, String>,
) -> std::result::Result<Axis, String> {
    let mut out: Vec<u64> = Vec::new();
    for item in s.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!("`{s}` has an empty item"));
        }
        let vals = if let Some(rest) = item.strip_prefix("pow2:") {
            let (a, b) = split_range(rest, item)?;
            let (lo, hi) = (value(a)?, value(b)?);
            check_order(lo, hi, item)?;
            // No power of two at or above `lo` fits in a u64 when `lo` > 2^63.
            let Some(mut p) = lo.checked_next_power_of_two() else {
                return Err(format!("`{item}` holds no power of two"));
            };
            let mut v = Vec::new();
            while p <= hi {
                v.push(p);
                match p.checked_mul(2) {
                    Some(n) => p = n,
                    None => break,
                }
            }
            if v.is_empty() {
                return Err(format!("`{item}` holds no power of two"));
            }
            v
        } else if item.contains("..") {
            let (range, step) = match item.split_once(':') {
                Some((r, st)) => (r, value(st)?),
                None => (item, 1),
            };
            if step == 0 {
                return Err(format!("`{item}`: the step must be at least 1"));
            }
            let (a, b) = split_range(range, item)?;
            let (lo, hi) = (value(a)?, value(b)?);
            check_order(lo, hi, item)?;
            // (hi - lo) / step + 1 overflows for a range spanning all of u64 with step 1.
            let count = ((hi - lo) / step).saturating_add(1);
            if count > MAX_AXIS_VALUES as u64 {
                return Err(format!(
                    "`{item}` makes {count} values; at most {MAX_AXIS_VALUES} per axis"
                ));
            }
            (0..count).map(|i| lo + i * step).collect()
        } else {
            vec![value(item)?]
        };
        for v in vals {
            if v == 0 {
                return Err(format!("`{item}`: values must be at least 1"));
            }
            if !out.contains(&v) {
                out.push(v);
            }
        }
        if out.len() > MAX_AXIS_VALUES {
            return Err(format!("`{s}` makes more than {MAX_AXIS_VALUES} values"));
        }
    }
    Ok(Axis(out))
}

fn split_range<'a>(r: &'a str, item: &str) -> std::result::Result<(&'a str, &'a str), String> {
    r.split_once("..")
        .filter(|(a, b)| !a.trim().is_empty() && !b.trim().is_empty())
        .ok_or_else(|| format!("`{item}` is not a range (e.g. 64..1024:64 or pow2:1..8192)"))
}

fn check_order(lo: u64, hi: u64, item: &str) -> std::result::Result<(), String> {
    if lo > hi {
        return Err(format!("`{item}`: the range runs backwards"));
    }
    Ok(())
}

/// A numeric parameter a sweep can put on a chart's x axis. Each kind names its own in
/// [`super::WorkloadKind::axis_value`]; the spelling is the flag's (`kv_seq` for `--kv-seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Param {
    M,
    N,
    K,
    Batch,
    Heads,
    KvHeads,
    Seq,
    KvSeq,
    HeadDim,
    Size,
}

impl Param {
    pub const ALL: [Param; 10] = [
        Param::M,
        Param::N,
        Param::K,
        Param::Batch,
        Param::Heads,
        Param::KvHeads,
        Param::Seq,
        Param::KvSeq,
        Param::HeadDim,
        Param::Size,
    ];

    /// The name charts and `sweep::params` label the parameter with.
    pub fn name(self) -> &'static str {
        match self {
            Param::M => "m",
            Param::N => "n",
            Param::K => "k",
            Param::Batch => "batch",
            Param::Heads => "heads",
            Param::KvHeads => "kv_heads",
            Param::Seq => "seq",
            Param::KvSeq => "kv_seq",
            Param::HeadDim => "head_dim",
            Param::Size => "size",
        }
    }
}

impl FromStr for Param {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Param, String> {
        Param::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("`{s}` is not a sweep axis"))
    }
}

/// The sweep parameters of the kinds swept over a byte size only (memory, transfers, peer copies,
/// collectives).
pub const SIZE_ONLY: [Param; 1] = [Param::Size];

/// A size-only kind's value of `axis`: its `bytes` for [`Param::Size`], nothing else.
pub fn size_value(axis: Param, bytes: u64) -> Option<u64> {
    (axis == Param::Size).then_some(bytes)
}

/// A size-only kind's swept parameter: `size` when its axis holds several values.
pub fn size_swept(size: &Axis) -> Option<Param> {
    first_swept(&SIZE_ONLY, |_| size.0.len())
}

/// The methods of `WorkloadKind` that every size-only kind (a spec with a `bytes` field)
/// answers alike: written once here, invoked inside each kind's `impl WorkloadKind` with the
/// kind's own parameters (`|s| ("op", s.op.name().into()), ...`), which `params` lists before
/// the size. Size-only kinds move bytes: their headline is bytes per second.
macro_rules! size_only_params {
    (|$s:ident| $($param:expr),+ $(,)?) => {
        fn params(&self) -> Vec<(&'static str, String)> {
            let $s = self;
            let size = $crate::units::Bytes(self.bytes).to_string();
            vec![$($param,)+ ("size", size)]
        }
        fn metric(&self) -> $crate::workload::Metric {
            $crate::workload::Metric::Bytes
        }
        fn axis_value(&self, axis: $crate::workload::Param) -> Option<u64> {
            $crate::workload::axis::size_value(axis, self.bytes)
        }
        fn sweep_params(&self) -> &'static [$crate::workload::Param] {
            &$crate::workload::axis::SIZE_ONLY
        }
    };
}

/// The `KindAxes` methods every kind's axes answer alike (their kind is `$spec`'s, their
/// implementations the `implementation` field): invoked inside each `impl KindAxes`.
macro_rules! axes_of {
    ($spec:ty) => {
        fn kind(&self) -> &'static str {
            <$spec as $crate::workload::WorkloadKind>::KIND
        }
        fn implementations(&self) -> &[String] {
            &self.implementation
        }
    };
}

/// The sweep axes of a size-only kind and their `KindAxes`, written once: the struct `$name`
/// holds `size`, one list per axis of the kind's own (in the order `$spec::new` takes them),
/// the `fixed` values every point shares, and `implementation`; `expand` makes
/// `$spec::new(axis values.., size, fixed..)` at every point of the cross product, the first
/// axis outermost and size fastest.
macro_rules! size_only_axes {
    (
        $(#[$doc:meta])*
        pub struct $name:ident for $spec:ident as $variant:ident {
            $($(#[$adoc:meta])* $axis:ident: $t:ty,)+
        }
        $(fixed { $($(#[$fdoc:meta])* $fixed:ident: $ft:ty,)+ })?
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            /// Bytes (per buffer, each way) at each point.
            pub size: $crate::workload::axis::Axis,
            $($(#[$adoc])* pub $axis: Vec<$t>,)+
            $($($(#[$fdoc])* pub $fixed: $ft,)+)?
            /// Implementations to run at every point (empty = default).
            pub implementation: Vec<String>,
        }

        impl $crate::workload::KindAxes for $name {
            $crate::workload::axis::axes_of!($spec);
            fn swept(&self) -> Option<$crate::workload::Param> {
                $crate::workload::axis::size_swept(&self.size)
            }
            fn expand(&self) -> $crate::error::Result<Vec<$crate::workload::Workload>> {
                let lens = [$(self.$axis.len(),)+ self.size.0.len()];
                let points = $crate::workload::axis::cross(&lens).map(|ix| {
                    let mut ix = ix.into_iter();
                    let mut next = || ix.next().expect("one index per axis");
                    $(let $axis = self.$axis[next()];)+
                    let size = self.size.0[next()];
                    $crate::workload::Workload::$variant($spec::new(
                        $($axis,)+ size $($(, self.$fixed)+)?
                    ))
                });
                $crate::workload::collect_checked(points)
            }
        }
    };
}

/// `name()` and `FromStr` of an option enum from one table: each variant's name (what flags,
/// reports and ids write) and the other spellings a user may type. Matching ignores case, `-`
/// and `_` (the other spellings are written that way); an unknown word lists the names.
macro_rules! spelled {
    ($t:ident, $what:literal { $($v:ident => $name:literal $(| $other:literal)*,)+ }) => {
        impl $t {
            pub fn name(self) -> &'static str {
                match self {
                    $($t::$v => $name,)+
                }
            }
        }

        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                let word = s.to_ascii_lowercase().replace(['-', '_'], "");
                $(
                    if word == $name.replace(['-', '_'], "") $(|| word == $other)* {
                        return Ok($t::$v);
                    }
                )+
                let names = [$($name),+].join(", ");
                Err(format!(concat!("unknown ", $what, " `{}` ({})"), s, names))
            }
        }
    };
}

pub(crate) use {axes_of, size_only_axes, size_only_params, spelled};

/// The first of `params` whose axis has more than one value (`len` counts an axis's values):
/// the parameter a sweep's charts put on x.
pub fn first_swept(params: &[Param], len: impl Fn(Param) -> usize) -> Option<Param> {
    params.iter().copied().find(|&p| len(p) > 1)
}

/// The cross product of axes of `lens` values each, as index tuples, the first axis outermost
/// and the last changing fastest (so one series of results comes out together). Lazy, so a
/// caller can stop at a limit before an oversized product is ever built.
pub fn cross(lens: &[usize]) -> impl Iterator<Item = Vec<usize>> + '_ {
    let total = if lens.contains(&0) {
        0
    } else {
        lens.iter().fold(1usize, |p, &n| p.saturating_mul(n))
    };
    (0..total).map(move |mut i| {
        let mut ix = vec![0; lens.len()];
        for (slot, &n) in ix.iter_mut().zip(lens).rev() {
            *slot = i % n;
            i /= n;
        }
        ix
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_runs_the_last_axis_fastest() {
        let all: Vec<Vec<usize>> = cross(&[2, 1, 3]).collect();
        assert_eq!(all.len(), 6);
        assert_eq!(all[0], vec![0, 0, 0]);
        assert_eq!(all[1], vec![0, 0, 1]);
        assert_eq!(all[3], vec![1, 0, 0]);
        assert_eq!(cross(&[2, 0]).count(), 0);
        assert_eq!(cross(&[]).count(), 1);
    }

    #[test]
    fn params_round_trip() {
        for p in Param::ALL {
            assert_eq!(p.name().parse::<Param>(), Ok(p));
        }
        assert!("dtype".parse::<Param>().is_err());
    }
}

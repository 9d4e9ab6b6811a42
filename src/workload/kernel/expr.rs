//! Integer expressions of a user kernel spec (`grid = "ceil(N/128)"`, `count = "M*K"`),
//! evaluated safely: a small recursive-descent parser over exact rationals with checked
//! arithmetic, a whitelist of functions, and limits on length and nesting. Nothing in an
//! expression can run code, read a file or loop.
//!
//! Grammar (usual precedence, `**` binds tightest and to the right):
//!
//! ```text
//! expr  := term (('+' | '-') term)*
//! term  := unary (('*' | '/' | '%') unary)*
//! unary := ('-' | '+') unary | power
//! power := atom ('**' unary)?
//! atom  := NUMBER | NAME | NAME '(' expr (',' expr)* ')' | '(' expr ')'
//! ```
//!
//! `/` is exact division (so `ceil(N/128)` means what it says); the final value must be a
//! whole number, otherwise the error says to round with `ceil`, `floor` or `cdiv`. Numbers may
//! carry `_` separators and a binary suffix (`16Ki`, `4Mi`, `1Gi`). Functions: `ceil(x)`,
//! `floor(x)`, `cdiv(a, b)` (= ceil(a/b)), `div(a, b)` (= floor(a/b)), `align(x, a)` (x rounded up
//! to a multiple of a), `min(a, b, …)`, `max(a, b, …)`.

use std::fmt;

/// Longest expression accepted, in bytes.
pub const MAX_LEN: usize = 1024;
/// Deepest nesting of parentheses, calls and unary signs.
pub const MAX_DEPTH: usize = 32;

/// Why an expression could not be evaluated, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// The expression (cut to [`MAX_LEN`] characters for the message).
    pub expr: String,
    /// Byte offset of the problem.
    pub pos: usize,
    pub msg: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The caret only helps when the expression is short enough to be read on one line.
        if self.expr.len() <= 120 && self.expr.is_char_boundary(self.pos.min(self.expr.len())) {
            let pad = self.expr[..self.pos.min(self.expr.len())].chars().count();
            write!(
                f,
                "{} in `{}`\n    {}\n    {}^",
                self.msg,
                self.expr,
                self.expr,
                " ".repeat(pad)
            )
        } else {
            write!(
                f,
                "{} (at byte {} of a long expression)",
                self.msg, self.pos
            )
        }
    }
}

impl std::error::Error for ExprError {}

/// Where an expression's names get their values.
pub trait Names {
    /// The value of `name`, if it is known.
    fn value(&self, name: &str) -> Option<i128>;
    /// Every known name, for the "unknown name" message.
    fn known(&self) -> Vec<String>;
}

impl Names for std::collections::BTreeMap<String, i128> {
    fn value(&self, name: &str) -> Option<i128> {
        self.get(name).copied()
    }
    fn known(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// An exact rational, always reduced, denominator positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Q {
    n: i128,
    d: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Q {
    fn int(n: i128) -> Q {
        Q { n, d: 1 }
    }

    fn new(n: i128, d: i128) -> Option<Q> {
        // i128::MIN has no positive counterpart: treat it as the overflow it nearly is.
        if d == 0 || n == i128::MIN || d == i128::MIN {
            return None;
        }
        let g = gcd(n, d).max(1);
        let (mut n, mut d) = (n / g, d / g);
        if d < 0 {
            n = n.checked_neg()?;
            d = d.checked_neg()?;
        }
        Some(Q { n, d })
    }

    fn is_int(self) -> bool {
        self.d == 1
    }

    fn add(self, o: Q) -> Option<Q> {
        let n = self
            .n
            .checked_mul(o.d)?
            .checked_add(o.n.checked_mul(self.d)?)?;
        Q::new(n, self.d.checked_mul(o.d)?)
    }

    fn neg(self) -> Option<Q> {
        Some(Q {
            n: self.n.checked_neg()?,
            d: self.d,
        })
    }

    fn mul(self, o: Q) -> Option<Q> {
        // Cross-reduce first, so that products that fit are never rejected.
        let g1 = gcd(self.n, o.d).max(1);
        let g2 = gcd(o.n, self.d).max(1);
        let n = (self.n / g1).checked_mul(o.n / g2)?;
        let d = (self.d / g2).checked_mul(o.d / g1)?;
        Q::new(n, d)
    }

    fn floor(self) -> i128 {
        self.n.div_euclid(self.d)
    }

    fn ceil(self) -> Option<i128> {
        let f = self.floor();
        if self.is_int() {
            Some(f)
        } else {
            f.checked_add(1)
        }
    }
}

struct Parser<'s, 'n> {
    src: &'s str,
    b: &'s [u8],
    pos: usize,
    depth: usize,
    names: &'n dyn Names,
}

type R<T> = Result<T, ExprError>;

/// Evaluates `src` to a whole number with the values of `names`.
pub fn eval(src: &str, names: &dyn Names) -> Result<i128, ExprError> {
    let err = |pos: usize, msg: String| ExprError {
        expr: src.chars().take(MAX_LEN).collect(),
        pos,
        msg,
    };
    if src.len() > MAX_LEN {
        return Err(err(
            MAX_LEN,
            format!(
                "expression is {} bytes long; at most {MAX_LEN} are accepted",
                src.len()
            ),
        ));
    }
    let mut p = Parser {
        src,
        b: src.as_bytes(),
        pos: 0,
        depth: 0,
        names,
    };
    let v = p.expr()?;
    p.skip_ws();
    if p.pos < p.b.len() {
        return Err(p.error(format!("unexpected `{}`", p.rest_token())));
    }
    if !v.is_int() {
        return Err(err(
            0,
            format!(
                "the value {}/{} (≈ {:.4}) is not a whole number: round it with ceil(), floor() or cdiv()",
                v.n,
                v.d,
                v.n as f64 / v.d as f64
            ),
        ));
    }
    Ok(v.n)
}

/// Evaluates `src` and checks the result lies in `lo..=hi`; `what` names the value in errors.
pub fn eval_in(
    src: &str,
    names: &dyn Names,
    what: &str,
    lo: i128,
    hi: i128,
) -> Result<i128, String> {
    let v = eval(src, names).map_err(|e| format!("{what}: {e}"))?;
    if v < lo || v > hi {
        return Err(format!(
            "{what}: `{src}` is {v}, outside the allowed {lo}..={hi}"
        ));
    }
    Ok(v)
}

impl Parser<'_, '_> {
    fn error(&self, msg: String) -> ExprError {
        ExprError {
            expr: self.src.chars().take(MAX_LEN).collect(),
            pos: self.pos,
            msg,
        }
    }

    fn overflow(&self, at: usize) -> ExprError {
        ExprError {
            pos: at,
            ..self.error("the value overflows (beyond ±1.7e38)".into())
        }
    }

    fn rest_token(&self) -> String {
        self.src[self.pos..].chars().take(12).collect()
    }

    fn skip_ws(&mut self) {
        while self.pos < self.b.len() && self.b[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    /// Consumes `s` (after whitespace) when it is next.
    fn eat(&mut self, s: &str) -> bool {
        self.skip_ws();
        if self.src[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("nested more than {MAX_DEPTH} levels deep")));
        }
        Ok(())
    }

    fn expr(&mut self) -> R<Q> {
        let mut v = self.term()?;
        loop {
            let at = self.pos;
            if self.eat("+") {
                let r = self.term()?;
                v = v.add(r).ok_or_else(|| self.overflow(at))?;
            } else if self.eat("-") {
                let r = self.term()?.neg().ok_or_else(|| self.overflow(at))?;
                v = v.add(r).ok_or_else(|| self.overflow(at))?;
            } else {
                return Ok(v);
            }
        }
    }

    fn term(&mut self) -> R<Q> {
        let mut v = self.unary()?;
        loop {
            self.skip_ws();
            let at = self.pos;
            // `**` is a power, not two products.
            if self.src[self.pos..].starts_with("**") {
                return Ok(v);
            }
            if self.eat("*") {
                let r = self.unary()?;
                v = v.mul(r).ok_or_else(|| self.overflow(at))?;
            } else if self.eat("/") {
                let r = self.unary()?;
                if r.n == 0 {
                    return Err(ExprError {
                        pos: at,
                        ..self.error("division by zero".into())
                    });
                }
                let inv = Q::new(r.d, r.n).ok_or_else(|| self.overflow(at))?;
                v = v.mul(inv).ok_or_else(|| self.overflow(at))?;
            } else if self.eat("%") {
                let r = self.unary()?;
                if !v.is_int() || !r.is_int() {
                    return Err(ExprError {
                        pos: at,
                        ..self.error("`%` takes whole numbers; round first".into())
                    });
                }
                if r.n == 0 {
                    return Err(ExprError {
                        pos: at,
                        ..self.error("remainder of a division by zero".into())
                    });
                }
                v = Q::int(
                    v.n.checked_rem_euclid(r.n)
                        .ok_or_else(|| self.overflow(at))?,
                );
            } else {
                return Ok(v);
            }
        }
    }

    fn unary(&mut self) -> R<Q> {
        self.enter()?;
        let at = self.pos;
        let v = if self.eat("-") {
            self.unary()?.neg().ok_or_else(|| self.overflow(at))?
        } else if self.eat("+") {
            self.unary()?
        } else {
            self.power()?
        };
        self.depth -= 1;
        Ok(v)
    }

    fn power(&mut self) -> R<Q> {
        let base = self.atom()?;
        let at = self.pos;
        if !self.eat("**") {
            return Ok(base);
        }
        let e = self.unary()?;
        if !e.is_int() || !(0..=127).contains(&e.n) {
            return Err(ExprError {
                pos: at,
                ..self.error("the exponent of `**` must be a whole number from 0 to 127".into())
            });
        }
        let mut v = Q::int(1);
        for _ in 0..e.n {
            v = v.mul(base).ok_or_else(|| self.overflow(at))?;
        }
        Ok(v)
    }

    fn atom(&mut self) -> R<Q> {
        self.skip_ws();
        let Some(&c) = self.b.get(self.pos) else {
            return Err(self.error("the expression ends where a value was expected".into()));
        };
        if c == b'(' {
            self.enter()?;
            self.pos += 1;
            let v = self.expr()?;
            if !self.eat(")") {
                return Err(self.error("`(` is never closed: expected `)`".into()));
            }
            self.depth -= 1;
            return Ok(v);
        }
        if c.is_ascii_digit() {
            return self.number();
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = self.pos;
            while self
                .b
                .get(self.pos)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                self.pos += 1;
            }
            let name = &self.src[start..self.pos];
            self.skip_ws();
            if self.b.get(self.pos) == Some(&b'(') {
                return self.call(name, start);
            }
            return match self.names.value(name) {
                Some(v) => Ok(Q::int(v)),
                None => {
                    let mut known = self.names.known();
                    known.sort();
                    Err(ExprError {
                        pos: start,
                        ..self.error(format!(
                            "unknown name `{name}`{}",
                            if known.is_empty() {
                                " (no names are defined here)".to_string()
                            } else {
                                format!(" (known: {})", known.join(", "))
                            }
                        ))
                    })
                }
            };
        }
        Err(self.error(format!("unexpected `{}`", self.rest_token())))
    }

    fn number(&mut self) -> R<Q> {
        let start = self.pos;
        let mut v: i128 = 0;
        while let Some(&c) = self.b.get(self.pos) {
            if c == b'_' {
                self.pos += 1;
                continue;
            }
            if !c.is_ascii_digit() {
                break;
            }
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add((c - b'0') as i128))
                .ok_or_else(|| self.overflow(start))?;
            self.pos += 1;
        }
        let suffix = [("Ki", 10), ("Mi", 20), ("Gi", 30), ("Ti", 40)]
            .into_iter()
            .find(|(s, _)| self.src[self.pos..].starts_with(s));
        if let Some((s, shift)) = suffix {
            self.pos += s.len();
            v = v
                .checked_mul(1 << shift)
                .ok_or_else(|| self.overflow(start))?;
        }
        if self
            .b
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'.')
        {
            return Err(self.error(format!(
                "`{}` is not a whole number (suffixes: Ki, Mi, Gi, Ti)",
                &self.src[start..]
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
                    .next()
                    .unwrap_or("")
            )));
        }
        Ok(Q::int(v))
    }

    fn call(&mut self, name: &str, start: usize) -> R<Q> {
        const FUNCTIONS: &str = "ceil, floor, cdiv, div, align, min, max";
        let arity: Option<(usize, usize)> = match name {
            "ceil" | "floor" => Some((1, 1)),
            "cdiv" | "div" | "align" => Some((2, 2)),
            "min" | "max" => Some((1, 64)),
            _ => None,
        };
        let Some((lo, hi)) = arity else {
            return Err(ExprError {
                pos: start,
                ..self.error(format!(
                    "unknown function `{name}` (functions: {FUNCTIONS})"
                ))
            });
        };
        self.enter()?;
        self.pos += 1; // '('
        let mut args = vec![self.expr()?];
        while self.eat(",") {
            args.push(self.expr()?);
        }
        if !self.eat(")") {
            return Err(self.error(format!("`{name}(` is never closed: expected `)`")));
        }
        self.depth -= 1;
        if args.len() < lo || args.len() > hi {
            let want = if lo == hi {
                format!("{lo}")
            } else {
                format!("{lo} to {hi}")
            };
            return Err(ExprError {
                pos: start,
                ..self.error(format!(
                    "`{name}` takes {want} argument(s), got {}",
                    args.len()
                ))
            });
        }
        let ovf = || self.overflow(start);
        let whole = |q: Q, what: &str| -> R<i128> {
            if q.is_int() {
                Ok(q.n)
            } else {
                Err(ExprError {
                    pos: start,
                    ..self.error(format!("`{name}` takes a whole number as {what}"))
                })
            }
        };
        let nonzero = |q: i128| -> R<i128> {
            if q == 0 {
                Err(ExprError {
                    pos: start,
                    ..self.error(format!("`{name}` divides by zero"))
                })
            } else {
                Ok(q)
            }
        };
        let v = match name {
            "ceil" => Q::int(args[0].ceil().ok_or_else(ovf)?),
            "floor" => Q::int(args[0].floor()),
            "cdiv" | "div" => {
                let (a, b) = (
                    whole(args[0], "its first argument")?,
                    nonzero(whole(args[1], "its second argument")?)?,
                );
                let q = Q::new(a, b).ok_or_else(ovf)?;
                Q::int(if name == "cdiv" {
                    q.ceil().ok_or_else(ovf)?
                } else {
                    q.floor()
                })
            }
            "align" => {
                let a = nonzero(whole(args[1], "its alignment")?)?;
                let q = Q::new(whole(args[0], "its value")?, a).ok_or_else(ovf)?;
                Q::int(q.ceil().ok_or_else(ovf)?.checked_mul(a).ok_or_else(ovf)?)
            }
            "min" => *args.iter().min_by(|a, b| cmp(**a, **b)).expect("≥ 1"),
            _ => *args.iter().max_by(|a, b| cmp(**a, **b)).expect("≥ 1"),
        };
        Ok(v)
    }
}

/// Orders two rationals exactly (in i128 where the cross products fit, else by their floats,
/// which differ whenever the products would overflow).
fn cmp(a: Q, b: Q) -> std::cmp::Ordering {
    match (a.n.checked_mul(b.d), b.n.checked_mul(a.d)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => (a.n as f64 / a.d as f64).total_cmp(&(b.n as f64 / b.d as f64)),
    }
}

/// The names an expression refers to (not the function names), in order of appearance: for
/// telling which variables a value depends on without evaluating it.
pub fn names_in(src: &str) -> Vec<String> {
    let b = src.as_bytes();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            // A number and its suffix are not names.
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let name = &src[s..i];
            let call = src[i..].trim_start().starts_with('(');
            if !call && !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env() -> BTreeMap<String, i128> {
        [
            ("M", 4097),
            ("N", 4096),
            ("K", 1000),
            ("BLOCK", 128),
            ("Z", 0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn ok(s: &str) -> i128 {
        eval(s, &env()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn bad(s: &str) -> String {
        eval(s, &env()).expect_err(s).to_string()
    }

    #[test]
    fn arithmetic_with_precedence_and_exact_division() {
        assert_eq!(ok("1 + 2 * 3"), 7);
        assert_eq!(ok("(1 + 2) * 3"), 9);
        assert_eq!(ok("2 ** 3 ** 2"), 512);
        assert_eq!(ok("-2 ** 2"), -4);
        assert_eq!(ok("10 - 3 - 2"), 5);
        assert_eq!(ok("7 % 3 + -7 % 3"), 1 + 2);
        assert_eq!(ok("N / 128"), 32);
        // exact rationals: (N/3)*3 is N again, not a truncated value
        assert_eq!(ok("N/3*3"), 4096);
        assert_eq!(ok("16Ki + 1_000"), 16384 + 1000);
        assert_eq!(ok("4Mi"), 4 << 20);
        assert_eq!(ok("  M\t*\nK "), 4_097_000);
    }

    #[test]
    fn functions_round_and_pick() {
        assert_eq!(ok("ceil(M/128)"), 33);
        assert_eq!(ok("floor(M/128)"), 32);
        assert_eq!(ok("cdiv(M, BLOCK)"), 33);
        assert_eq!(ok("div(M, BLOCK)"), 32);
        assert_eq!(ok("ceil(-M/128)"), -32);
        assert_eq!(ok("floor(-M/128)"), -33);
        assert_eq!(ok("align(1000, 256)"), 1024);
        assert_eq!(ok("align(1024, 256)"), 1024);
        assert_eq!(ok("min(N, M, 5)"), 5);
        assert_eq!(ok("max(1/2, 1/3) * 6"), 3);
        assert_eq!(ok("max(N)"), 4096);
    }

    #[test]
    fn a_fraction_left_over_must_be_rounded() {
        let e = bad("M/128");
        assert!(
            e.contains("not a whole number") && e.contains("ceil()"),
            "{e}"
        );
    }

    #[test]
    fn hostile_inputs_are_refused_with_a_reason() {
        // (input, what its error must say)
        for (s, want) in [
            // division by zero, in every form
            ("1/0", "zero"),
            ("N/(M-M)", "zero"),
            ("5 % Z", "zero"),
            ("cdiv(N, Z)", "zero"),
            ("div(1, 0)", "zero"),
            ("align(3, 0)", "zero"),
            // overflow: literals, products, powers, negation of the minimum
            ("340282366920938463463374607431768211456", "overflow"),
            ("99999999999999999999 * 99999999999999999999", "overflow"),
            ("2 ** 127", "overflow"),
            ("N ** 100", "overflow"),
            ("1Ti * 1Ti * 1Ti * 1Ti", "overflow"),
            ("-(2**126) - 2**126 - 2**126", "overflow"),
            // syntax
            ("", "ends where a value"),
            ("1 +", "ends where a value"),
            ("(1", "never closed"),
            ("min(1, 2", "never closed"),
            ("1 2", "unexpected `2`"),
            ("3.5", "not a whole number"),
            ("0x10", "not a whole number"),
            ("12abc", "not a whole number"),
            ("1; rm -rf /", "unexpected `;"),
            ("`id`", "unexpected"),
            ("ceil()", "unexpected `)`"),
            ("ceil(1, 2)", "takes 1 argument"),
            ("cdiv(1)", "takes 2 argument"),
            ("2 ** -1", "exponent"),
            ("2 ** (1/2)", "exponent"),
            ("(1/2) % 2", "whole numbers"),
            ("cdiv(1/2, 3)", "whole number"),
            ("N ** 1000", "exponent"),
            ("é", "unexpected"),
        ] {
            let e = bad(s);
            assert!(e.contains(want), "{s}: {e}");
        }
        // unknown names list the known ones; unknown functions list the whitelist
        let e = bad("Q * 2");
        assert!(
            e.contains("unknown name `Q`") && e.contains("BLOCK, K, M, N"),
            "{e}"
        );
        let e = bad("system(1)");
        assert!(
            e.contains("unknown function `system`") && e.contains("cdiv"),
            "{e}"
        );
        let e = bad("__import__(os)");
        assert!(e.contains("unknown function"), "{e}");
        // deep nesting of every recursive form
        for s in [
            format!("{}1{}", "(".repeat(200), ")".repeat(200)),
            format!("{}1", "-".repeat(200)),
            format!("{}1{}", "min(".repeat(100), ")".repeat(100)),
            format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000)),
        ] {
            let e = eval(&s, &env()).unwrap_err().to_string();
            assert!(e.contains("nested") || e.contains("long"), "{e}");
        }
        // very long input, even when it would be harmless
        let long = vec!["1"; 2000].join("+");
        assert!(bad(&long).contains("at most 1024"));
        // more arguments than any function takes
        assert!(bad(&format!("min({})", vec!["1"; 65].join(","))).contains("1 to 64"));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = eval("N + Q", &env()).unwrap_err();
        assert_eq!(e.pos, 4);
        let shown = e.to_string();
        assert!(shown.ends_with("    N + Q\n        ^"), "{shown}");
    }

    #[test]
    fn ranges_and_names() {
        let env = env();
        assert_eq!(
            eval_in("N", &env, "block", 1, 1024),
            Err("block: `N` is 4096, outside the allowed 1..=1024".into())
        );
        assert_eq!(eval_in("BLOCK", &env, "block", 1, 1024), Ok(128));
        assert_eq!(
            names_in("ceil(N/BLOCK) + 16Ki + max(M, N)"),
            vec!["N", "BLOCK", "M"]
        );
    }

    #[test]
    fn random_garbage_never_panics() {
        // Any string over the expression alphabet (and a few bytes outside it) gives a value or
        // an error, never a panic or a hang.
        let alphabet: Vec<char> = "0123456789+-*/%() ,_NMKZBLOCKceilfloormnax*Kié\t"
            .chars()
            .collect();
        let mut state = 0x1234_5678_9abc_def0u64;
        let env = env();
        for _ in 0..20_000 {
            state = crate::tensor::splitmix(state);
            let len = (state % 40) as usize;
            let s: String = (0..len)
                .map(|i| {
                    let r = crate::tensor::splitmix(state ^ i as u64);
                    alphabet[(r % alphabet.len() as u64) as usize]
                })
                .collect();
            let _ = eval(&s, &env).map_err(|e| e.to_string());
        }
    }
}

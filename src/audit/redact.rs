//! Keeps values that look like secrets out of audit records: tokens in argv
//! (`--password=…`, `--token X`), `Authorization:` headers, credentials in
//! URLs, well-known token formats and long high-entropy strings, plus the
//! policy's own patterns.

use regex::Regex;
use std::borrow::Cow;

pub const MASK: &str = "[REDACTED]";

/// Patterns whose `keep` group (if any) stays and the rest is masked.
const BUILTIN: &[&str] = &[
    // --password=x, -token:x, api_key=x, secret: x
    r"(?i)(?P<keep>(?:^|[^A-Za-z0-9]|--?)(?:password|passwd|pwd|pass|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|client[-_]?secret|auth)\s*[=:]\s*)[^\s,;&]+",
    // --password value, inside a command string
    r"(?i)(?P<keep>(?:^|\s)--?(?:password|passwd|pass|secret|token|api[-_]?key|access[-_]?key|auth|client[-_]?secret|private[-_]?key)\s+)[^\s-][^\s]*",
    // "password": "x" in JSON bodies
    r#"(?i)(?P<keep>"(?:password|passwd|secret|token|api[-_]?key|access[-_]?token|refresh[-_]?token|client[-_]?secret|private[-_]?key)"\s*:\s*")[^"]*"#,
    // PGPASSWORD=x, AWS_SECRET_ACCESS_KEY=x, GITHUB_TOKEN=x
    r"(?P<keep>\b[A-Za-z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY)[A-Za-z0-9_]*=)[^\s;&]+",
    // curl -u user:password
    r"(?P<keep>(?:^|\s)(?:-u|--user)\s*[^:\s]+:)[^\s]+",
    // Authorization: Bearer x / Basic x / token x
    r"(?i)(?P<keep>(?:proxy-)?authorization\s*:\s*(?:bearer|basic|token|digest)?\s*)[^\s]+",
    // scheme://user:password@host
    r"(?P<keep>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/\s@]+:)[^@\s/]+",
    // Well-known token shapes.
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|sk-[A-Za-z0-9_-]{16,}|xox[abprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{30,}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})",
];

/// An argument naming a secret whose value is the next argument.
const FLAG_WITH_VALUE: &str = r"(?i)^--?(?:password|passwd|pass|secret|token|api[-_]?key|access[-_]?key|auth|client[-_]?secret|private[-_]?key)$";

/// Candidate for the entropy check: a long run of token characters.
const LONG_TOKEN: &str = r"[A-Za-z0-9+/=_\-]{32,}";

#[derive(Debug, Clone)]
pub struct Redactor {
    patterns: Vec<Regex>,
    flag_with_value: Regex,
    long_token: Option<Regex>,
}

impl Redactor {
    /// The built-in patterns (if `builtin`) and the policy's own.
    pub fn new(extra: &[Regex], builtin: bool) -> Redactor {
        let mut patterns: Vec<Regex> = if builtin {
            BUILTIN
                .iter()
                .map(|p| Regex::new(p).expect("built-in pattern"))
                .collect()
        } else {
            Vec::new()
        };
        patterns.extend(extra.iter().cloned());
        Redactor {
            patterns,
            flag_with_value: Regex::new(FLAG_WITH_VALUE).expect("built-in pattern"),
            long_token: builtin.then(|| Regex::new(LONG_TOKEN).expect("built-in pattern")),
        }
    }

    /// `text` with secrets masked; the flag says whether anything was.
    pub fn text<'a>(&self, text: &'a str) -> (Cow<'a, str>, bool) {
        let mut out = Cow::Borrowed(text);
        let mut redacted = false;
        for re in &self.patterns {
            if re.is_match(&out) {
                let replaced = re
                    .replace_all(&out, |c: &regex::Captures<'_>| {
                        format!("{}{MASK}", c.name("keep").map_or("", |m| m.as_str()))
                    })
                    .into_owned();
                out = Cow::Owned(replaced);
                redacted = true;
            }
        }
        if let Some(re) = &self.long_token {
            if re.find_iter(&out).any(|m| high_entropy(m.as_str())) {
                let replaced = re
                    .replace_all(&out, |c: &regex::Captures<'_>| {
                        let s = &c[0];
                        if high_entropy(s) {
                            MASK.to_string()
                        } else {
                            s.to_string()
                        }
                    })
                    .into_owned();
                out = Cow::Owned(replaced);
                redacted = true;
            }
        }
        (out, redacted)
    }

    /// argv with secrets masked, including the value after `--password`.
    pub fn argv(&self, argv: &[String]) -> (Vec<String>, bool) {
        let mut redacted = false;
        let mut out = Vec::with_capacity(argv.len());
        let mut mask_next = false;
        for arg in argv {
            if mask_next {
                out.push(MASK.to_string());
                redacted = true;
                mask_next = false;
                continue;
            }
            mask_next = self.flag_with_value.is_match(arg);
            let (text, r) = self.text(arg);
            redacted |= r;
            out.push(text.into_owned());
        }
        (out, redacted)
    }
}

/// Shannon entropy of at least 4 bits per character, with a mix of
/// character classes: random keys, not words or paths.
fn high_entropy(s: &str) -> bool {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    let classes = [
        s.bytes().any(|b| b.is_ascii_lowercase()),
        s.bytes().any(|b| b.is_ascii_uppercase()),
        s.bytes().any(|b| b.is_ascii_digit()),
    ]
    .iter()
    .filter(|&&x| x)
    .count();
    entropy >= 4.0 && classes >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Redactor {
        Redactor::new(&[], true)
    }

    #[test]
    fn masks_flag_values_and_headers() {
        let (t, hit) = r().text("curl --password=hunter2 -H 'Authorization: Bearer abc.def'");
        assert!(hit);
        assert!(!t.contains("hunter2") && !t.contains("abc.def"), "{t}");
        assert!(t.contains("--password=[REDACTED]"), "{t}");
    }

    #[test]
    fn masks_the_value_after_a_secret_flag() {
        let argv: Vec<String> = ["mysql", "--password", "s3cr3t!", "db"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (out, hit) = r().argv(&argv);
        assert!(hit);
        assert_eq!(out, ["mysql", "--password", MASK, "db"]);
    }

    #[test]
    fn masks_high_entropy_strings_but_not_paths() {
        let (t, hit) = r().text("key Zx8Qp2Lm9Rt4Vb7Nc1Kd5Hf3Jg6Ws0Ye");
        assert!(hit && !t.contains("Zx8Qp2"), "{t}");
        let (t, hit) = r().text("src/components/navigation/sidebar_items.rs");
        assert!(!hit, "{t}");
    }

    #[test]
    fn masks_secrets_inside_command_strings() {
        for (text, secret) in [
            ("mysql --password hunter2xyz -h db", "hunter2xyz"),
            (r#"curl -d '{"password":"pa55w0rd!"}' x"#, "pa55w0rd!"),
            ("PGPASSWORD=s3cr3tpw psql", "s3cr3tpw"),
            ("curl -u bob:b0bpass https://x", "b0bpass"),
        ] {
            let (t, hit) = r().text(text);
            assert!(hit && !t.contains(secret), "{text} -> {t}");
        }
        let (t, hit) = r().text("cargo test --release -- --nocapture");
        assert!(!hit, "{t}");
    }

    #[test]
    fn masks_url_credentials() {
        let (t, _) = r().text("git clone https://bob:pa55word@example.com/x.git");
        assert!(!t.contains("pa55word"), "{t}");
        assert!(t.contains("https://bob:[REDACTED]@example.com"), "{t}");
    }
}

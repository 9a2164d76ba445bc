//! Which events are stored: the `include` / `exclude` variables, in the syntax of
//! `az acr webhook create --scope`.
//!
//! A variable holds patterns separated by commas and/or whitespace. Each pattern is
//! `repository:tag`, where `repository:*` means every tag of the repository and a bare
//! `repository` means `repository:latest` (as `--scope` documents: "'foo' is equivalent to
//! 'foo:latest'"). Both parts may use the wildcards `*` (any run of characters, `/` included,
//! so `team/*:*` covers `team/app` and `team/sub/app`) and `?` (exactly one character).
//! Consequently `*` alone means "the `latest` tag of every repository"; everything is `*:*`.
//!
//! Decisions ([`ScopeFilter::decide`]):
//! - An exclude pattern that matches wins over every include pattern.
//! - No include pattern at all means "everything not excluded".
//! - **Events without a tag** (deletes, which ACR sends by digest, and pushes by digest, whose
//!   tag is empty) are matched only by patterns whose tag part is exactly `*`: such a pattern
//!   says "anything in this repository", while `repo:v1` (or a bare `repo`, i.e.
//!   `repo:latest`) names one tag, and a tagless event cannot be shown to be that tag. An empty
//!   tag counts as no tag.
//! - **Events without a repository** (`ping`, chart events never lack one) match no pattern:
//!   they are kept when there is no include pattern and skipped otherwise. A host that never
//!   stores pings should answer them before consulting the filter.
//!
//! The matcher is the classic two-cursor wildcard match that remembers only the last `*`: it
//! runs in O(pattern × text) steps at worst, so hostile patterns such as `*a*a*a*a*b` against a
//! long name cannot blow up the way backtracking matchers do.

use std::fmt;

use crate::text::printable;

/// Spin variable: repository:tag patterns of the events to store (empty: every event).
pub const VAR_INCLUDE: &str = "include";
/// Spin variable: repository:tag patterns of the events never to store (wins over `include`).
pub const VAR_EXCLUDE: &str = "exclude";

/// The longest pattern accepted, in bytes (a repository name is at most 256 characters in
/// Distribution, a tag at most 128).
pub const MAX_PATTERN_LEN: usize = 512;

/// How many patterns a skip reason lists before it says "and N more".
const REASON_PATTERNS: usize = 5;

/// One `repository:tag` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopePattern {
    repository: Glob,
    tag: Glob,
}

impl ScopePattern {
    /// Parses one pattern: `repo`, `repo:tag` or `repo:*`, with `*` and `?` wildcards.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let pattern = printable(text);
        if text.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong {
                pattern,
                max: MAX_PATTERN_LEN,
            });
        }
        let (repository, tag) = match text.split_once(':') {
            None => (text, "latest"),
            Some((_, tag)) if tag.contains(':') => {
                return Err(PatternError::TooManyColons { pattern })
            }
            Some((repository, tag)) => (repository, tag),
        };
        if repository.is_empty() {
            return Err(PatternError::EmptyRepository { pattern });
        }
        if tag.is_empty() {
            return Err(PatternError::EmptyTag {
                repository: printable(repository),
                pattern,
            });
        }
        if let Some(character) = repository.chars().find(|&c| !is_repository_char(c)) {
            return Err(PatternError::RepositoryCharacter { pattern, character });
        }
        if let Some(character) = tag.chars().find(|&c| !is_tag_char(c)) {
            return Err(PatternError::TagCharacter { pattern, character });
        }
        Ok(Self {
            repository: Glob::new(repository),
            tag: Glob::new(tag),
        })
    }

    /// True when the pattern covers this repository and tag (see the module docs for events
    /// without a tag or repository).
    pub fn matches(&self, repository: Option<&str>, tag: Option<&str>) -> bool {
        let Some(repository) = repository else {
            return false;
        };
        if !self.repository.matches(repository) {
            return false;
        }
        match tag.filter(|t| !t.is_empty()) {
            Some(tag) => self.tag.matches(tag),
            None => self.tag.is_any(),
        }
    }
}

impl fmt::Display for ScopePattern {
    /// The normalised form: always `repository:tag` (`repo` shows as `repo:latest`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository.text, self.tag.text)
    }
}

/// Lower-case letters, digits, the separators of the Distribution repository grammar, and the
/// wildcards. Upper case is refused: repository names are lower case, so such a pattern would
/// silently match nothing.
fn is_repository_char(c: char) -> bool {
    matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-' | '/' | '*' | '?')
}

/// The Distribution tag alphabet (`[A-Za-z0-9_.-]`) and the wildcards.
fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*' | '?')
}

/// Why a pattern is unusable. The pattern is shown (it is configuration, not a secret), with
/// control characters replaced and its length bounded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Nothing before the `:` (or the pattern is only `:tag`).
    #[error("`{pattern}`: the repository is empty (expected `repo`, `repo:tag` or `repo:*`)")]
    EmptyRepository {
        /// The pattern.
        pattern: String,
    },
    /// Nothing after the `:`.
    #[error("`{pattern}`: the tag after `:` is empty (write `{repository}:*` for every tag, or `{repository}` for `{repository}:latest`)")]
    EmptyTag {
        /// The pattern.
        pattern: String,
        /// Its repository part.
        repository: String,
    },
    /// Two or more `:`.
    #[error("`{pattern}`: more than one `:` (expected `repository:tag`; registry host names do not belong in a pattern)")]
    TooManyColons {
        /// The pattern.
        pattern: String,
    },
    /// A character repository names cannot contain.
    #[error("`{pattern}`: `{character}` cannot appear in a repository name (allowed: lower-case letters, digits, `.` `_` `-` `/`, and the wildcards `*` `?`)")]
    RepositoryCharacter {
        /// The pattern.
        pattern: String,
        /// The first offending character.
        character: char,
    },
    /// A character tags cannot contain.
    #[error("`{pattern}`: `{character}` cannot appear in a tag (allowed: letters, digits, `.` `_` `-`, and the wildcards `*` `?`)")]
    TagCharacter {
        /// The pattern.
        pattern: String,
        /// The first offending character.
        character: char,
    },
    /// Longer than [`MAX_PATTERN_LEN`].
    #[error("`{pattern}`: longer than {max} bytes")]
    TooLong {
        /// The beginning of the pattern.
        pattern: String,
        /// The limit.
        max: usize,
    },
}

/// An `include` or `exclude` value is unusable: which variable, and the first bad pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Spin variable `{variable}` is invalid: {error}")]
pub struct FilterError {
    /// [`VAR_INCLUDE`] or [`VAR_EXCLUDE`].
    pub variable: &'static str,
    /// What is wrong with the pattern.
    #[source]
    pub error: PatternError,
}

/// Parses a list of patterns separated by commas and/or whitespace; empty items are ignored,
/// so an empty (or blank) value is an empty list.
pub fn parse_patterns(list: &str) -> Result<Vec<ScopePattern>, PatternError> {
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|item| !item.is_empty())
        .map(ScopePattern::parse)
        .collect()
}

/// The answer for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterDecision {
    /// Store it.
    Keep,
    /// Do not store it (answer 202); `reason` is one line for the log.
    Skip {
        /// Why, naming the pattern(s); untrusted names are shown with control characters
        /// replaced and a bounded length.
        reason: String,
    },
}

/// The parsed `include` and `exclude` variables. The default keeps every event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeFilter {
    include: Vec<ScopePattern>,
    exclude: Vec<ScopePattern>,
}

impl ScopeFilter {
    /// Builds a filter from the two variables' values (`None` or blank: no patterns).
    pub fn from_variables(
        include: Option<&str>,
        exclude: Option<&str>,
    ) -> Result<Self, FilterError> {
        let parse = |value: Option<&str>, variable: &'static str| {
            parse_patterns(value.unwrap_or("")).map_err(|error| FilterError { variable, error })
        };
        Ok(Self {
            include: parse(include, VAR_INCLUDE)?,
            exclude: parse(exclude, VAR_EXCLUDE)?,
        })
    }

    /// A filter from parsed patterns.
    pub fn new(include: Vec<ScopePattern>, exclude: Vec<ScopePattern>) -> Self {
        Self { include, exclude }
    }

    /// True when the filter keeps every event (no pattern at all).
    pub fn keeps_everything(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// The include patterns.
    pub fn include(&self) -> &[ScopePattern] {
        &self.include
    }

    /// The exclude patterns.
    pub fn exclude(&self) -> &[ScopePattern] {
        &self.exclude
    }

    /// Keep or skip an event with this `target.repository` and `target.tag` (an empty tag is
    /// no tag). Exclude wins; no include pattern means everything.
    pub fn decide(&self, repository: Option<&str>, tag: Option<&str>) -> FilterDecision {
        let tag = tag.filter(|t| !t.is_empty());
        if let Some(pattern) = self.exclude.iter().find(|p| p.matches(repository, tag)) {
            return FilterDecision::Skip {
                reason: format!(
                    "{} matches the exclude pattern `{pattern}`",
                    describe(repository, tag)
                ),
            };
        }
        if self.include.is_empty() || self.include.iter().any(|p| p.matches(repository, tag)) {
            return FilterDecision::Keep;
        }
        let why = match (repository, tag) {
            (None, _) => " (include patterns select by repository)",
            (Some(_), None) => " (an event without a tag matches only `repo:*` patterns)",
            (Some(_), Some(_)) => "",
        };
        FilterDecision::Skip {
            reason: format!(
                "{} matches no include pattern{why}; include: {}",
                describe(repository, tag),
                list(&self.include)
            ),
        }
    }
}

/// `repository `r:t``, `repository `r` without a tag`, `an event without a repository`.
fn describe(repository: Option<&str>, tag: Option<&str>) -> String {
    match (repository, tag) {
        (None, _) => "an event without a repository".to_owned(),
        (Some(r), Some(t)) => format!("`{}:{}`", printable(r), printable(t)),
        (Some(r), None) => format!("`{}` (no tag)", printable(r)),
    }
}

fn list(patterns: &[ScopePattern]) -> String {
    let mut out: Vec<String> = patterns
        .iter()
        .take(REASON_PATTERNS)
        .map(|p| format!("`{p}`"))
        .collect();
    if patterns.len() > REASON_PATTERNS {
        out.push(format!("and {} more", patterns.len() - REASON_PATTERNS));
    }
    out.join(", ")
}

/// A wildcard pattern over characters: `*` any run (possibly empty), `?` exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Glob {
    /// As written (for display).
    text: String,
    /// The pattern with runs of `*` collapsed to one.
    chars: Vec<char>,
}

impl Glob {
    fn new(text: &str) -> Self {
        let mut chars: Vec<char> = Vec::with_capacity(text.len());
        for c in text.chars() {
            if !(c == '*' && chars.last() == Some(&'*')) {
                chars.push(c);
            }
        }
        Self {
            text: text.to_owned(),
            chars,
        }
    }

    /// True for `*` alone: matches anything, including "no value".
    fn is_any(&self) -> bool {
        self.chars == ['*']
    }

    fn matches(&self, text: &str) -> bool {
        glob_match(&self.chars, text).0
    }
}

/// Wildcard match without backtracking blow-up: on a mismatch after a `*`, only the most
/// recent `*` absorbs one more character. Earlier stars never need revisiting, because the
/// most recent one can absorb whatever an earlier one would have. Returns the result and the
/// number of steps taken (bounded by (pattern + 1) × (text + 1)), for the tests.
fn glob_match(pattern: &[char], text: &str) -> (bool, usize) {
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0usize, 0usize);
    // Position in the pattern after the last `*`, and where in the text it started matching.
    let mut star: Option<(usize, usize)> = None;
    let mut steps = 0usize;
    while t < text.len() {
        steps += 1;
        match pattern.get(p) {
            Some('*') => {
                star = Some((p + 1, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((after_star, started)) => {
                    p = after_star;
                    t = started + 1;
                    star = Some((after_star, started + 1));
                }
                None => return (false, steps),
            },
        }
    }
    while pattern.get(p) == Some(&'*') {
        p += 1;
    }
    (p == pattern.len(), steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &str, exclude: &str) -> ScopeFilter {
        ScopeFilter::from_variables(Some(include), Some(exclude)).unwrap()
    }

    fn keep(f: &ScopeFilter, repository: Option<&str>, tag: Option<&str>) -> bool {
        f.decide(repository, tag) == FilterDecision::Keep
    }

    fn glob(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).matches(text)
    }

    #[test]
    fn globs() {
        for (pattern, text, want) in [
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("abc", "ab", false),
            ("abc", "abcd", false),
            ("*", "", true),
            ("*", "anything/at/all", true),
            ("a*", "a", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("*c", "c", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "aéc", true),
            ("??", "é/", true),
            ("team/*", "team/app", true),
            ("team/*", "team/sub/app", true),
            ("team/*", "team", false),
            ("*/app", "a/b/app", true),
            ("*a*b", "xaxxb", true),
            ("*a*b", "xbxxa", false),
            ("a**b", "ab", true),
            ("*?", "", false),
            ("*?", "x", true),
            ("v1.*", "v1.2.3", true),
            ("v1.*", "v10", false),
        ] {
            assert_eq!(glob(pattern, text), want, "{pattern} vs {text}");
        }
    }

    #[test]
    fn hostile_patterns_stay_linear_in_each_input() {
        let text = "a".repeat(100_000);
        for pattern in [
            "*a*a*a*a*b",
            "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
            "*?*?*?*b",
        ] {
            let g = Glob::new(pattern);
            let (matched, steps) = glob_match(&g.chars, &text);
            assert!(!matched, "{pattern}");
            let bound = (g.chars.len() + 1) * (text.len() + 1);
            assert!(steps <= bound, "{pattern}: {steps} steps > {bound}");
        }
        // And a match at the very end is still found.
        let text = format!("{}b", "a".repeat(100_000));
        assert!(glob("*a*a*a*a*b", &text));
        // A pattern of many stars collapses.
        assert_eq!(Glob::new("a*****b").chars, ['a', '*', 'b']);
    }

    #[test]
    fn patterns_parse_in_az_acr_scope_syntax() {
        let p = ScopePattern::parse("hello-world").unwrap();
        assert_eq!(
            p.to_string(),
            "hello-world:latest",
            "`repo` means `repo:latest`"
        );
        assert!(p.matches(Some("hello-world"), Some("latest")));
        assert!(!p.matches(Some("hello-world"), Some("v1")));
        let p = ScopePattern::parse("hello-world:*").unwrap();
        assert!(p.matches(Some("hello-world"), Some("v1")));
        assert!(!p.matches(Some("hello-world2"), Some("v1")));
        let p = ScopePattern::parse("helm/word*:5.?").unwrap();
        assert!(p.matches(Some("helm/wordpress"), Some("5.4")));
        assert!(!p.matches(Some("helm/wordpress"), Some("5.40")));
        assert_eq!(
            parse_patterns(" a:*, b:v1\n\tc ,, ").unwrap(),
            vec![
                ScopePattern::parse("a:*").unwrap(),
                ScopePattern::parse("b:v1").unwrap(),
                ScopePattern::parse("c:latest").unwrap(),
            ]
        );
        assert_eq!(parse_patterns("").unwrap(), vec![]);
        assert_eq!(parse_patterns(" , ").unwrap(), vec![]);
    }

    #[test]
    fn pattern_errors_are_precise() {
        let s = String::from;
        assert_eq!(
            ScopePattern::parse(":v1"),
            Err(PatternError::EmptyRepository { pattern: s(":v1") })
        );
        assert_eq!(
            ScopePattern::parse("repo:"),
            Err(PatternError::EmptyTag {
                pattern: s("repo:"),
                repository: s("repo")
            })
        );
        assert!(ScopePattern::parse("repo:")
            .unwrap_err()
            .to_string()
            .contains("`repo:*`"));
        assert_eq!(
            ScopePattern::parse("myregistry.azurecr.io:443/repo:v1"),
            Err(PatternError::TooManyColons {
                pattern: s("myregistry.azurecr.io:443/repo:v1")
            })
        );
        assert_eq!(
            ScopePattern::parse("Hello:v1"),
            Err(PatternError::RepositoryCharacter {
                pattern: s("Hello:v1"),
                character: 'H'
            })
        );
        assert_eq!(
            ScopePattern::parse("repo:v1+build"),
            Err(PatternError::TagCharacter {
                pattern: s("repo:v1+build"),
                character: '+'
            })
        );
        assert_eq!(
            ScopePattern::parse("re\u{1b}po"),
            Err(PatternError::RepositoryCharacter {
                pattern: s("re\u{FFFD}po"),
                character: '\u{1b}'
            })
        );
        let long = "a".repeat(MAX_PATTERN_LEN + 1);
        assert!(matches!(
            ScopePattern::parse(&long),
            Err(PatternError::TooLong { max: MAX_PATTERN_LEN, ref pattern }) if pattern.chars().count() == 65
        ));
        assert_eq!(
            ScopeFilter::from_variables(Some("ok:*"), Some("bad:")),
            Err(FilterError {
                variable: VAR_EXCLUDE,
                error: PatternError::EmptyTag {
                    pattern: s("bad:"),
                    repository: s("bad")
                }
            })
        );
        let err = ScopeFilter::from_variables(Some("A"), None).unwrap_err();
        assert_eq!(err.variable, VAR_INCLUDE);
        assert!(err
            .to_string()
            .starts_with("the Spin variable `include` is invalid: `A`"));
    }

    #[test]
    fn empty_include_keeps_everything_and_exclude_wins() {
        let all = ScopeFilter::default();
        assert!(all.keeps_everything());
        assert!(keep(&all, Some("x"), Some("1")));
        assert!(keep(&all, Some("x"), None));
        assert!(keep(&all, None, None));
        assert_eq!(ScopeFilter::from_variables(None, Some("  ")).unwrap(), all);

        let f = filter("", "scratch/*:*");
        assert!(keep(&f, Some("app"), Some("v1")));
        assert!(!keep(&f, Some("scratch/tmp"), Some("v1")));

        let f = filter("app:*", "app:dev-*");
        assert!(keep(&f, Some("app"), Some("v1")));
        assert_eq!(
            f.decide(Some("app"), Some("dev-42")),
            FilterDecision::Skip {
                reason: "`app:dev-42` matches the exclude pattern `app:dev-*`".into()
            }
        );
        assert_eq!(
            f.decide(Some("other"), Some("v1")),
            FilterDecision::Skip {
                reason: "`other:v1` matches no include pattern; include: `app:*`".into()
            }
        );
    }

    #[test]
    fn events_without_a_tag_match_only_star_tags() {
        let f = filter("app:*, web:v1, api", "");
        // A delete (by digest) in a repository included with `:*` is kept ...
        assert!(keep(&f, Some("app"), None));
        assert!(keep(&f, Some("app"), Some("")), "an empty tag is no tag");
        // ... but not one in a repository included only for a tag.
        assert_eq!(
            f.decide(Some("web"), None),
            FilterDecision::Skip {
                reason: "`web` (no tag) matches no include pattern (an event without a tag matches only `repo:*` patterns); include: `app:*`, `web:v1`, `api:latest`".into()
            }
        );
        assert!(!keep(&f, Some("api"), None));
        assert!(keep(&f, Some("api"), Some("latest")));
        // The same rule for exclude: `repo:*` excludes tagless events, `repo:tag` does not.
        let f = filter("", "app:*, web:v1");
        assert!(!keep(&f, Some("app"), None));
        assert!(keep(&f, Some("web"), None));
        // A tag glob other than `*` needs a tag.
        let f = filter("app:v*", "");
        assert!(!keep(&f, Some("app"), None));
    }

    #[test]
    fn events_without_a_repository() {
        let f = filter("*:*", "");
        assert_eq!(
            f.decide(None, None),
            FilterDecision::Skip {
                reason: "an event without a repository matches no include pattern (include patterns select by repository); include: `*:*`".into()
            }
        );
        assert!(
            keep(&filter("", "*:*"), None, None),
            "exclude needs a repository too"
        );
    }

    #[test]
    fn reasons_are_one_bounded_line() {
        let f = filter("a, b, c, d, e, f, g", "");
        let FilterDecision::Skip { reason } =
            f.decide(Some(&format!("evil\nline{}", "x".repeat(500))), Some("t\r"))
        else {
            panic!("skipped")
        };
        assert!(!reason.contains('\n') && !reason.contains('\r'));
        assert!(reason.len() < 400, "{reason}");
        assert!(reason.ends_with("`e:latest`, and 2 more"), "{reason}");
    }
}

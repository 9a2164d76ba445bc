//! Spin's `{{ name }}` templates, as used in `[component.X.variables]` values and in
//! `allowed_outbound_hosts` entries.
//!
//! A template is literal text with `{{ variable }}` expressions. Whitespace inside the braces
//! is ignored; the name must be a valid Spin variable name. An unclosed `{{` is an error. The
//! syntax is [`spin_manifest_rules::parse_template`]'s (shared with the Spin variables adapter).

use anyhow::{bail, Result};
use spin_manifest_rules::{parse_template, Part};

/// A parsed template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    raw: String,
    parts: Vec<Part<String>>,
}

impl Template {
    /// Parses `raw`, checking that every expression is closed and names a well-formed variable.
    pub fn parse(raw: &str) -> Result<Self> {
        Ok(Self {
            raw: raw.to_string(),
            parts: parse_template(raw)?,
        })
    }

    /// The template text as written in the manifest.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The variable names the template refers to, in order of appearance.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Whether the template is plain text with no expression.
    pub fn is_literal(&self) -> bool {
        self.variables().next().is_none()
    }

    /// Renders the template, looking each variable up with `lookup`.
    ///
    /// Fails naming the first variable `lookup` does not know.
    pub fn render<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> Result<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => match lookup(name) {
                    Some(value) => out.push_str(value),
                    None => bail!(
                        "template {:?} refers to variable {name:?}, which is not defined in [variables]",
                        self.raw
                    ),
                },
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<&'static str> {
        match name {
            "host" => Some("example.com"),
            "port" => Some("8443"),
            _ => None,
        }
    }

    #[test]
    fn literal_text_renders_as_is() {
        let t = Template::parse("https://example.com").unwrap();
        assert!(t.is_literal());
        assert_eq!(t.render(lookup).unwrap(), "https://example.com");
    }

    #[test]
    fn expressions_with_and_without_spaces() {
        let t = Template::parse("https://{{ host }}:{{port}}/").unwrap();
        assert_eq!(t.variables().collect::<Vec<_>>(), ["host", "port"]);
        assert_eq!(t.render(lookup).unwrap(), "https://example.com:8443/");
    }

    #[test]
    fn whole_value_expression() {
        let t = Template::parse("{{ host }}").unwrap();
        assert_eq!(t.render(lookup).unwrap(), "example.com");
        assert_eq!(t.raw(), "{{ host }}");
    }

    #[test]
    fn unclosed_expression_is_an_error() {
        let err = Template::parse("https://{{ host").unwrap_err().to_string();
        assert!(err.contains("unclosed"), "{err}");
    }

    #[test]
    fn invalid_names_are_errors() {
        assert!(Template::parse("{{ Host }}").is_err());
        assert!(Template::parse("{{ }}").is_err());
        assert!(Template::parse("{{ a-b }}").is_err());
    }

    #[test]
    fn unknown_variable_is_named_on_render() {
        let t = Template::parse("{{ nope }}").unwrap();
        let err = t.render(lookup).unwrap_err().to_string();
        assert!(err.contains("\"nope\""), "{err}");
    }

    #[test]
    fn lone_closing_braces_are_literal() {
        let t = Template::parse("a}}b").unwrap();
        assert_eq!(t.render(lookup).unwrap(), "a}}b");
    }
}

//! Spin's rules for the variables spin.toml declares, written once for the two places that
//! apply them: the native host `acr-webhook up` (crates/cli, `manifest.rs` and `template.rs`)
//! and the Spin variables adapter for stock wasi:http hosts (adapters/spin-variables, its
//! lookup at run time and the table its build.rs generates from spin.toml).
//!
//! - [`validate_variable_name`]: what a variable name may be;
//! - [`env_var_name`]: the environment variable that sets one (`SPIN_VARIABLE_<NAME>`);
//! - [`parse_template`]: `{{ name }}` templates, as in `[component.X.variables]` values and
//!   `allowed_outbound_hosts` entries, split into [`Part`]s.
//!
//! No dependencies: the adapter is a wasm component and carries this code.

use std::fmt;

/// The environment variable that sets application variable `name` (Spin's environment
/// provider's rule: `SPIN_VARIABLE_` + the name in upper case).
pub fn env_var_name(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())
}

/// Checks a variable name against Spin's rules: lower-case ASCII letters, digits and single
/// underscores, starting with a letter and not ending with an underscore.
///
/// The error is a sentence naming the problem, suitable for the `invalid-name` error of
/// `fermyon:spin/variables`.
pub fn validate_variable_name(name: &str) -> Result<(), String> {
    let reason = if name.is_empty() {
        "may not be empty".to_string()
    } else if let Some(c) = name
        .chars()
        .find(|c| !(*c == '_' || c.is_ascii_lowercase() || c.is_ascii_digit()))
    {
        format!(
            "invalid character {c:?}; variable names may contain only lower-case letters, digits and underscores"
        )
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        "must start with a lower-case letter".to_string()
    } else if name.ends_with('_') {
        "must end with a lower-case letter or digit".to_string()
    } else if name.contains("__") {
        "must not contain consecutive underscores".to_string()
    } else {
        return Ok(());
    };
    Err(format!("variable name {name:?}: {reason}"))
}

/// Opens a template expression.
const OPEN: &str = "{{";
/// Closes a template expression.
const CLOSE: &str = "}}";

/// One piece of a template: `S` is `String` for a template parsed at run time, `&'static str`
/// for one compiled into a table (the adapter's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<S> {
    /// Text copied as is.
    Literal(S),
    /// `{{ name }}`: the value of the named application variable.
    Variable(S),
}

/// Why [`parse_template`] refused a template; the message quotes the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// A `{{` with no `}}` after it.
    Unclosed {
        /// The template as written.
        template: String,
    },
    /// An expression whose name breaks [`validate_variable_name`].
    InvalidName {
        /// The template as written.
        template: String,
        /// [`validate_variable_name`]'s sentence.
        reason: String,
    },
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unclosed { template } => {
                write!(f, "template {template:?} has an unclosed '{OPEN}'")
            }
            Self::InvalidName { template, reason } => write!(f, "template {template:?}: {reason}"),
        }
    }
}

impl std::error::Error for TemplateError {}

/// Splits `text {{ name }} text` into literal and variable parts (Spin's template syntax).
///
/// Whitespace inside the braces is ignored; the name must be a valid variable name. A `}}`
/// outside an expression is literal text.
pub fn parse_template(template: &str) -> Result<Vec<Part<String>>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find(OPEN) {
        if start > 0 {
            parts.push(Part::Literal(rest[..start].to_string()));
        }
        let after_open = &rest[start + OPEN.len()..];
        let Some(end) = after_open.find(CLOSE) else {
            return Err(TemplateError::Unclosed {
                template: template.to_string(),
            });
        };
        let name = after_open[..end].trim();
        validate_variable_name(name).map_err(|reason| TemplateError::InvalidName {
            template: template.to_string(),
            reason,
        })?;
        parts.push(Part::Variable(name.to_string()));
        rest = &after_open[end + CLOSE.len()..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest.to_string()));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(s: &str) -> Part<String> {
        Part::Literal(s.to_string())
    }

    fn variable(s: &str) -> Part<String> {
        Part::Variable(s.to_string())
    }

    #[test]
    fn variable_name_rules() {
        for ok in ["a", "cosmos_key", "a1", "a_1_b"] {
            assert!(validate_variable_name(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "may not be empty"),
            ("A", "invalid character 'A'"),
            ("1a", "must start with a lower-case letter"),
            ("_a", "must start with a lower-case letter"),
            ("a_", "must end with a lower-case letter or digit"),
            ("a__b", "must not contain consecutive underscores"),
            ("a-b", "invalid character '-'"),
            ("a.b", "invalid character '.'"),
            ("é", "invalid character 'é'"),
        ] {
            let err = validate_variable_name(bad).unwrap_err();
            assert!(
                err.starts_with(&format!("variable name {bad:?}: ")),
                "{err}"
            );
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn env_names_are_the_prefix_and_the_name_upper_cased() {
        assert_eq!(env_var_name("cosmos_key"), "SPIN_VARIABLE_COSMOS_KEY");
    }

    #[test]
    fn templates_split_into_literals_and_variables() {
        assert_eq!(
            parse_template("https://{{ host }}:{{port}}/").unwrap(),
            [
                literal("https://"),
                variable("host"),
                literal(":"),
                variable("port"),
                literal("/")
            ]
        );
        assert_eq!(parse_template("{{ host }}").unwrap(), [variable("host")]);
        assert_eq!(parse_template("plain").unwrap(), [literal("plain")]);
        assert_eq!(parse_template("").unwrap(), []);
        assert_eq!(parse_template("a}}b").unwrap(), [literal("a}}b")]);
    }

    #[test]
    fn template_errors_quote_the_template() {
        assert_eq!(
            parse_template("https://{{ host").unwrap_err().to_string(),
            "template \"https://{{ host\" has an unclosed '{{'"
        );
        assert_eq!(
            parse_template("{{ }}").unwrap_err().to_string(),
            "template \"{{ }}\": variable name \"\": may not be empty"
        );
        assert!(matches!(
            parse_template("{{ a-b }}"),
            Err(TemplateError::InvalidName { .. })
        ));
    }
}

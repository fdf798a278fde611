//! A deliberately tiny template language for `RequestContext::render`.
//!
//! It is a small subset of Tornado's template syntax, with no expressions:
//!
//! | syntax            | output                                              |
//! |-------------------|-----------------------------------------------------|
//! | `{{ name }}`      | the value of `name`, HTML-escaped                   |
//! | `{% raw name %}`  | the value of `name`, unescaped                      |
//! | `{# comment #}`   | nothing                                             |
//! | `{{!`, `{%!`, `{#!` | the literal `{{`, `{%`, `{#` (Tornado's escape)   |
//!
//! A variable the caller did not pass, an unknown `{% .. %}` directive or an
//! unclosed tag is an error (the request is answered 500), as Tornado raises
//! on an undefined name.

use std::fmt;

use crate::http::html_escape;

/// Why a template could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateError {
    /// A `{{`, `{%` or `{#` without its closing tag; the byte offset.
    Unclosed(usize),
    /// A `{% .. %}` directive other than `raw`, or a malformed tag.
    BadTag(String),
    /// `render` was not given a value for this variable.
    Undefined(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Unclosed(at) => write!(f, "unclosed tag at byte {at}"),
            TemplateError::BadTag(tag) => write!(f, "unsupported tag {tag:?}"),
            TemplateError::Undefined(name) => write!(f, "undefined variable {name:?}"),
        }
    }
}

impl std::error::Error for TemplateError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var { name: String, escape: bool },
}

/// A parsed template, ready to render many times.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '-')
}

impl Template {
    /// Parses `src`.
    ///
    /// # Errors
    /// [`TemplateError::Unclosed`] or [`TemplateError::BadTag`].
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = src;
        while let Some(open) = rest.find('{') {
            let kind = rest[open + 1..].chars().next();
            let close = match kind {
                Some('{') => "}}",
                Some('%') => "%}",
                Some('#') => "#}",
                _ => {
                    text.push_str(&rest[..open + 1]);
                    rest = &rest[open + 1..];
                    continue;
                }
            };
            text.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            if let Some(lit) = after.strip_prefix('!') {
                text.push_str(&rest[open..open + 2]);
                rest = lit;
                continue;
            }
            let end = after
                .find(close)
                .ok_or(TemplateError::Unclosed(src.len() - rest.len() + open))?;
            let inner = after[..end].trim();
            rest = &after[end + 2..];
            let var = match kind {
                Some('{') if is_name(inner) => Part::Var {
                    name: inner.to_string(),
                    escape: true,
                },
                Some('%') => match inner.split_once(char::is_whitespace) {
                    Some(("raw", name)) if is_name(name.trim()) => Part::Var {
                        name: name.trim().to_string(),
                        escape: false,
                    },
                    _ => return Err(TemplateError::BadTag(inner.to_string())),
                },
                Some('#') => continue,
                _ => return Err(TemplateError::BadTag(inner.to_string())),
            };
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(var);
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { parts })
    }

    /// Renders with `vars` (`(name, value)`; the first pair with a name wins).
    ///
    /// # Errors
    /// [`TemplateError::Undefined`] for a variable missing from `vars`.
    pub fn render(&self, vars: &[(&str, &str)]) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var { name, escape } => {
                    let value = vars
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| *v)
                        .ok_or_else(|| TemplateError::Undefined(name.clone()))?;
                    if *escape {
                        out.push_str(&html_escape(value));
                    } else {
                        out.push_str(value);
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, vars: &[(&str, &str)]) -> Result<String, TemplateError> {
        Template::parse(src)?.render(vars)
    }

    #[test]
    fn substitutes_and_escapes() {
        let vars = [("name", "<b>\"Tom\" & 'Jerry'</b>"), ("n", "1")];
        assert_eq!(
            render("Hi {{ name }}! {{n}}", &vars).unwrap(),
            "Hi &lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt;! 1"
        );
        assert_eq!(
            render("{% raw name %}", &vars).unwrap(),
            "<b>\"Tom\" & 'Jerry'</b>"
        );
        assert_eq!(render("a{# gone #}b", &vars).unwrap(), "ab");
        assert_eq!(
            render("{{! x }} {%! y %} {a}", &vars).unwrap(),
            "{{ x }} {% y %} {a}"
        );
        assert_eq!(render("{", &vars).unwrap(), "{");
        assert_eq!(render("", &vars).unwrap(), "");
    }

    #[test]
    fn errors() {
        assert_eq!(
            render("x {{ name", &[]).unwrap_err(),
            TemplateError::Unclosed(2)
        );
        assert_eq!(
            render("{% for x in y %}", &[]).unwrap_err(),
            TemplateError::BadTag("for x in y".into())
        );
        assert_eq!(
            render("{{ a + b }}", &[]).unwrap_err(),
            TemplateError::BadTag("a + b".into())
        );
        assert_eq!(
            render("{{ who }}", &[("name", "x")]).unwrap_err(),
            TemplateError::Undefined("who".into())
        );
    }
}

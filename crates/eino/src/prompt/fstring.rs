//! Python-style `{var}` formatting (the subset prompt templates use).

use serde_json::Value;

use crate::error::{Error, Result};
use crate::schema::Map;

/// Replace each `{name}` in `template` with `vars[name]` (strings as-is, other values as
/// JSON). `{{` and `}}` are literal braces. A missing variable, an empty or unclosed `{`, or a
/// lone `}` is an [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error.
///
/// ```
/// use eino::prompt::format_fstring;
/// let mut vars = eino::schema::Map::new();
/// vars.insert("location".into(), "beijing".into());
/// assert_eq!(format_fstring("what's the weather in {location}? {{ok}}", &vars).unwrap(),
///            "what's the weather in beijing? {ok}");
/// assert!(format_fstring("{missing}", &vars).is_err());
/// ```
pub fn format_fstring(template: &str, vars: &Map) -> Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if matches!(chars.peek(), Some((_, '{'))) => {
                chars.next();
                out.push('{');
            }
            '}' if matches!(chars.peek(), Some((_, '}'))) => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let rest = &template[i + 1..];
                let Some(end) = rest.find('}') else {
                    return Err(Error::invalid_input(format!(
                        "unclosed '{{' at byte {i} in template"
                    )));
                };
                let name = rest[..end].trim();
                // `{name:spec}` / `{name!r}`: the spec is accepted but ignored.
                let name = name.split([':', '!']).next().unwrap_or("").trim();
                if name.is_empty() {
                    return Err(Error::invalid_input(
                        "empty '{}' in template: positional arguments are not supported",
                    ));
                }
                match vars.get(name) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(v) => out.push_str(&v.to_string()),
                    None => {
                        return Err(Error::invalid_input(format!(
                            "template variable '{name}' not found"
                        )))
                    }
                }
                let close = i + 1 + end;
                while chars.next_if(|&(j, _)| j <= close).is_some() {}
            }
            '}' => {
                return Err(Error::invalid_input(format!(
                    "single '}}' at byte {i} in template"
                )))
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Text without braces is returned unchanged.
        #[test]
        fn plain_text_roundtrips(s in "[^{}]*") {
            prop_assert_eq!(format_fstring(&s, &Map::new()).unwrap(), s);
        }

        /// Escaped braces never fail and produce single braces.
        #[test]
        fn escapes(s in "[a-z{}]*") {
            let escaped = s.replace('{', "{{").replace('}', "}}");
            prop_assert_eq!(format_fstring(&escaped, &Map::new()).unwrap(), s);
        }

        /// Arbitrary input never panics.
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = format_fstring(&s, &Map::new());
        }
    }

    #[test]
    fn non_string_values_as_json() {
        let mut v = Map::new();
        v.insert("n".into(), 3.into());
        assert_eq!(format_fstring("{n} items", &v).unwrap(), "3 items");
    }
}

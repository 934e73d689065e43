//! Just enough of man(7) roff to read the man-pages corpus as plain text: the NAME line
//! becomes the query, the other sections the document. Not a roff implementation
//! (no registers, conditionals or tables); fine for ranking text.

/// One man page: its names, the one-line description from NAME, and the rest as text.
pub struct Page {
    pub description: String,
    pub body: String,
}

/// Parse a page; `None` for an include-only alias page or one without a NAME line.
pub fn parse(src: &str) -> Option<Page> {
    let mut section = String::new();
    let mut name = String::new();
    let mut body = String::new();
    for line in src.lines() {
        if line.starts_with(".so ") {
            return None;
        }
        if line.starts_with(".\\\"") || line.starts_with("'\\\"") || line.starts_with("\\\"") {
            continue;
        }
        let text = if let Some(rest) = line.strip_prefix('.') {
            let (mac, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            match mac {
                "SH" => {
                    section = unquote(args).to_uppercase();
                    if section != "NAME" {
                        body.push_str("\n\n");
                        body.push_str(&section);
                        body.push('\n');
                    }
                    continue;
                }
                "SS" => format!("\n{}\n", unquote(args)),
                // Font macros: the words, in alternating fonts, no spaces in between.
                "BR" | "RB" | "IR" | "RI" | "BI" | "IB" => args_of(args).concat(),
                "B" | "I" | "SM" | "SB" => args_of(args).join(" "),
                "IP" | "TP" | "TQ" => args_of(args).first().cloned().unwrap_or_default(),
                _ => continue,
            }
        } else {
            line.to_string()
        };
        let text = escapes(&text);
        if section == "NAME" {
            name.push_str(&text);
            name.push(' ');
        } else {
            body.push_str(&text);
            body.push('\n');
        }
    }
    let (_, description) = name.split_once(" - ")?;
    let description = description.split_whitespace().collect::<Vec<_>>().join(" ");
    (!description.is_empty()).then_some(Page {
        description,
        body: body.trim().to_string(),
    })
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('"').to_string()
}

/// Macro arguments: words, or "quoted strings".
fn args_of(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Inline escapes: fonts dropped, the common special characters spelt out.
fn escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('f') => {
                // \fB, \fI, \fR, \fP, \f(CW, \f[...]
                match chars.next() {
                    Some('(') => {
                        chars.next();
                        chars.next();
                    }
                    Some('[') => while chars.next().is_some_and(|c| c != ']') {},
                    _ => {}
                }
            }
            Some('(') => {
                let code: String = [chars.next(), chars.next()].into_iter().flatten().collect();
                out.push_str(special(&code));
            }
            Some('[') => {
                let mut code = String::new();
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    code.push(c);
                }
                out.push_str(special(&code));
            }
            Some('*') => match chars.next() {
                Some('(') => {
                    chars.next();
                    chars.next();
                }
                Some('[') => while chars.next().is_some_and(|c| c != ']') {},
                _ => {}
            },
            Some('-') => out.push('-'),
            Some('e') | Some('\\') => out.push('\\'),
            Some(' ') | Some('~') | Some('0') => out.push(' '),
            Some('&') | Some('|') | Some('^') | Some('c') | Some(':') | Some(',') | Some('/') => {}
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn special(code: &str) -> &'static str {
    match code {
        "aq" => "'",
        "dq" => "\"",
        "em" | "en" => "-",
        "lq" | "rq" => "\"",
        "oq" | "cq" => "'",
        "bu" => "*",
        "ti" => "~",
        "ha" => "^",
        "rs" => "\\",
        "mu" => "x",
        "<=" => "<=",
        ">=" => ">=",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_a_page() {
        let src = ".TH read 2\n.SH NAME\nread \\- read from a file descriptor\n.SH DESCRIPTION\n.BR read ()\nattempts to read \\fIcount\\fP bytes.\n";
        let p = super::parse(src).unwrap();
        assert_eq!(p.description, "read from a file descriptor");
        assert_eq!(p.body, "DESCRIPTION\nread()\nattempts to read count bytes.");
        assert!(super::parse(".so man2/read.2\n").is_none());
    }
}

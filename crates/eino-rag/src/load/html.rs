//! HTML to text: the main content (`<main>`, else `<article>`, else `<body>`), without
//! scripts, styles and page chrome, with block elements on their own lines.

use scraper::{ElementRef, Html, Node, Selector};

pub(super) struct Page {
    pub text: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub language: Option<String>,
}

/// Elements whose text is never content.
const SKIP: &[&str] = &[
    "script", "style", "noscript", "template", "nav", "header", "footer", "aside", "svg", "iframe",
    "form", "button",
];
/// Elements that start a new line.
const BLOCK: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "blockquote",
    "table",
    "tr",
    "dd",
    "dt",
    "hr",
    "figcaption",
];

fn select<'a>(doc: &'a Html, css: &str) -> Option<ElementRef<'a>> {
    // The selectors are constants of this file; a parse failure is a bug caught by tests.
    let sel = Selector::parse(css).ok()?;
    doc.select(&sel).next()
}

fn clean(s: &str) -> Option<String> {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    (!s.is_empty()).then_some(s)
}

pub(super) fn extract(html: &str) -> Page {
    let doc = Html::parse_document(html);
    let title = select(&doc, "title").and_then(|t| clean(&t.text().collect::<String>()));
    let description = select(&doc, r#"meta[name="description"]"#)
        .and_then(|m| m.value().attr("content"))
        .and_then(clean);
    let language = select(&doc, "html")
        .and_then(|h| h.value().attr("lang"))
        .and_then(clean);
    let root = select(&doc, "main")
        .or_else(|| select(&doc, "article"))
        .or_else(|| select(&doc, "body"))
        .unwrap_or_else(|| doc.root_element());
    let mut out = String::new();
    walk(root, &mut out);
    let text = out.lines().filter_map(clean).collect::<Vec<_>>().join("\n");
    Page {
        text,
        title,
        description,
        language,
    }
}

fn walk(el: ElementRef<'_>, out: &mut String) {
    for child in el.children() {
        match child.value() {
            Node::Text(t) => out.push_str(t),
            Node::Element(e) => {
                let name = e.name();
                if SKIP.contains(&name) {
                    continue;
                }
                let block = BLOCK.contains(&name);
                if block {
                    out.push('\n');
                }
                if let Some(child) = ElementRef::wrap(child) {
                    walk(child, out);
                }
                if block {
                    out.push('\n');
                } else if matches!(name, "td" | "th") {
                    // Cells next to each other (`<td>a</td><td>b</td>`) must not glue words.
                    out.push(' ');
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_text_and_metadata() {
        let page = extract(
            r#"<!doctype html><html lang="de"><head><title> Die  Seite </title>
            <meta name="description" content="Kurz."><style>p{}</style></head>
            <body><nav>Menu</nav><main><h1>Titel</h1><p>Erster <b>Absatz</b>.</p>
            <script>alert(1)</script><ul><li>a</li><li>b</li></ul></main>
            <footer>(c)</footer></body></html>"#,
        );
        assert_eq!(page.title.as_deref(), Some("Die Seite"));
        assert_eq!(page.description.as_deref(), Some("Kurz."));
        assert_eq!(page.language.as_deref(), Some("de"));
        assert_eq!(page.text, "Titel\nErster Absatz.\na\nb");
    }

    #[test]
    fn fragments_and_broken_markup_still_give_text() {
        let page = extract("<p>one<p>two <i>three");
        assert_eq!(page.text, "one\ntwo three");
        assert_eq!(page.title, None);
    }
}

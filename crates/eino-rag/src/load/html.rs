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
    let root = main_root(&doc);
    let mut w = Walker::default();
    walk(root, &mut w);
    let text = tidy(&w.text);
    Page {
        text,
        title,
        description,
        language,
    }
}

/// A run of the page's main text under one heading path.
pub(crate) struct Section {
    /// The headings above the text, outermost first.
    pub headers: Vec<String>,
    /// The text, one line per block, the heading itself first.
    pub text: String,
}

/// The main content of `html` cut at every `<h1>`–`<h6>`, with each part's heading path
/// (the HTML-header splitter's input).
pub(crate) fn sections(html: &str) -> Vec<Section> {
    let doc = Html::parse_document(html);
    let root = main_root(&doc);
    let mut w = Walker {
        split: true,
        ..Walker::default()
    };
    walk(root, &mut w);
    w.flush();
    w.sections
}

fn main_root(doc: &Html) -> ElementRef<'_> {
    select(doc, "main")
        .or_else(|| select(doc, "article"))
        .or_else(|| select(doc, "body"))
        .unwrap_or_else(|| doc.root_element())
}

fn tidy(text: &str) -> String {
    text.lines()
        .filter_map(clean)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text collected so far; with `split`, headings also close a [`Section`].
#[derive(Default)]
struct Walker {
    text: String,
    split: bool,
    path: Vec<(usize, String)>,
    sections: Vec<Section>,
}

impl Walker {
    fn flush(&mut self) {
        let text = tidy(&std::mem::take(&mut self.text));
        if !text.is_empty() {
            let headers = self.path.iter().map(|(_, t)| t.clone()).collect();
            self.sections.push(Section { headers, text });
        }
    }

    fn heading(&mut self, level: usize, el: ElementRef<'_>) {
        self.flush();
        let title = clean(&el.text().collect::<String>()).unwrap_or_default();
        self.path.retain(|(l, _)| *l < level);
        self.path.push((level, title.clone()));
        self.text.push_str(&title);
        self.text.push('\n');
    }
}

fn heading_level(name: &str) -> Option<usize> {
    match name.as_bytes() {
        [b'h', d @ b'1'..=b'6'] => Some(usize::from(d - b'0')),
        _ => None,
    }
}

fn walk(el: ElementRef<'_>, w: &mut Walker) {
    for child in el.children() {
        match child.value() {
            Node::Text(t) => w.text.push_str(t),
            Node::Element(e) => {
                let name = e.name();
                if SKIP.contains(&name) {
                    continue;
                }
                let Some(child) = ElementRef::wrap(child) else {
                    continue;
                };
                if let (true, Some(level)) = (w.split, heading_level(name)) {
                    w.heading(level, child);
                    continue;
                }
                let block = BLOCK.contains(&name);
                if block {
                    w.text.push('\n');
                }
                walk(child, w);
                if block {
                    w.text.push('\n');
                } else if matches!(name, "td" | "th") {
                    // Cells next to each other (`<td>a</td><td>b</td>`) must not glue words.
                    w.text.push(' ');
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

    #[test]
    fn sections_carry_their_heading_path() {
        let got = sections(
            "<body><p>Intro</p><h1>A</h1><p>a1</p><h2>A.1</h2><p>x</p>\
             <h2>A.2</h2><div>y</div><h1>B</h1>b<script>s</script></body>",
        );
        let got: Vec<(Vec<String>, String)> =
            got.into_iter().map(|s| (s.headers, s.text)).collect();
        let want = |h: &[&str], t: &str| (h.iter().map(|s| s.to_string()).collect(), t.into());
        assert_eq!(
            got,
            vec![
                want(&[], "Intro"),
                want(&["A"], "A\na1"),
                want(&["A", "A.1"], "A.1\nx"),
                want(&["A", "A.2"], "A.2\ny"),
                want(&["B"], "B\nb"),
            ]
        );
    }
}

//! Loaders and parsers on the checked-in fixtures (tests/fixtures/docs), broken files included.

use std::path::{Path, PathBuf};

use eino::component::{LoadOptions, Loader, Source};
use eino::ErrorKind;
use eino_rag::load::{keys, DirLoader, FileLoader, ParseOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docs")
}

async fn load(name: &str) -> eino::Result<Vec<eino::schema::Document>> {
    let path = fixtures().join(name);
    FileLoader::new()
        .load(
            &Source::new(path.to_str().unwrap()),
            &LoadOptions::default(),
        )
        .await
}

#[tokio::test]
async fn markdown_and_text_keep_their_content() {
    let md = load("rust.md").await.unwrap();
    assert!(md[0].content.starts_with("# Rust\n"));
    assert_eq!(md[0].metadata[keys::FORMAT], "markdown");
    assert!(md[0].metadata[keys::SOURCE]
        .as_str()
        .unwrap()
        .ends_with("rust.md"));
    let txt = load("plain.txt").await.unwrap();
    assert_eq!(txt[0].metadata[keys::FORMAT], "text");
    assert!(txt[0].content.contains("Eiffel Tower"));
}

#[tokio::test]
async fn html_gives_main_text_and_page_metadata() {
    let page = load("nested/page.html").await.unwrap().remove(0);
    assert_eq!(
        page.content,
        "Berlin\nBerlin is the capital of Germany & its largest city.\n\
         The Brandenburg Gate was built in the 18th century."
    );
    assert_eq!(page.metadata[keys::TITLE], "Berlin travel notes");
    assert_eq!(
        page.metadata[keys::DESCRIPTION],
        "Short notes about Berlin."
    );
    assert_eq!(page.metadata[keys::LANGUAGE], "en");
    let broken = load("nested/broken.html").await.unwrap().remove(0);
    assert_eq!(broken.content, "Text survives broken markup");
}

#[tokio::test]
async fn docx_paragraphs_runs_entities_and_tabs() {
    let doc = load("report.docx").await.unwrap().remove(0);
    assert_eq!(
        doc.content,
        "Quarterly report\nRevenue grew 12% in Q3 & costs fell.\nName\tValue"
    );
    assert_eq!(doc.metadata[keys::FORMAT], "docx");
}

#[tokio::test]
async fn broken_files_give_typed_errors_naming_the_file() {
    for (name, says) in [
        ("truncated.docx", "corrupted DOCX"),
        ("blob.bin", "unsupported file"),
        ("missing.txt", "cannot read"),
    ] {
        let err = load(name).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}: {err}");
        assert!(err.message().contains(name), "{name}: {err}");
        assert!(err.message().contains(says), "{name}: {err}");
    }
    // A .txt file that is not UTF-8 is named too.
    let err = load("invalid-utf8.txt").await.unwrap_err();
    assert!(err.message().contains("invalid-utf8.txt") && err.message().contains("UTF-8"));
    let err = FileLoader::new()
        .with_max_bytes(10)
        .load_path(&fixtures().join("rust.md"), "rust.md")
        .await
        .unwrap_err();
    assert!(err.message().contains("limit"), "{err}");
}

#[tokio::test]
async fn a_directory_loads_around_bad_files_and_reports_them() {
    let report = DirLoader::new().load_dir(&fixtures()).await.unwrap();
    let mut loaded: Vec<String> = report
        .documents
        .iter()
        .map(|d| {
            let s = d.metadata[keys::SOURCE].as_str().unwrap();
            Path::new(s)
                .strip_prefix(fixtures())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    loaded.sort();
    assert_eq!(
        loaded,
        [
            "nested/broken.html",
            "nested/page.html",
            "plain.txt",
            "report.docx",
            "rust.md"
        ]
    );
    let mut failed: Vec<String> = report
        .errors
        .iter()
        .map(|e| e.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    failed.sort();
    assert_eq!(failed, ["blob.bin", "invalid-utf8.txt", "truncated.docx"]);
    assert_eq!(report.skipped, 1, "the hidden directory is skipped");
}

#[tokio::test]
async fn include_and_exclude_globs() {
    let report = DirLoader::new()
        .include("**/*.html")
        .unwrap()
        .exclude("**/broken.*")
        .unwrap()
        .load_dir(&fixtures())
        .await
        .unwrap();
    assert_eq!(report.documents.len(), 1);
    assert!(report.errors.is_empty());
    let err = DirLoader::new().include("a[").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = DirLoader::new()
        .load_dir(&fixtures().join("plain.txt"))
        .await
        .unwrap_err();
    assert!(err.message().contains("not a readable directory"));
}

fn pdf_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pdf")
        .join(name)
}

#[tokio::test]
async fn pdf_gives_its_text_as_one_document_or_one_per_page() {
    let path = pdf_fixture("tides.pdf");
    let source = path.to_str().unwrap();
    let whole = FileLoader::new().load_path(&path, source).await.unwrap();
    assert_eq!(whole.len(), 1);
    assert_eq!(whole[0].metadata[keys::FORMAT], "pdf");
    assert_eq!(whole[0].metadata[keys::PAGES], 2);
    assert!(
        whole[0]
            .content
            .contains("High water is at dawn on Mondays."),
        "{}",
        whole[0].content
    );
    assert!(
        whole[0].content.contains("\u{c}"),
        "pages are separated by a form feed"
    );

    let pages = FileLoader::new()
        .with_parse_options(ParseOptions::default().with_pdf_per_page(true))
        .load_path(&path, source)
        .await
        .unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[1].id, format!("{source}#page2"));
    assert_eq!(pages[1].metadata[keys::PAGE], 2);
    assert_eq!(pages[1].metadata[keys::SOURCE], source);
    assert!(pages[0].content.contains("Tide tables for the harbour."));
    assert!(!pages[0].content.contains("lighthouse"));
    assert!(pages[1].content.contains("lighthouse keeper"));
}

#[tokio::test]
async fn broken_pdfs_are_typed_errors_and_do_not_stop_the_directory() {
    for name in ["truncated.pdf", "not-a-pdf.pdf"] {
        let path = pdf_fixture(name);
        let err = FileLoader::new().load_path(&path, name).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}");
        assert!(err.message().starts_with(name), "{}", err.message());
    }
    let report = DirLoader::new().load_dir(&pdf_fixture("")).await.unwrap();
    assert_eq!(report.documents.len(), 1);
    assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
}

#[tokio::test]
async fn html_kept_as_markup_splits_at_its_headings() {
    let path = fixtures().join("nested/page.html");
    let page = FileLoader::new()
        .with_parse_options(ParseOptions::default().with_html_markup(true))
        .load_path(&path, "page.html")
        .await
        .unwrap()
        .remove(0);
    assert!(page.content.contains("<h1"), "markup kept");
    assert_eq!(page.metadata[keys::TITLE], "Berlin travel notes");
    let chunks = eino_rag::HtmlHeaderSplitter::new(60).split(&page).unwrap();
    assert!(chunks.len() >= 2, "{chunks:?}");
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c.id, format!("page.html#{i}"));
        assert_eq!(c.metadata["headers"], serde_json::json!(["Berlin"]));
        assert_eq!(c.metadata[keys::TITLE], "Berlin travel notes");
        assert!(c.content.chars().count() <= 60, "{}", c.content);
        assert!(!c.content.contains('<'), "{}", c.content);
    }
    assert!(chunks
        .iter()
        .any(|c| c.content.contains("Brandenburg Gate")));
}

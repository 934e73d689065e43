//! PDF to text with `pdf-extract` (pure Rust, on lopdf), one string per page.

use eino::{Error, ErrorKind, Result};

fn corrupt(source: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{source}: corrupted or unsupported PDF ({why})"),
    )
}

/// The text of every page, in order. Encrypted, truncated or otherwise unreadable files
/// are a typed error naming `source`.
pub(super) fn pages(bytes: &[u8], source: &str) -> Result<Vec<String>> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(corrupt(source, "no %PDF- header"));
    }
    // pdf-extract panics on some malformed inputs (unwraps deep in font and content-stream
    // decoding); a bad upload must be an error for that file, never a crashed worker.
    let result = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(bytes));
    let pages = match result {
        Ok(Ok(pages)) => pages,
        Ok(Err(e)) => return Err(corrupt(source, e)),
        Err(_) => return Err(corrupt(source, "the PDF parser could not decode it")),
    };
    Ok(pages.into_iter().map(|p| tidy(&p)).collect())
}

/// pdf-extract lays text out with the page's spacing: runs of blank lines and trailing
/// spaces that carry no meaning for retrieval. Keep one line per text line.
fn tidy(page: &str) -> String {
    page.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_truncation_are_typed_errors() {
        for bytes in [&b"hello"[..], b"%PDF-1.4\n1 0 obj\n<< /Type", b""] {
            let err = pages(bytes, "x.pdf").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.message().starts_with("x.pdf: "), "{}", err.message());
        }
    }

    #[test]
    fn tidy_drops_layout_blank_lines() {
        assert_eq!(tidy("\n\n  a  \n\n\nb\n   \n"), "  a\nb");
    }
}

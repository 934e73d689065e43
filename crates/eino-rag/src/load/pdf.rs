//! PDF to text with `pdf-extract` (pure Rust, on lopdf), one string per page.
//!
//! A PDF's streams are compressed, and a small file can inflate without bound (a
//! "decompression bomb"). Before any text is extracted, every stream is inflated once
//! into nothing but a byte count, against one budget for the whole document
//! ([`ParseOptions::max_inflated_bytes`]): lopdf hands each object to a filter while it
//! loads the file, before it expands object streams, so a bomb is refused before it is
//! ever held in memory. Text is then extracted page by page, with the parse-time limit
//! ([`ParseOptions::max_parse_time`]) checked between pages.

use std::cell::Cell;
use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use eino::{Error, ErrorKind, Result};
use pdf_extract::{Document, LoadOptions, Object, ObjectId, Stream};

use super::ParseOptions;

fn corrupt(source: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{source}: corrupted or unsupported PDF ({why})"),
    )
}

thread_local! {
    /// Bytes the document being loaded on this thread may still inflate to; `None` while
    /// no load is screened. lopdf's filter is a plain `fn`, so it finds its budget here
    /// (the load runs on the calling thread: lopdf's `rayon` feature is off).
    static BUDGET: Cell<Option<u64>> = const { Cell::new(None) };
    /// Set when a stream went past the budget.
    static OVER: Cell<bool> = const { Cell::new(false) };
}

/// The text of every page, in order. Encrypted, truncated or otherwise unreadable files,
/// and files past the options' limits, are a typed error naming `source`.
pub(super) fn pages(bytes: &[u8], source: &str, options: &ParseOptions) -> Result<Vec<String>> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(corrupt(source, "no %PDF- header"));
    }
    let started = Instant::now();
    let limit = options.max_inflated_bytes;
    BUDGET.with(|b| b.set(Some(limit)));
    OVER.with(|o| o.set(false));
    let load = LoadOptions {
        filter: Some(screen),
        ..LoadOptions::default()
    };
    // pdf-extract and lopdf panic on some malformed inputs (unwraps deep in font and
    // content-stream decoding); a bad upload must be an error for that file, never a
    // crashed worker.
    let loaded = std::panic::catch_unwind(|| Document::load_mem_with_options(bytes, load));
    BUDGET.with(|b| b.set(None));
    if OVER.with(|o| o.replace(false)) {
        return Err(Error::invalid_input(format!(
            "{source}: the PDF inflates to more than {limit} bytes (limits.max_document_inflated_bytes)"
        )));
    }
    let doc = match loaded {
        Ok(Ok(doc)) => doc,
        Ok(Err(e)) => return Err(corrupt(source, e)),
        Err(_) => return Err(corrupt(source, "the PDF parser could not decode it")),
    };
    if doc.is_encrypted() {
        // Decrypting expands object streams outside the screened load: refused, not
        // half-checked.
        return Err(Error::invalid_input(format!(
            "{source}: encrypted PDF; save an unencrypted copy and upload that"
        )));
    }
    let mut out = Vec::new();
    for page in doc.get_pages().into_keys() {
        if let Some(max) = options.max_parse_time {
            if started.elapsed() > max {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "{source}: parsing took longer than {} s (at page {page})",
                        max.as_secs_f64()
                    ),
                ));
            }
        }
        let text = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut s = String::new();
            let mut dev = pdf_extract::PlainTextOutput::new(&mut s);
            pdf_extract::output_doc_page(&doc, &mut dev, page).map(|()| s)
        }));
        match text {
            Ok(Ok(s)) => out.push(tidy(&s)),
            // As pdf-extract does: the pages before an unreadable one are the text.
            Ok(Err(_)) | Err(_) => break,
        }
    }
    Ok(out)
}

/// lopdf's load filter: counts what each stream inflates to against [`BUDGET`]; past it,
/// marks [`OVER`] and drops the stream (so lopdf never inflates it).
fn screen(id: ObjectId, object: &mut Object) -> Option<(ObjectId, Object)> {
    let Object::Stream(stream) = object else {
        // Objects inside object streams are taken from what this returns.
        return Some((id, object.clone()));
    };
    let Some(left) = BUDGET.with(Cell::get) else {
        return Some((id, Object::Null));
    };
    let used = inflated_size(stream, left);
    if used > left {
        OVER.with(|o| o.set(true));
        BUDGET.with(|b| b.set(Some(0)));
        return None;
    }
    BUDGET.with(|b| b.set(Some(left - used)));
    // In lopdf's plain load the returned object is unused (the stream stays as loaded).
    Some((id, Object::Null))
}

/// What `stream` decodes to through the filters lopdf implements (Flate, LZW, ASCII85),
/// counting no further than one read (16 KiB) past `max`. Unfiltered streams count nothing: they are already
/// in memory at their size.
fn inflated_size(stream: &Stream, max: u64) -> u64 {
    let Ok(filters) = stream.filters() else {
        return 0;
    };
    // The stream's own bytes feed the first filter; later ones read what the previous kept.
    let mut data = std::borrow::Cow::Borrowed(stream.content.as_slice());
    let mut size = 0;
    for (i, filter) in filters.iter().enumerate() {
        let last = i + 1 == filters.len();
        let mut sink = Bounded::new(max, last);
        match *filter {
            b"FlateDecode" => {
                let got = drain(flate2::read::ZlibDecoder::new(&*data), &mut sink);
                if got.is_err() && sink.count == 0 && data.len() > 2 {
                    // lopdf retries a failed zlib stream as raw deflate.
                    let _ = drain(flate2::read::DeflateDecoder::new(&data[2..]), &mut sink);
                }
            }
            b"LZWDecode" => {
                // PDF's LZW: most significant bit first, early change on by default.
                let mut decoder =
                    weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
                let _ = decoder.into_stream(&mut sink).decode_all(&*data);
            }
            b"ASCII85Decode" => {
                // At most four bytes out per byte in: decoding it is already bounded.
                let mut one = Stream::new(pdf_extract::Dictionary::new(), data.to_vec());
                one.dict
                    .set("Filter", Object::Name(b"ASCII85Decode".to_vec()));
                let _ = std::io::Write::write_all(
                    &mut sink,
                    &one.decompressed_content().unwrap_or_default(),
                );
            }
            // lopdf does not decode the others (images: DCT, JPX, CCITT …).
            _ => return size,
        }
        size = sink.count;
        if size > max || last {
            return size;
        }
        data = std::borrow::Cow::Owned(sink.kept);
    }
    size
}

/// Copy `reader` into `sink` until the end, an error, or the sink's bound.
fn drain(mut reader: impl Read, sink: &mut Bounded) -> std::io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        std::io::Write::write_all(sink, &buf[..n])?;
    }
}

/// A writer that counts, keeps the bytes only when a later filter needs them, and fails
/// once more than `max` bytes came.
struct Bounded {
    count: u64,
    max: u64,
    kept: Vec<u8>,
    keep: bool,
}

impl Bounded {
    fn new(max: u64, last: bool) -> Self {
        Self {
            count: 0,
            max,
            kept: Vec::new(),
            keep: !last,
        }
    }
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.count += buf.len() as u64;
        if self.count > self.max {
            return Err(std::io::Error::other("inflation budget exceeded"));
        }
        if self.keep {
            self.kept.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
    use std::io::Write;

    fn options(max: u64) -> ParseOptions {
        ParseOptions {
            max_inflated_bytes: max,
            ..ParseOptions::default()
        }
    }

    #[test]
    fn garbage_and_truncation_are_typed_errors() {
        for bytes in [&b"hello"[..], b"%PDF-1.4\n1 0 obj\n<< /Type", b""] {
            let err = pages(bytes, "x.pdf", &ParseOptions::default()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.message().starts_with("x.pdf: "), "{}", err.message());
        }
    }

    #[test]
    fn tidy_drops_layout_blank_lines() {
        assert_eq!(tidy("\n\n  a  \n\n\nb\n   \n"), "  a\nb");
    }

    /// A one-page PDF whose content stream is `content` (Flate-compressed when `flate`),
    /// with a correct cross-reference table.
    pub(crate) fn pdf_with_stream(content: &[u8], flate: bool) -> Vec<u8> {
        let (data, filter) = if flate {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            z.write_all(content).unwrap();
            (z.finish().unwrap(), " /Filter /FlateDecode")
        } else {
            (content.to_vec(), "")
        };
        let mut out = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        let objects: Vec<Vec<u8>> = vec![
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
               /Resources << /Font << /F1 5 0 R >> >> >>"
                .to_vec(),
            {
                let mut s = format!("<< /Length {}{filter} >>\nstream\n", data.len()).into_bytes();
                s.extend_from_slice(&data);
                s.extend_from_slice(b"\nendstream");
                s
            },
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
        ];
        for (i, body) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(b"\nendobj\n");
        }
        let xref = out.len();
        out.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
        );
        for o in offsets {
            out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .as_bytes(),
        );
        out
    }

    #[test]
    fn a_small_pdf_is_read() {
        let pdf = pdf_with_stream(b"BT /F1 12 Tf 72 712 Td (Hello bombs) Tj ET", true);
        let text = pages(&pdf, "ok.pdf", &ParseOptions::default()).unwrap();
        assert_eq!(text.len(), 1);
        assert!(text[0].contains("Hello bombs"), "{text:?}");
    }

    #[test]
    fn a_stream_inflating_past_the_budget_is_refused_before_it_is_inflated() {
        // 64 MiB of zeros compress to about 64 KiB: a 1000x bomb.
        let zeros = vec![0u8; 64 << 20];
        let pdf = pdf_with_stream(&zeros, true);
        assert!(pdf.len() < 200 << 10, "{}", pdf.len());
        let err = pages(&pdf, "bomb.pdf", &options(8 << 20)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(
            err.message().contains("inflates to more than"),
            "{}",
            err.message()
        );
        // Within a larger budget the same file is read (and has no text).
        assert!(pages(&pdf, "bomb.pdf", &options(128 << 20)).is_ok());
    }

    #[test]
    fn the_budget_counts_every_filter_stage() {
        let data = vec![b'a'; 1 << 20];
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&data).unwrap();
        let mut s = Stream::new(pdf_extract::Dictionary::new(), z.finish().unwrap());
        s.dict.set("Filter", Object::Name(b"FlateDecode".to_vec()));
        assert_eq!(inflated_size(&s, 10 << 20), 1 << 20);
        let stopped = inflated_size(&s, 1000);
        assert!(
            stopped > 1000 && stopped <= 1000 + 16 * 1024,
            "stops within one read past the bound: {stopped}"
        );
        let raw = Stream::new(pdf_extract::Dictionary::new(), data);
        assert_eq!(inflated_size(&raw, 10), 0, "unfiltered: nothing inflates");
    }

    #[test]
    fn a_zero_parse_time_stops_before_the_first_page() {
        let pdf = pdf_with_stream(b"BT /F1 12 Tf 72 712 Td (Slow) Tj ET", false);
        let o = ParseOptions {
            max_parse_time: Some(std::time::Duration::ZERO),
            ..ParseOptions::default()
        };
        let err = pages(&pdf, "slow.pdf", &o).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
    }
}

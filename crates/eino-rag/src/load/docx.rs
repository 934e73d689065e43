//! DOCX to text: `word/document.xml` inside the zip, `<w:t>` runs joined, one line per
//! `<w:p>` paragraph, tabs and breaks kept.

use std::io::{Cursor, Read};

use eino::{Error, ErrorKind, Result};
use quick_xml::events::Event;
use quick_xml::Reader;

fn corrupt(source: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{source}: corrupted DOCX ({why})"),
    )
}

/// The text of `word/document.xml`, inflating at most `max_xml_bytes` of it: a zip bomb
/// must not exhaust memory.
pub(super) fn extract(bytes: &[u8], source: &str, max_xml_bytes: u64) -> Result<String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| corrupt(source, e))?;
    let entry = zip
        .by_name("word/document.xml")
        .map_err(|e| corrupt(source, format!("word/document.xml: {e}")))?;
    let mut xml = Vec::new();
    entry
        .take(max_xml_bytes.saturating_add(1))
        .read_to_end(&mut xml)
        .map_err(|e| corrupt(source, e))?;
    if xml.len() as u64 > max_xml_bytes {
        return Err(Error::invalid_input(format!(
            "{source}: word/document.xml inflates to more than {max_xml_bytes} bytes \
             (limits.max_document_inflated_bytes)"
        )));
    }
    let mut reader = Reader::from_reader(xml.as_slice());
    let mut out = String::new();
    let mut in_text = false;
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| {
            corrupt(
                source,
                format!("XML at byte {}: {e}", reader.buffer_position()),
            )
        })?;
        match event {
            Event::Start(e) if e.name().as_ref() == "w:t" => in_text = true,
            Event::End(e) if e.name().as_ref() == "w:t" => in_text = false,
            Event::End(e) if e.name().as_ref() == "w:p" => out.push('\n'),
            Event::Empty(e) => match e.name().as_ref() {
                "w:tab" => out.push('\t'),
                "w:br" | "w:cr" => out.push('\n'),
                _ => {}
            },
            Event::Text(t) if in_text => {
                // Entities are separate `GeneralRef` events, so text events hold plain text.
                out.push_str(&t.into_inner());
            }
            Event::GeneralRef(r) if in_text => {
                let name = r.clone().into_inner();
                match quick_xml::escape::resolve_predefined_entity(&name) {
                    Some(s) => out.push_str(s),
                    None => {
                        if let Ok(Some(c)) = r.resolve_char_ref() {
                            out.push(c);
                        }
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out.trim_end().to_string())
}

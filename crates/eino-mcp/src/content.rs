//! What the model reads from a tool's result: MCP content blocks as text.
//!
//! Text blocks are the text. Binary blocks (images, audio, blobs) cannot go into a tool
//! message, so the model reads what they are (`[image image/png, 1400 bytes]`) rather than
//! base64 it cannot use. An embedded text resource is its text under its URI, a resource
//! link its URI and name. A result with no content but structured content is that JSON.

use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};

use crate::McpError;

/// The text of a tool result, or the tool's failure (`isError`) as [`McpError::ToolFailed`].
pub fn result_text(server: &str, tool: &str, result: CallToolResult) -> Result<String, McpError> {
    let mut text = result
        .content
        .iter()
        .map(block_text)
        .collect::<Vec<_>>()
        .join("\n");
    if text.is_empty() {
        if let Some(v) = &result.structured_content {
            text = v.to_string();
        }
    }
    if result.is_error == Some(true) {
        return Err(McpError::ToolFailed {
            server: server.to_string(),
            tool: tool.to_string(),
            message: if text.is_empty() {
                "(no message)".into()
            } else {
                text
            },
        });
    }
    Ok(text)
}

fn block_text(block: &ContentBlock) -> String {
    match block {
        ContentBlock::Text(t) => t.text.clone(),
        ContentBlock::Image(i) => {
            format!("[image {}, {} bytes]", i.mime_type, decoded_len(&i.data))
        }
        ContentBlock::Audio(a) => {
            format!("[audio {}, {} bytes]", a.mime_type, decoded_len(&a.data))
        }
        ContentBlock::Resource(r) => match &r.resource {
            ResourceContents::TextResourceContents { uri, text, .. } => {
                format!("[resource {uri}]\n{text}")
            }
            ResourceContents::BlobResourceContents {
                uri,
                mime_type,
                blob,
                ..
            } => format!(
                "[resource {uri}: {}, {} bytes]",
                mime_type.as_deref().unwrap_or("binary"),
                decoded_len(blob)
            ),
            _ => "[resource of an unknown kind]".into(),
        },
        ContentBlock::ResourceLink(link) => match &link.description {
            Some(d) => format!("[resource link {}: {} ({d})]", link.uri, link.name),
            None => format!("[resource link {}: {}]", link.uri, link.name),
        },
        _ => "[content of an unknown kind]".into(),
    }
}

/// Bytes of base64 `data` once decoded.
fn decoded_len(data: &str) -> usize {
    let data = data.trim_end();
    let pad = data.bytes().rev().take_while(|b| *b == b'=').count();
    (data.len() / 4 * 3).saturating_sub(pad)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn result(v: serde_json::Value) -> CallToolResult {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn every_kind_of_content_reads_as_text() {
        let r = result(json!({"content": [
            {"type": "text", "text": "The sum is 3."},
            {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"},
            {"type": "audio", "data": "AAAA", "mimeType": "audio/wav"},
            {"type": "resource", "resource": {"uri": "file:///a.txt", "text": "hello"}},
            {"type": "resource", "resource": {"uri": "file:///b.bin", "blob": "AAECAw==", "mimeType": "application/octet-stream"}},
            {"type": "resource_link", "uri": "file:///c.md", "name": "c.md", "description": "notes"}
        ]}));
        assert_eq!(
            result_text("s", "t", r).unwrap(),
            "The sum is 3.\n[image image/png, 8 bytes]\n[audio audio/wav, 3 bytes]\n\
             [resource file:///a.txt]\nhello\n[resource file:///b.bin: application/octet-stream, 4 bytes]\n\
             [resource link file:///c.md: c.md (notes)]"
        );
    }

    #[test]
    fn structured_content_is_read_when_there_is_no_text() {
        let r = result(json!({"content": [], "structuredContent": {"temperature": 21.5}}));
        assert_eq!(result_text("s", "t", r).unwrap(), r#"{"temperature":21.5}"#);
    }

    #[test]
    fn is_error_is_the_tools_failure_with_its_message() {
        let r =
            result(json!({"content": [{"type": "text", "text": "no such file"}], "isError": true}));
        let e = result_text("files", "read", r).unwrap_err();
        assert!(matches!(&e, McpError::ToolFailed { message, .. } if message == "no such file"));
        assert_eq!(
            e.to_string(),
            "MCP server files: tool read failed: no such file"
        );
        let r = result(json!({"content": [], "isError": true}));
        assert!(result_text("s", "t", r)
            .unwrap_err()
            .to_string()
            .contains("(no message)"));
    }
}

//! Checking workflow field paths against the target type's shape, before anything runs.
//!
//! The shape comes from the type's `Deserialize` impl (traced with serde-reflection), so it
//! sees serde renames and needs no extra derive. Open types — maps, `serde_json::Value`,
//! anything the tracer cannot follow — accept every path.

use serde::de::DeserializeOwned;
use serde_reflection::{ContainerFormat, Format, Registry, Tracer, TracerConfig};

/// A traced type: its format and the named containers it refers to.
pub(crate) struct Shape {
    format: Format,
    registry: Registry,
}

/// The shape of `T`, or `None` if it cannot be traced (then paths are not checked).
pub(crate) fn shape_of<T: DeserializeOwned>() -> Option<Shape> {
    let mut tracer = Tracer::new(TracerConfig::default());
    let (format, _) = tracer.trace_simple_type::<T>().ok()?;
    let registry = tracer.registry().ok()?;
    Some(Shape { format, registry })
}

fn describe(f: &Format) -> &'static str {
    match f {
        Format::Str | Format::Char => "a string",
        Format::Bool => "a boolean",
        Format::Seq(_) | Format::TupleArray { .. } | Format::Tuple(_) => "a list",
        Format::Bytes => "bytes",
        Format::Unit => "empty",
        _ => "a number",
    }
}

impl Shape {
    /// `Err(reason)` if `path` cannot exist in this type.
    pub(crate) fn check(&self, path: &[String]) -> Result<(), String> {
        let mut cur = &self.format;
        for (i, key) in path.iter().enumerate() {
            loop {
                match cur {
                    Format::Option(inner) => cur = inner,
                    Format::TypeName(name) => match self.registry.get(name) {
                        Some(ContainerFormat::NewTypeStruct(inner)) => cur = inner,
                        Some(ContainerFormat::Struct(fields)) => {
                            let Some(f) = fields.iter().find(|f| &f.name == key) else {
                                let names: Vec<&str> =
                                    fields.iter().map(|f| f.name.as_str()).collect();
                                return Err(format!(
                                    "{name} has no field '{key}' (fields: {})",
                                    names.join(", ")
                                ));
                            };
                            cur = &f.value;
                            break;
                        }
                        // Enums and tuple structs: not followed.
                        _ => return Ok(()),
                    },
                    Format::Map { .. } | Format::Variable(_) => return Ok(()),
                    other => {
                        let at = path[..i].join(" ");
                        let what = if at.is_empty() {
                            "the input".to_string()
                        } else {
                            format!("[{at}]")
                        };
                        return Err(format!(
                            "{what} is {}, it has no field '{key}'",
                            describe(other)
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

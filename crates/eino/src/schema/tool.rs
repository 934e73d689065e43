//! Tool descriptions given to models: name, description and a JSON Schema of the arguments.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a model is told about a tool.
///
/// ```
/// use eino::schema::ToolInfo;
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct WeatherArgs { /// City name
///     city: String }
/// let info = ToolInfo::of::<WeatherArgs>("get_weather", "Current weather for a city");
/// assert_eq!(info.parameters["properties"]["city"]["type"], "string");
/// assert_eq!(info.parameters["required"][0], "city");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// Name the model uses to call the tool.
    pub name: String,
    /// When and why to use the tool.
    pub description: String,
    /// JSON Schema (an object schema) of the arguments.
    pub parameters: serde_json::Value,
}

impl ToolInfo {
    /// A tool whose parameters are given as a raw JSON Schema.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: serde_json::Value,
    ) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            parameters,
        }
    }

    /// A tool whose parameter schema is derived from the Rust type `T` (inlined, no `$ref`s,
    /// so every provider accepts it).
    pub fn of<T: JsonSchema>(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self::new(name, description, schema_of::<T>())
    }
}

/// An inlined JSON Schema of `T` without the `$schema` and `title` keys providers reject.
pub fn schema_of<T: JsonSchema>() -> serde_json::Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| {
        s.inline_subschemas = true;
    });
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut value = schema.to_value();
    if let Some(obj) = value.as_object_mut() {
        obj.remove("$schema");
        obj.remove("title");
    }
    value
}

/// Whether and how a model may call tools.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model must not call tools.
    Forbidden,
    /// The model decides.
    #[default]
    Allowed,
    /// The model must call at least one tool.
    Forced,
    /// The model must call this tool.
    Named(String),
}

//! Tools: functions a model can call, with typed arguments and generated schemas.

use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;

use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Extensions;
use crate::error::{Error, Result};
use crate::schema::{StreamReader, ToolInfo};

/// Options of one tool call (tools define their own types and read them from `extensions`).
#[derive(Debug, Clone, Default)]
pub struct ToolOptions {
    /// The model's id for the tool call being answered, when called by a
    /// [`ToolsNode`](crate::compose::ToolsNode) (what an agent tool puts in its interrupt
    /// address).
    pub call_id: Option<String>,
    /// Implementation-specific options.
    pub extensions: Extensions,
}

/// Set by a [`ToolsNode`](crate::compose::ToolsNode) in the options of a call that
/// interrupted before and now re-runs: the data the caller resumed it with.
///
/// Tools do not see the run's [`Context`](crate::compose::Context), so this is how a tool
/// that asked for outside input (an approval, a human's answer) reads it. The caller
/// resumes the tools node with a JSON object keyed by tool call id
/// (`CheckpointRun::resume_with(path, json!({"call_1": ...}))`); each re-run call gets its
/// own entry, `None` when the object has none for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResume {
    /// This call's resume data.
    pub data: Option<serde_json::Value>,
    /// The interrupt info this call reported when it stopped (a tool has no state of its
    /// own, so what it needs to continue goes there).
    pub info: Option<serde_json::Value>,
}

impl ToolOptions {
    /// True if this call interrupted before and is now re-running.
    pub fn is_resumed(&self) -> bool {
        self.extensions.get::<ToolResume>().is_some()
    }

    /// The id of the tool call being answered, when called by a tools node.
    pub fn call_id(&self) -> Option<&str> {
        self.call_id.as_deref()
    }

    /// The data this re-run call was resumed with, if any and if it fits `T`.
    pub fn resume_data<T: DeserializeOwned>(&self) -> Option<T> {
        let data = self.extensions.get::<ToolResume>()?.data.clone()?;
        serde_json::from_value(data).ok()
    }
}

/// A tool. `call` is required; streaming tools also override `stream` (the default streams
/// the whole result as one chunk).
pub trait Tool: Send + Sync {
    /// Name, description and argument schema.
    fn info(&self) -> ToolInfo;

    /// Run with the model's JSON arguments; the result is text the model reads.
    fn call<'a>(
        &'a self,
        arguments: &'a str,
        options: &'a ToolOptions,
    ) -> BoxFuture<'a, Result<String>>;

    /// Run and stream the result.
    fn stream<'a>(
        &'a self,
        arguments: &'a str,
        options: &'a ToolOptions,
    ) -> BoxFuture<'a, Result<StreamReader<String>>> {
        Box::pin(async move { Ok(StreamReader::once(self.call(arguments, options).await?)) })
    }

    /// Implementation name for callbacks; defaults to the tool name.
    fn type_name(&self) -> Cow<'static, str> {
        Cow::Owned(self.info().name)
    }

    /// True if the tool fires its own callbacks.
    fn callbacks_enabled(&self) -> bool {
        false
    }
}

/// A tool made from a typed async function by [`tool_fn`].
pub struct FnTool<A, R, F> {
    info: ToolInfo,
    f: F,
    _types: PhantomData<fn(A) -> R>,
}

impl<A, R, F> std::fmt::Debug for FnTool<A, R, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnTool").field("info", &self.info).finish()
    }
}

/// Build a tool from an async function of typed arguments. The JSON Schema comes from the
/// argument type (serde + schemars); arguments that do not parse give an
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) error naming the tool. A
/// result that serialises to a JSON string is returned as that string; anything else as JSON.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use eino::component::{tool_fn, Tool, ToolOptions};
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Args { city: String }
/// let weather = tool_fn("get_weather", "Current weather for a city", |a: Args| async move {
///     Ok(format!("sunny in {}", a.city))
/// });
/// let opts = ToolOptions::default();
/// assert_eq!(weather.call(r#"{"city":"Paris"}"#, &opts).await.unwrap(), "sunny in Paris");
/// let err = weather.call(r#"{"town":1}"#, &opts).await.unwrap_err();
/// assert!(err.to_string().contains("invalid arguments for tool 'get_weather'"));
/// # });
/// ```
pub fn tool_fn<A, R, F, Fut>(
    name: impl Into<String>,
    description: impl Into<String>,
    f: F,
) -> FnTool<A, R, F>
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R>> + Send + 'static,
{
    FnTool {
        info: ToolInfo::of::<A>(name, description),
        f,
        _types: PhantomData,
    }
}

impl<A, R, F, Fut> Tool for FnTool<A, R, F>
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R>> + Send + 'static,
{
    fn info(&self) -> ToolInfo {
        self.info.clone()
    }

    fn call<'a>(&'a self, arguments: &'a str, _: &'a ToolOptions) -> BoxFuture<'a, Result<String>> {
        let args = if arguments.trim().is_empty() {
            "{}"
        } else {
            arguments
        };
        let parsed = serde_json::from_str::<A>(args).map_err(|e| {
            Error::invalid_input(format!(
                "invalid arguments for tool '{}': {e}",
                self.info.name
            ))
        });
        Box::pin(async move {
            let out = (self.f)(parsed?).await?;
            match serde_json::to_value(out)? {
                serde_json::Value::String(s) => Ok(s),
                v => Ok(v.to_string()),
            }
        })
    }

    fn type_name(&self) -> Cow<'static, str> {
        Cow::Owned(camel_case(&self.info.name))
    }
}

/// `get_weather` → `GetWeather`, Eino's type name for inferred tools.
fn camel_case(name: &str) -> String {
    name.split(['_', '-', ' '])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel() {
        assert_eq!(camel_case("get_weather"), "GetWeather");
    }
}

//! Streaming chat: server-sent events to message chunks.

use eino::schema::{Message, StreamReader};
use eino::{Error, ErrorKind, Result};
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::StreamExt;

use crate::http::{status_error, BodyStream};
use crate::wire::{to_message, WireResponse};

/// What one SSE event means.
enum Event {
    Chunks(Vec<Message>),
    Done,
}

fn parse_event(data: &str) -> Result<Event> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(Event::Done);
    }
    if data.is_empty() {
        return Ok(Event::Chunks(Vec::new()));
    }
    let chunk: WireResponse = serde_json::from_str(data).map_err(|e| {
        let head: String = data.chars().take(200).collect();
        Error::new(
            ErrorKind::Internal,
            format!("model server sent a malformed stream event: {head}"),
        )
        .with_source(e)
    })?;
    if let Some(err) = &chunk.error {
        // An error inside the stream (rate limit, overload …) after the 200 status.
        let body = serde_json::json!({ "error": err }).to_string();
        let status = err.get("code").and_then(|c| c.as_u64()).unwrap_or(500) as u16;
        return Err(status_error(status, &Default::default(), &body));
    }
    let mut out = Vec::new();
    for c in chunk.choices {
        if c.index.unwrap_or(0) != 0 {
            continue;
        }
        let delta = c.delta.or(c.message).unwrap_or_default();
        out.push(to_message(delta, c.finish_reason, None, true));
    }
    if let Some(u) = &chunk.usage {
        // Usage-only last chunk (stream_options.include_usage), or usage on a delta.
        match out.last_mut() {
            Some(m) => {
                let meta = m.meta.get_or_insert_with(Default::default);
                meta.usage = Some(crate::wire::usage(u));
            }
            None => out.push(to_message(Default::default(), None, Some(u), true)),
        }
    }
    Ok(Event::Chunks(out))
}

/// A broken event stream: the body's own error (a cut, the idle limit), or bytes that are
/// not server-sent events.
pub(crate) fn stream_error(e: EventStreamError<Error>) -> Error {
    match e {
        EventStreamError::Transport(e) => e,
        e => Error::new(ErrorKind::Transient, format!("model stream broke: {e}")),
    }
}

/// Read the response body as SSE; ends at `[DONE]`, or at the end of the body if the server
/// already sent a finish reason (some servers omit `[DONE]`). A body cut off before either
/// is a transient error.
pub(crate) fn message_stream(body: BodyStream) -> StreamReader<Message> {
    let events = body.eventsource();
    let s = futures_util::stream::unfold(
        (
            Box::pin(events),
            Vec::<Message>::new().into_iter(),
            false,
            false,
        ),
        |(mut events, mut pending, mut finished, done)| async move {
            loop {
                if let Some(m) = pending.next() {
                    return Some((Ok(m), (events, pending, finished, done)));
                }
                if done {
                    return None;
                }
                match events.next().await {
                    None if finished => return None,
                    None => {
                        let e = Error::new(
                            ErrorKind::Transient,
                            "model stream ended before it finished (connection cut)",
                        );
                        return Some((Err(e), (events, pending, finished, true)));
                    }
                    Some(Err(e)) => {
                        let e = stream_error(e);
                        return Some((Err(e), (events, pending, finished, true)));
                    }
                    Some(Ok(ev)) => match parse_event(&ev.data) {
                        Ok(Event::Done) => return None,
                        Ok(Event::Chunks(ms)) => {
                            finished |= ms.iter().any(|m| {
                                m.meta.as_ref().is_some_and(|x| x.finish_reason.is_some())
                            });
                            pending = ms.into_iter();
                        }
                        Err(e) => return Some((Err(e), (events, pending, finished, true))),
                    },
                }
            }
        },
    );
    StreamReader::from_stream(s)
}

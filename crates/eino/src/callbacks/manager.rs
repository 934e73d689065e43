//! Firing handlers in Eino's order and threading their scope values through nested calls.

use std::any::Any;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{CallbackStream, Handler, RunInfo, ScopeValue, Timing};
use crate::error::Error;
use crate::schema::StreamReader;

#[derive(Clone)]
struct Slot {
    handler: Arc<dyn Handler>,
    scope: Option<ScopeValue>,
}

/// The handlers in force for a call, each with the scope value of the enclosing call.
/// Order: per-call (inherited) handlers first, globals last. Start timings run in reverse
/// (globals first), end timings forward, as in Eino.
#[derive(Clone, Default)]
pub(crate) struct Callbacks {
    slots: Option<Arc<[Slot]>>,
    /// The run's cancellation: the handlers' copies of streams end when it fires, so a
    /// handler still reading its copy never keeps a cancelled run's source (a model
    /// generating, an upstream response) alive after the caller went away.
    cancel: Option<Arc<CancellationToken>>,
}

impl Callbacks {
    pub(crate) fn new(handlers: Vec<Arc<dyn Handler>>) -> Self {
        if handlers.is_empty() {
            return Self::default();
        }
        Self {
            slots: Some(
                handlers
                    .into_iter()
                    .map(|handler| Slot {
                        handler,
                        scope: None,
                    })
                    .collect(),
            ),
            cancel: None,
        }
    }

    /// These handlers, their stream copies ending when `token` fires.
    pub(crate) fn with_cancel(&self, token: Option<Arc<CancellationToken>>) -> Self {
        Self {
            slots: self.slots.clone(),
            cancel: token,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_none()
    }

    /// These handlers with `extra` (per-call handlers designated to one node) in front.
    pub(crate) fn with_front(&self, extra: &[Arc<dyn Handler>]) -> Self {
        if extra.is_empty() {
            return self.clone();
        }
        let mut slots: Vec<Slot> = extra
            .iter()
            .map(|h| Slot {
                handler: h.clone(),
                scope: None,
            })
            .collect();
        if let Some(s) = &self.slots {
            slots.extend(s.iter().cloned());
        }
        Self {
            slots: Some(slots.into()),
            cancel: self.cancel.clone(),
        }
    }

    /// `front`'s handlers (with their scopes) followed by these.
    pub(crate) fn with_front_callbacks(&self, front: &Callbacks) -> Self {
        if front.is_empty() {
            return self.with_cancel(front.cancel.clone().or_else(|| self.cancel.clone()));
        }
        let slots: Vec<Slot> = front.slots().iter().chain(self.slots()).cloned().collect();
        Self {
            slots: Some(slots.into()),
            cancel: front.cancel.clone().or_else(|| self.cancel.clone()),
        }
    }

    fn slots(&self) -> &[Slot] {
        self.slots.as_deref().unwrap_or(&[])
    }

    /// Fire `on_start`.
    pub(crate) fn start(&self, info: &RunInfo, input: &(dyn Any + Send + Sync)) -> ActiveCall {
        let mut next: Vec<Slot> = self.slots().to_vec();
        for slot in next.iter_mut().rev() {
            if slot.handler.needed(info, Timing::Start) {
                slot.scope = slot.handler.on_start(info, input, slot.scope.as_ref());
            }
        }
        ActiveCall {
            info: info.clone(),
            slots: next.into(),
            cancel: self.cancel.clone(),
        }
    }

    /// Fire `on_start_with_stream_input`, giving each interested handler its own copy.
    pub(crate) fn start_stream<T>(
        &self,
        info: &RunInfo,
        input: StreamReader<T>,
    ) -> (StreamReader<T>, ActiveCall)
    where
        T: Clone + Send + Sync + 'static,
    {
        let mut next: Vec<Slot> = self.slots().to_vec();
        let wanted: Vec<usize> = (0..next.len())
            .rev()
            .filter(|&i| next[i].handler.needed(info, Timing::StartWithStreamInput))
            .collect();
        let mut copies = input.copy(wanted.len() + 1);
        let input = copies.remove(0);
        for (i, copy) in wanted.into_iter().zip(copies) {
            let slot = &mut next[i];
            slot.scope = slot.handler.on_start_with_stream_input(
                info,
                erase(copy, self.cancel.as_deref()),
                slot.scope.as_ref(),
            );
        }
        (
            input,
            ActiveCall {
                info: info.clone(),
                slots: next.into(),
                cancel: self.cancel.clone(),
            },
        )
    }
}

fn erase<T: Send + Sync + 'static>(
    s: StreamReader<T>,
    cancel: Option<&CancellationToken>,
) -> CallbackStream {
    let s = s.map(|t| Ok(Arc::new(t) as Arc<dyn Any + Send + Sync>));
    match cancel {
        None => s,
        Some(token) => until_cancelled(s, token.clone()),
    }
}

/// `s` until `token` fires; then one `cancelled` error and the end (the copy is dropped,
/// which releases its hold on the source).
fn until_cancelled(s: CallbackStream, token: CancellationToken) -> CallbackStream {
    use futures_util::future::{select, Either};
    let state = Some((s, token));
    StreamReader::from_stream(futures_util::stream::unfold(state, |state| async move {
        let (mut s, token) = state?;
        let next = {
            let recv = std::pin::pin!(s.recv());
            let cancelled = std::pin::pin!(token.cancelled());
            match select(recv, cancelled).await {
                Either::Left((item, _)) => Some(item),
                Either::Right(_) => None,
            }
        };
        match next {
            Some(Some(item)) => Some((item, Some((s, token)))),
            Some(None) => None,
            None => Some((Err(Error::cancelled()), None)),
        }
    }))
}

/// A call in progress: the handlers with the scope values their `on_start` returned.
pub(crate) struct ActiveCall {
    info: RunInfo,
    slots: Arc<[Slot]>,
    cancel: Option<Arc<CancellationToken>>,
}

impl ActiveCall {
    pub(crate) fn end(&self, output: &(dyn Any + Send + Sync)) {
        for slot in self.slots.iter() {
            if slot.handler.needed(&self.info, Timing::End) {
                slot.handler.on_end(&self.info, output, slot.scope.as_ref());
            }
        }
    }

    pub(crate) fn error(&self, error: &Error) {
        for slot in self.slots.iter() {
            if slot.handler.needed(&self.info, Timing::Error) {
                slot.handler
                    .on_error(&self.info, error, slot.scope.as_ref());
            }
        }
    }

    pub(crate) fn end_stream<T>(&self, output: StreamReader<T>) -> StreamReader<T>
    where
        T: Clone + Send + Sync + 'static,
    {
        let mut watchers = Vec::new();
        let mut wanted: Vec<&Slot> = Vec::new();
        for slot in self.slots.iter() {
            if !slot.handler.needed(&self.info, Timing::EndWithStreamOutput) {
                continue;
            }
            match slot
                .handler
                .watch_stream_output(&self.info, slot.scope.as_ref())
            {
                Some(w) => watchers.push(w),
                None => wanted.push(slot),
            }
        }
        // Under the copies: a watcher sees each chunk once, when the first reader takes it.
        let output = if watchers.is_empty() {
            output
        } else {
            super::watch::watch(output, watchers)
        };
        if wanted.is_empty() {
            return output;
        }
        let mut copies = output.copy(wanted.len() + 1);
        let output = copies.remove(0);
        for (slot, copy) in wanted.into_iter().zip(copies) {
            slot.handler.on_end_with_stream_output(
                &self.info,
                erase(copy, self.cancel.as_deref()),
                slot.scope.as_ref(),
            );
        }
        output
    }

    /// Handlers for calls nested inside this one (their parent scope is this call's).
    pub(crate) fn nested(&self) -> Callbacks {
        Callbacks {
            slots: Some(self.slots.clone()),
            cancel: self.cancel.clone(),
        }
    }
}

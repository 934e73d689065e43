//! Firing handlers in Eino's order and threading their scope values through nested calls.

use std::any::Any;
use std::sync::Arc;

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
        }
    }

    /// `front`'s handlers (with their scopes) followed by these.
    pub(crate) fn with_front_callbacks(&self, front: &Callbacks) -> Self {
        if front.is_empty() {
            return self.clone();
        }
        let slots: Vec<Slot> = front.slots().iter().chain(self.slots()).cloned().collect();
        Self {
            slots: Some(slots.into()),
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
            slot.scope =
                slot.handler
                    .on_start_with_stream_input(info, erase(copy), slot.scope.as_ref());
        }
        (
            input,
            ActiveCall {
                info: info.clone(),
                slots: next.into(),
            },
        )
    }
}

fn erase<T: Send + Sync + 'static>(s: StreamReader<T>) -> CallbackStream {
    s.map(|t| Ok(Arc::new(t) as Arc<dyn Any + Send + Sync>))
}

/// A call in progress: the handlers with the scope values their `on_start` returned.
pub(crate) struct ActiveCall {
    info: RunInfo,
    slots: Arc<[Slot]>,
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
        let wanted: Vec<&Slot> = self
            .slots
            .iter()
            .filter(|s| s.handler.needed(&self.info, Timing::EndWithStreamOutput))
            .collect();
        if wanted.is_empty() {
            return output;
        }
        let mut copies = output.copy(wanted.len() + 1);
        let output = copies.remove(0);
        for (slot, copy) in wanted.into_iter().zip(copies) {
            slot.handler
                .on_end_with_stream_output(&self.info, erase(copy), slot.scope.as_ref());
        }
        output
    }

    /// Handlers for calls nested inside this one (their parent scope is this call's).
    pub(crate) fn nested(&self) -> Callbacks {
        Callbacks {
            slots: Some(self.slots.clone()),
        }
    }
}

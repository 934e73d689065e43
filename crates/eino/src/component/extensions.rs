//! Implementation-specific options carried inside the common option structs.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

/// A small typed map of implementation-specific options, keyed by type (like
/// `http::Extensions`): a component defines its own option struct and reads it with
/// [`get`](Self::get); callers set it with [`insert`](Self::insert).
///
/// ```
/// use eino::component::Extensions;
/// #[derive(Debug, PartialEq)]
/// struct ReasoningEffort(&'static str);
/// let mut ext = Extensions::default();
/// ext.insert(ReasoningEffort("high"));
/// assert_eq!(ext.get::<ReasoningEffort>(), Some(&ReasoningEffort("high")));
/// ```
#[derive(Clone, Default)]
pub struct Extensions {
    items: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
}

impl Extensions {
    /// Set (or replace) the value of type `T`.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        let id = TypeId::of::<T>();
        self.items.retain(|(t, _)| *t != id);
        self.items.push((id, Arc::new(value)));
    }

    /// The value of type `T`, if set.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.items
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, v)| v.downcast_ref())
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Take every value of `other`, replacing values of the same type.
    pub fn extend(&mut self, other: &Extensions) {
        for (id, v) in &other.items {
            self.items.retain(|(t, _)| t != id);
            self.items.push((*id, v.clone()));
        }
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Extensions({} items)", self.items.len())
    }
}

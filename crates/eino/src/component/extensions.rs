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
///
/// Cloning is cheap: the values are shared until one side changes (copy on write), since
/// options are cloned for every call they reach.
#[derive(Clone, Default)]
pub struct Extensions {
    /// `None` while empty, so empty options allocate nothing.
    items: Option<Arc<Vec<Item>>>,
}

type Item = (TypeId, Arc<dyn Any + Send + Sync>);

impl Extensions {
    fn items(&self) -> &[Item] {
        self.items.as_deref().map_or(&[], Vec::as_slice)
    }

    fn items_mut(&mut self) -> &mut Vec<Item> {
        Arc::make_mut(self.items.get_or_insert_with(Default::default))
    }

    /// Set (or replace) the value of type `T`.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        let id = TypeId::of::<T>();
        let items = self.items_mut();
        items.retain(|(t, _)| *t != id);
        items.push((id, Arc::new(value)));
    }

    /// The value of type `T`, if set.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.items()
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, v)| v.downcast_ref())
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.items().is_empty()
    }

    /// Take every value of `other`, replacing values of the same type.
    pub fn extend(&mut self, other: &Extensions) {
        if other.is_empty() {
            return;
        }
        let items = self.items_mut();
        for (id, v) in other.items() {
            items.retain(|(t, _)| t != id);
            items.push((*id, v.clone()));
        }
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Extensions({} items)", self.items().len())
    }
}

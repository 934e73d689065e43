//! Global handlers see every run started after they were added (own test binary, since they
//! are process-wide), and a call option designated by path reaches a node inside a subgraph.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use eino::callbacks::{self, CallbackValue, Handler, RunInfo, ScopeValue};
use eino::compose::{
    lambda, CallOption, CompileOptions, Context, Graph, Lambda, Runnable, END, START,
};

#[derive(Default)]
struct Count(AtomicUsize);
impl Handler for Count {
    fn on_start(
        &self,
        _: &RunInfo,
        _: CallbackValue<'_>,
        _: Option<&ScopeValue>,
    ) -> Option<ScopeValue> {
        self.0.fetch_add(1, Ordering::SeqCst);
        None
    }
}

#[tokio::test]
async fn global_handlers_and_path_designation() {
    let mut inner = Graph::<String, String>::new();
    let leaf = inner.add_node(
        "leaf",
        Lambda::new().with_invoke(|x: String, ctx: Context| async move {
            let tags: Vec<String> = ctx.options::<String>().cloned().collect();
            Ok(format!("{x}[{}]", tags.join(",")))
        }),
    );
    inner.add_edge(START, leaf);
    inner.add_edge(leaf, END);
    let mut outer = Graph::<String, String>::new();
    let top = outer.add_node("top", lambda(|x: String| async move { Ok(x) }));
    let sub = outer.add_graph("sub", inner, CompileOptions::default());
    outer.add_edge(START, top);
    outer.add_edge(top, sub);
    outer.add_edge(sub, END);
    let app = outer.compile(CompileOptions::default()).unwrap();

    let ctx = Context::new()
        .with_option(CallOption::lambda("deep".to_string()).designate_path(["sub", "leaf"]));
    assert_eq!(app.invoke("x".into(), &ctx).await.unwrap(), "x[deep]");
    // Designated elsewhere: the leaf sees nothing.
    let ctx = Context::new().with_option(CallOption::lambda("top".to_string()).designate("top"));
    assert_eq!(app.invoke("x".into(), &ctx).await.unwrap(), "x[]");
    // A path through a node that is not a graph is refused.
    let bad = Context::new()
        .with_option(CallOption::lambda("x".to_string()).designate_path(["top", "leaf"]));
    assert!(app.invoke("x".into(), &bad).await.is_err());

    let h = Arc::new(Count::default());
    callbacks::append_global_handlers([h.clone() as Arc<dyn Handler>]);
    app.invoke("x".into(), &Context::new()).await.unwrap();
    // outer graph + top + inner graph + leaf
    assert_eq!(h.0.load(Ordering::SeqCst), 4);
    callbacks::clear_global_handlers();
    app.invoke("x".into(), &Context::new()).await.unwrap();
    assert_eq!(h.0.load(Ordering::SeqCst), 4);
}

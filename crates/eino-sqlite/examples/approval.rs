//! Human approval across processes: the run stops before sending, the process exits, and a
//! later process resumes it from the SQLite checkpoint with the reviewer's answer.
//!
//! ```text
//! cargo run -p eino-sqlite --example approval -- start runs.db run-1 "refund order 42"
//! cargo run -p eino-sqlite --example approval -- list runs.db
//! cargo run -p eino-sqlite --example approval -- resume runs.db run-1 yes
//! ```

use std::sync::Arc;

use eino::compose::{
    lambda, list_checkpoints, CheckpointRun, CompileOptions, Compiled, Context, Graph, Lambda,
    Runnable, END, START,
};
use eino::Error;
use eino_sqlite::SqliteCheckpointStore;
use serde_json::json;

/// What the reviewer decides.
#[derive(serde::Serialize, serde::Deserialize)]
struct Decision {
    approve: bool,
}

fn app(store: Arc<SqliteCheckpointStore>) -> eino::Result<Compiled<String, String>> {
    let mut g = Graph::<String, String>::new();
    let draft = g.add_node(
        "draft",
        lambda(|request: String| async move { Ok(format!("Action: {request}")) }),
    );
    // Stops the run the first time; on resume it reads the reviewer's decision.
    let review = g.add_node(
        "review",
        Lambda::new().with_invoke(|action: String, ctx: Context| async move {
            match ctx.resume_data::<Decision>() {
                None => Err(Error::interrupt(json!({ "approve?": action }))),
                Some(d) if d.approve => Ok(action),
                Some(_) => Ok(String::from("REJECTED")),
            }
        }),
    );
    let execute = g.add_node(
        "execute",
        lambda(|action: String| async move {
            Ok(match action.as_str() {
                "REJECTED" => "nothing done: the reviewer rejected it".to_string(),
                _ => format!("done: {action}"),
            })
        }),
    );
    g.add_edge(START, draft);
    g.add_edge(draft, review);
    g.add_edge(review, execute);
    g.add_edge(execute, END);
    g.compile(
        CompileOptions::default()
            .with_name("approval")
            .with_checkpoint_store(store),
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: approval start DB ID REQUEST | resume DB ID yes|no | list DB";
    let (cmd, db) = match (args.first(), args.get(1)) {
        (Some(c), Some(d)) => (c.as_str(), d.as_str()),
        _ => return Err(usage.into()),
    };
    let store = Arc::new(SqliteCheckpointStore::open(db).await?);
    let app = app(store.clone())?;
    match (cmd, args.get(2), args.get(3)) {
        ("start", Some(id), Some(request)) => {
            let ctx = Context::new().with_checkpoint(CheckpointRun::new(id));
            match app.invoke(request.clone(), &ctx).await {
                Ok(out) => println!("finished: {out}"),
                Err(e) => match e.interrupt_info() {
                    Some(info) => println!("waiting: {}", serde_json::to_string(info)?),
                    None => return Err(e.into()),
                },
            }
        }
        ("resume", Some(id), Some(answer)) => {
            let decision = Decision {
                approve: answer == "yes",
            };
            let run = CheckpointRun::new(id).resume_with(["review"], decision)?;
            let out = app
                .invoke(String::new(), &Context::new().with_checkpoint(run))
                .await?;
            println!("finished: {out}");
        }
        ("list", _, _) => {
            for (id, info) in list_checkpoints(store.as_ref()).await? {
                println!("{id}: {}", serde_json::to_string(&info)?);
            }
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}

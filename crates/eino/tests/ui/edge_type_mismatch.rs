use eino::compose::{lambda, Graph, END, START};

fn main() {
    let mut g = Graph::<String, String>::new();
    let one = g.add_node("1", lambda(|x: String| async move { Ok(x) }));
    let two = g.add_node("2", lambda(|x: i64| async move { Ok(x.to_string()) }));
    g.add_edge(START, one);
    g.add_edge(one, two); // String output into an i64 input
    g.add_edge(two, END);
}

//! Criterion benchmarks of the template engine: a 1,000-row table with a
//! loop, a condition and escaped paths (what a page does), and the same
//! table through expressions (`{{ i + 1 }}`, `enumerate`, a comparison,
//! a method). `cargo bench --bench template`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use cyclone::web::Template;

fn rows() -> serde_json::Value {
    let rows: Vec<serde_json::Value> = (0..1000)
        .map(|i| serde_json::json!({"id": i, "name": format!("<user {i}>"), "admin": i % 7 == 0}))
        .collect();
    serde_json::json!({ "rows": rows, "title": "Users & groups" })
}

fn table(c: &mut Criterion) {
    let v = rows();
    let mut g = c.benchmark_group("template");
    g.throughput(Throughput::Elements(1000));
    let paths = Template::parse(
        "<h1>{{ title }}</h1><table>{% for r in rows %}<tr><td>{{ r.id }}</td>\
         <td>{{ r.name }}</td><td>{% if r.admin %}admin{% else %}-{% end %}</td></tr>\n{% end %}</table>",
    )
    .unwrap();
    g.bench_function("rows_1000_paths", |b| {
        b.iter(|| paths.render_value(black_box(&v)).unwrap())
    });
    // Only where expressions parse (they are refused by older builds).
    if let Ok(exprs) = Template::parse(
        "<h1>{{ title.upper() }}</h1><table>{% for i, r in enumerate(rows) %}<tr><td>{{ i + 1 }}</td>\
         <td>{{ r['name'] }}</td><td>{{ 'admin' if r['admin'] and r['id'] >= 0 else '-' }}</td></tr>\n{% end %}</table>",
    ) {
        g.bench_function("rows_1000_expressions", |b| {
            b.iter(|| exprs.render_value(black_box(&v)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, table);
criterion_main!(benches);

//! Subsets: which rows of each table a run copies when some tables have a row filter (`--where`,
//! config `where`). The source computes it, in the query that reads each table:
//!
//! - Filters flow **down** foreign keys: a table that references a filtered table gets only the
//!   rows whose referenced row is in that table's subset (a row whose key is NULL references
//!   nothing and stays), through every level; its own filter is ANDed. A key on a cycle (a
//!   self-reference, tables that reference each other) does not carry a filter down, so that
//!   the definition ends.
//! - The subset is then closed **up**: every row a copied row references is copied too, even
//!   one its table's filter leaves out, so that every foreign key holds. A recursive query
//!   walks the references from the filtered rows to a fixed point (cycles included); a
//!   table copied whole that references a filtered table (through a cycle) brings every row it
//!   references.
//!
//! Rows are named by `(tableoid, ctid)`, which one snapshot keeps stable: a table's read keeps
//! the rows the walk reached.

use std::collections::{BTreeMap, BTreeSet};

use super::graph::{positions, Components};
use crate::source::{ConstraintKind, Table};
use crate::sql::{literal, Ident, QualifiedName};

/// A row filter as the user gave it: the tables a pattern names, and a condition.
#[derive(Debug, Clone)]
pub struct RowFilter {
    /// The tables.
    pub table: crate::pattern::TablePattern,
    /// SQL over the table's columns, evaluated on the source.
    pub condition: String,
    /// As given, for messages.
    pub text: String,
}

impl RowFilter {
    /// Parses `TABLE=CONDITION`, split at the first `=` outside double quotes.
    pub fn parse(text: &str) -> Result<RowFilter, String> {
        let (table, condition) = crate::mask::split_outside_quotes(text, '=', false)
            .ok_or_else(|| format!("--where {text:?}: expected TABLE=CONDITION"))?;
        RowFilter::new(table, condition, text)
    }

    /// A filter on the tables `table` names.
    pub fn new(table: &str, condition: &str, text: &str) -> Result<RowFilter, String> {
        if condition.trim().is_empty() {
            return Err(format!("--where {text:?}: no condition after the ="));
        }
        Ok(RowFilter {
            table: crate::pattern::TablePattern::parse(table)
                .map_err(|e| format!("--where {text:?}: {e}"))?,
            condition: condition.trim().to_string(),
            text: text.to_string(),
        })
    }
}

/// Each filtered table of the catalog with its condition (several filters on one table are
/// ANDed). A filter that names one table the run does not copy is an error.
pub fn resolve_filters(
    tables: &[Table],
    filters: &[RowFilter],
) -> Result<BTreeMap<QualifiedName, String>, String> {
    let mut out: BTreeMap<QualifiedName, String> = BTreeMap::new();
    for f in filters {
        let matched: Vec<&Table> = tables.iter().filter(|t| f.table.matches(&t.name)).collect();
        if matched.is_empty() && !f.table.is_glob() {
            return Err(format!(
                "--where {:?}: the table is not part of this run; name it among the tables to \
                 copy",
                f.text
            ));
        }
        for t in matched {
            out.entry(t.name.clone())
                .and_modify(|c| *c = format!("{c} AND ({})", f.condition))
                .or_insert_with(|| format!("({})", f.condition));
        }
    }
    Ok(out)
}

/// A foreign key between two tables of the run: `from`'s `columns` reference `to`'s
/// `ref_columns`.
struct Edge<'a> {
    from: &'a Table,
    to: &'a Table,
    columns: &'a [Ident],
    ref_columns: &'a [Ident],
}

/// `ONLY <table>` for a plain table; a partitioned one with its partitions.
fn from(table: &Table) -> String {
    if table.is_partitioned() {
        table.name.to_string()
    } else {
        format!("ONLY {}", table.name)
    }
}

/// The subsets of the tables whose rows a filter limits (directly, or through the keys they
/// reference), given the run's tables and each filtered table's own condition. A table not in
/// the result is copied whole.
pub fn conditions(tables: &[Table], filters: &BTreeMap<QualifiedName, String>) -> Subsets {
    if filters.is_empty() {
        return Subsets::default();
    }
    let by_name: BTreeMap<&QualifiedName, &Table> = tables.iter().map(|t| (&t.name, t)).collect();
    let edges: Vec<Edge> = tables
        .iter()
        .flat_map(|t| {
            t.constraints.iter().filter_map(|c| match &c.kind {
                ConstraintKind::ForeignKey { references } if !c.columns.is_empty() => Some(Edge {
                    from: t,
                    to: by_name.get(references)?,
                    columns: &c.columns,
                    ref_columns: &c.ref_columns,
                }),
                _ => None,
            })
        })
        .collect();
    let component = strongly_connected(tables, &edges);
    let cyclic = |e: &Edge| component[&e.from.name] == component[&e.to.name];
    // Which tables are limited: filtered, or (down) referencing a limited table by a key that
    // is not on a cycle.
    let mut limited: BTreeSet<&QualifiedName> = filters.keys().collect();
    loop {
        let more: Vec<&QualifiedName> = edges
            .iter()
            .filter(|e| !cyclic(e) && limited.contains(&e.to.name))
            .map(|e| &e.from.name)
            .filter(|n| !limited.contains(n))
            .collect();
        if more.is_empty() {
            break;
        }
        limited.extend(more);
    }
    // Down: each limited table's own rows, as a condition over its columns.
    let mut own: BTreeMap<&QualifiedName, String> = BTreeMap::new();
    fn down<'a>(
        table: &'a Table,
        filters: &BTreeMap<QualifiedName, String>,
        edges: &[Edge<'a>],
        limited: &BTreeSet<&QualifiedName>,
        cyclic: &dyn Fn(&Edge) -> bool,
        own: &mut BTreeMap<&'a QualifiedName, String>,
    ) -> String {
        if let Some(done) = own.get(&table.name) {
            return done.clone();
        }
        let mut parts: Vec<String> = filters
            .get(&table.name)
            .map(|f| format!("({f})"))
            .into_iter()
            .collect();
        for e in edges
            .iter()
            .filter(|e| e.from.name == table.name && !cyclic(e) && limited.contains(&e.to.name))
        {
            let parent = down(e.to, filters, edges, limited, cyclic, own);
            let keys = list(e.columns);
            let within = format!(
                "({keys}) IN (SELECT {} FROM {} WHERE {parent})",
                list(e.ref_columns),
                from(e.to)
            );
            // Only a nullable key's NULLs need saying: the OR would keep the source from
            // answering the IN with the key's index.
            let nulls: Vec<String> = e
                .columns
                .iter()
                .filter(|c| {
                    table
                        .columns
                        .iter()
                        .any(|col| &col.name == *c && !col.not_null)
                })
                .map(|c| format!("{c} IS NULL"))
                .collect();
            parts.push(if nulls.is_empty() {
                within
            } else {
                format!("({} OR {within})", nulls.join(" OR "))
            });
        }
        let condition = if parts.is_empty() {
            "true".to_string()
        } else {
            parts.join(" AND ")
        };
        own.insert(&table.name, condition.clone());
        condition
    }
    for t in tables.iter().filter(|t| limited.contains(&t.name)) {
        down(t, filters, &edges, &limited, &cyclic, &mut own);
    }
    // Up: per group of tables that keys connect, the walk from the limited tables' own rows
    // along every key between limited tables, and the rows of limited tables that tables
    // copied whole reference.
    let group = connected(tables, &edges);
    let mut subsets = Subsets::default();
    let mut groups: BTreeSet<usize> = BTreeSet::new();
    for t in tables.iter().filter(|t| limited.contains(&t.name)) {
        groups.insert(group[&t.name]);
    }
    for g in groups {
        let in_group = |t: &Table| group[&t.name] == g;
        let mut base: Vec<String> = Vec::new();
        for t in tables
            .iter()
            .filter(|t| in_group(t) && limited.contains(&t.name))
        {
            base.push(format!(
                "SELECT {} AS tbl, t.tableoid AS rel, t.ctid AS tid FROM {} t WHERE {}",
                literal(&t.name.to_string()),
                from(t),
                own[&t.name]
            ));
        }
        let group_edges = || edges.iter().filter(|e| in_group(e.to));
        for e in group_edges()
            .filter(|e| limited.contains(&e.to.name) && !limited.contains(&e.from.name))
        {
            base.push(format!(
                "SELECT {} AS tbl, p.tableoid AS rel, p.ctid AS tid FROM {} p WHERE ({}) IN \
                 (SELECT {} FROM {})",
                literal(&e.to.name.to_string()),
                from(e.to),
                prefixed("p", e.ref_columns),
                list(e.columns),
                from(e.from)
            ));
        }
        let steps: Vec<String> = group_edges()
            .filter(|e| limited.contains(&e.to.name) && limited.contains(&e.from.name))
            .map(|e| {
                let join: Vec<String> = e
                    .columns
                    .iter()
                    .zip(e.ref_columns)
                    .map(|(c, r)| format!("p.{r} = c.{c}"))
                    .collect();
                format!(
                    "SELECT {} AS tbl, p.tableoid AS rel, p.ctid AS tid FROM {} c JOIN {} p ON {} \
                     WHERE k.tbl = {} AND c.tableoid = k.rel AND c.ctid = k.tid",
                    literal(&e.to.name.to_string()),
                    from(e.from),
                    from(e.to),
                    join.join(" AND "),
                    literal(&e.from.name.to_string())
                )
            })
            .collect();
        let walk = if steps.is_empty() {
            format!("WITH keep(tbl, rel, tid) AS ({})", base.join(" UNION "))
        } else {
            format!(
                "WITH RECURSIVE keep(tbl, rel, tid) AS ({} UNION SELECT x.tbl, x.rel, x.tid \
                 FROM keep k CROSS JOIN LATERAL ({}) x)",
                base.join(" UNION "),
                steps.join(" UNION ALL ")
            )
        };
        for t in tables
            .iter()
            .filter(|t| in_group(t) && limited.contains(&t.name))
        {
            let mine = format!("FROM keep WHERE tbl = {}", literal(&t.name.to_string()));
            // A plain table reads the reached rows by their ctids (a TID scan, only their
            // pages); a partitioned one, whose partitions share ctids, by both.
            let condition = if t.is_partitioned() {
                format!("(tableoid, ctid) IN ({walk} SELECT rel, tid {mine})")
            } else {
                format!("ctid = ANY (ARRAY({walk} SELECT tid {mine}))")
            };
            subsets.conditions.insert(t.name.clone(), condition);
            subsets.walks.insert(t.name.clone(), walk.clone());
            subsets
                .partitioned
                .insert(t.name.clone(), t.is_partitioned());
        }
    }
    subsets
}

/// What a run's row filters come to, per table they limit.
#[derive(Debug, Clone, Default)]
pub struct Subsets {
    /// The condition that picks a limited table's rows, complete (its group's walk inside):
    /// what its staging object and `verify` read.
    pub conditions: BTreeMap<QualifiedName, String>,
    /// The walk of a limited table's group, `WITH [RECURSIVE] keep(tbl, rel, tid) AS (...)`:
    /// a unit runs it once and keeps what it reached, which each of its tables then reads by.
    pub walks: BTreeMap<QualifiedName, String>,
    /// Whether a limited table is partitioned (its partitions share ctids).
    pub partitioned: BTreeMap<QualifiedName, bool>,
}

impl Subsets {
    /// Whether a filter limits the table.
    pub fn limits(&self, table: &QualifiedName) -> bool {
        self.conditions.contains_key(table)
    }
}

/// Each table's group: the tables keys connect it to, either way.
fn connected(tables: &[Table], edges: &[Edge]) -> BTreeMap<QualifiedName, usize> {
    let index = positions(tables);
    let mut groups = Components::new(tables.len());
    for e in edges {
        groups.join(index[&e.from.name], index[&e.to.name]);
    }
    tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), groups.root(i)))
        .collect()
}

/// `"a", "b"`.
fn list(columns: &[Ident]) -> String {
    columns
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `p."a", p."b"`.
fn prefixed(alias: &str, columns: &[Ident]) -> String {
    columns
        .iter()
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each table's strongly connected component in the foreign-key graph (Tarjan's algorithm):
/// tables that reach each other through keys share one, so a key between them is on a cycle.
fn strongly_connected(tables: &[Table], edges: &[Edge]) -> BTreeMap<QualifiedName, usize> {
    let index = positions(tables);
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); tables.len()];
    for e in edges {
        next[index[&e.from.name]].push(index[&e.to.name]);
    }
    struct State {
        counter: usize,
        order: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        on_stack: Vec<bool>,
        component: Vec<usize>,
        components: usize,
    }
    fn visit(v: usize, next: &[Vec<usize>], s: &mut State) {
        s.order[v] = Some(s.counter);
        s.low[v] = s.counter;
        s.counter += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in &next[v] {
            match s.order[w] {
                None => {
                    visit(w, next, s);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(o) if s.on_stack[w] => s.low[v] = s.low[v].min(o),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.order[v] {
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                s.component[w] = s.components;
                if w == v {
                    break;
                }
            }
            s.components += 1;
        }
    }
    let n = tables.len();
    let mut s = State {
        counter: 0,
        order: vec![None; n],
        low: vec![0; n],
        stack: Vec::new(),
        on_stack: vec![false; n],
        component: vec![0; n],
        components: 0,
    };
    for v in 0..n {
        if s.order[v].is_none() {
            visit(v, &next, &mut s);
        }
    }
    tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), s.component[i]))
        .collect()
}

//! The foreign-key graph: which tables must load in one unit, and in what order.

use std::collections::{BTreeMap, BTreeSet};

use crate::source::{ConstraintKind, Table};
use crate::sql::QualifiedName;

/// Groups tables into units that must load in one transaction: tables joined by foreign keys
/// (in either direction, within the chosen set) belong together, so that truncating and
/// reloading them is atomic and the keys can be checked when the unit commits; so do
/// inheritance children and their parents.
pub(super) fn foreign_key_groups(tables: &[Table]) -> Vec<Vec<usize>> {
    let index = positions(tables);
    let mut groups = Components::new(tables.len());
    for (i, t) in tables.iter().enumerate() {
        let references = t.constraints.iter().filter_map(|c| match &c.kind {
            ConstraintKind::ForeignKey { references } => Some(references),
            _ => None,
        });
        // An inheritance child is made INHERITS its parents: it needs them in its unit.
        for other in references.chain(&t.inherits) {
            if let Some(&j) = index.get(other) {
                groups.join(i, j);
            }
        }
    }
    let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..tables.len() {
        members.entry(groups.root(i)).or_default().push(i);
    }
    members.into_values().collect()
}

/// Each table's position in `tables`, by name.
pub(super) fn positions(tables: &[Table]) -> BTreeMap<&QualifiedName, usize> {
    tables
        .iter()
        .enumerate()
        .map(|(i, t)| (&t.name, i))
        .collect()
}

/// Connected components of `0..n` as links join them (union-find): each is named by its
/// smallest member.
pub(super) struct Components(Vec<usize>);

impl Components {
    pub(super) fn new(n: usize) -> Components {
        Components((0..n).collect())
    }

    /// The component of `i`.
    pub(super) fn root(&mut self, i: usize) -> usize {
        let mut root = i;
        while self.0[root] != root {
            root = self.0[root];
        }
        self.0[i] = root;
        root
    }

    /// Puts `a` and `b` in one component.
    pub(super) fn join(&mut self, a: usize, b: usize) {
        let (a, b) = (self.root(a), self.root(b));
        self.0[a.max(b)] = a.min(b);
    }
}

/// Orders tables so that a referenced table loads before the tables that reference it (an
/// existing foreign key checks each inserted row), and an inheritance parent before its
/// children (which are made INHERITS it). Tables on a cycle keep their catalog order and are
/// returned in the second set.
pub(super) fn load_order<'a>(group: &[&'a Table]) -> (Vec<&'a Table>, BTreeSet<QualifiedName>) {
    let names: BTreeSet<&QualifiedName> = group.iter().map(|t| &t.name).collect();
    let mut remaining: Vec<&Table> = group.to_vec();
    let mut ordered = Vec::new();
    let mut placed: BTreeSet<QualifiedName> = BTreeSet::new();
    loop {
        let ready = remaining.iter().position(|t| {
            let before = |other: &QualifiedName| {
                other == &t.name || !names.contains(other) || placed.contains(other)
            };
            t.inherits.iter().all(before)
                && t.constraints.iter().all(|c| match &c.kind {
                    ConstraintKind::ForeignKey { references } => before(references),
                    _ => true,
                })
        });
        match ready {
            Some(i) => {
                let t = remaining.remove(i);
                placed.insert(t.name.clone());
                ordered.push(t);
            }
            None => break,
        }
    }
    let cyclic = remaining.iter().map(|t| t.name.clone()).collect();
    ordered.extend(remaining);
    (ordered, cyclic)
}

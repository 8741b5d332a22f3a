//! The services point one way: no module of `src/services/` reaches, through its `use`s and
//! paths, back to itself. (What a circle meant before: `payments → credits →
//! checkout_sessions → payments`, so no one of them could be read or changed alone.) What
//! happens when money is secured or given back lives in `services/settlement`, which every
//! money path uses and which uses no other service.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The services each module of `src/services/` names (`crate::services::x`, `super::x`,
/// `crate::services::{x, y::…}`).
fn arrows() -> BTreeMap<String, BTreeSet<String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/services");
    let modules: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".rs").filter(|m| *m != "mod").map(str::to_string)
        })
        .collect();
    let mut arrows = BTreeMap::new();
    for m in &modules {
        let text = std::fs::read_to_string(dir.join(format!("{m}.rs"))).unwrap();
        let mut uses = BTreeSet::new();
        for prefix in ["crate::services::", "super::"] {
            for (at, _) in text.match_indices(prefix) {
                let rest = &text[at + prefix.len()..];
                let named: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => group[..group.find('}').unwrap_or(group.len())].split(',').collect(),
                    None => vec![rest],
                };
                for n in named {
                    let n = n.trim();
                    let end = n.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(n.len());
                    let name = &n[..end];
                    if name != m && modules.contains(name) {
                        uses.insert(name.to_string());
                    }
                }
            }
        }
        arrows.insert(m.clone(), uses);
    }
    arrows
}

/// A path from `from` back to `from`, if any.
fn circle(arrows: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    fn walk(
        arrows: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in &arrows[at] {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(arrows, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![from.to_string()];
    walk(arrows, from, from, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_service_reaches_back_to_itself() {
    let arrows = arrows();
    assert!(arrows.contains_key("payments") && arrows.contains_key("settlement"), "{arrows:?}");
    for m in arrows.keys() {
        if let Some(path) = circle(&arrows, m) {
            panic!("import circle in services: {}", path.join(" → "));
        }
    }
}

#[test]
fn settlement_uses_no_other_service() {
    assert_eq!(arrows()["settlement"], BTreeSet::new());
}

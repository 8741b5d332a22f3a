//! Rolling upgrades: servers of release N and N+1 run side by side on one database while
//! they are replaced one by one, so a migration within a release may only add (tables,
//! columns with defaults, indexes). Removing or renaming something the older servers still
//! read waits for the next release's baseline, and takes the release notes to say so.

use std::path::Path;

/// The last migration of the last release (0.1.0 ships 0001–0010). Every later migration is
/// additive only; raise this at a release, with a CHANGELOG entry for anything it allows.
const BASELINE: u32 = 10;

/// Statements that take something away from servers still running the previous version.
const DESTRUCTIVE: [&str; 5] = ["DROP TABLE", "DROP COLUMN", "RENAME", "DROP INDEX", "DROP VIEW"];

fn migrations(backend: &str) -> Vec<(u32, String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
    let mut out: Vec<(u32, String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let number = name.split('_').next().unwrap().parse().unwrap_or_else(|_| panic!("{name}: no number"));
            (number, name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// SQL without its `--` comments, upper-cased, whitespace collapsed.
fn statements(sql: &str) -> String {
    let code: Vec<&str> = sql.lines().map(|l| l.split("--").next().unwrap_or_default()).collect();
    code.join(" ").split_whitespace().collect::<Vec<_>>().join(" ").to_uppercase()
}

#[test]
fn migrations_after_the_baseline_only_add() {
    for backend in ["sqlite", "postgres"] {
        for (number, name, sql) in migrations(backend) {
            if number <= BASELINE {
                continue;
            }
            let code = statements(&sql);
            for word in DESTRUCTIVE {
                assert!(
                    !code.contains(word),
                    "migrations/{backend}/{name} contains `{word}`: within a release migrations only add \
                     (servers of the previous version still run on the database during an upgrade)"
                );
            }
        }
    }
}

#[test]
fn both_backends_have_the_same_migrations() {
    let names = |b| migrations(b).into_iter().map(|(_, name, _)| name).collect::<Vec<_>>();
    assert_eq!(names("sqlite"), names("postgres"));
}

#[test]
fn the_rule_catches_what_it_should() {
    assert!(statements("ALTER TABLE orders\n  DROP   column note; -- gone").contains("DROP COLUMN"));
    assert!(!statements("-- DROP TABLE x\nCREATE TABLE y (id TEXT)").contains("DROP TABLE"));
}

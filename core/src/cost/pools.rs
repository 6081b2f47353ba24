//! The one pools loader: a TOML text of `[[pools]]` tables into a validated
//! [`Catalogue`], with every mistake located as `{file, line, pool, field,
//! reason}`. The simulator and `spotenc deploy render` load whole files
//! through [`load_pools`]; the coordinator's `pools_file` through
//! [`parse_pool_entries`] (its entries apply over the built-in catalogue);
//! every entry, the operator's WorkerPool included, is validated by the
//! catalogue's one `build`.

use std::fmt;
use std::path::Path;

use super::catalogue::{parse_entries, Catalogue, PoolEntry};

/// Where a pools file is wrong and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolsError {
    pub file: String,
    /// 1-based; `None` when the mistake has no line (an empty file).
    pub line: Option<usize>,
    /// The entry at fault, when one is.
    pub pool: Option<String>,
    pub field: Option<String>,
    pub reason: String,
}

impl fmt::Display for PoolsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        match (&self.pool, &self.field) {
            (Some(pool), Some(field)) => write!(f, ": pool {pool:?}: {field} {}", self.reason),
            _ => write!(f, ": {}", self.reason),
        }
    }
}

impl std::error::Error for PoolsError {}

/// Reads a pools file: exactly the pools it lists (an entry named like a
/// built-in pool starts from the built-in fields).
pub fn load_pools(path: &Path) -> Result<Catalogue, PoolsError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| PoolsError {
        file: file.clone(),
        line: None,
        pool: None,
        field: None,
        reason: format!("cannot read: {e}"),
    })?;
    parse_pools(&text, &file)
}

/// [`load_pools`] on a text already read; `file` names it in errors.
pub fn parse_pools(text: &str, file: &str) -> Result<Catalogue, PoolsError> {
    let entries = parse_pool_entries(text, file)?;
    if entries.is_empty() {
        return Err(PoolsError {
            file: file.into(),
            line: None,
            pool: None,
            field: None,
            reason: "no [[pools]] entries".into(),
        });
    }
    let all = Catalogue::check(&entries).map_err(|e| {
        let line = entries
            .iter()
            .position(|p| p.name.trim() == e.pool)
            .map(|i| field_line(text, i, &e.field));
        PoolsError {
            file: file.into(),
            line: Some(line.unwrap_or(0)),
            pool: Some(e.pool),
            field: Some(e.field),
            reason: e.reason,
        }
    })?;
    let mut c = Catalogue::default();
    for e in &entries {
        let p = all.get(&e.name).expect("loaded").clone();
        c.pools.insert(p.name.clone(), p);
    }
    Ok(c)
}

/// The entries of a pools text, unvalidated, with syntax errors and
/// unknown fields located.
pub fn parse_pool_entries(text: &str, file: &str) -> Result<Vec<PoolEntry>, PoolsError> {
    if let Err(e) = toml::from_str::<toml::Table>(text) {
        return Err(toml_error(text, file, &e));
    }
    parse_entries(text).map_err(|e| {
        let e = e.to_string();
        let field = e
            .split("unknown field `")
            .nth(1)
            .and_then(|r| r.split('`').next());
        let line = field.map(|f| line_of(text, f, 0)).filter(|&l| l > 0);
        PoolsError {
            file: file.into(),
            line,
            pool: None,
            field: field.map(str::to_string),
            reason: e,
        }
    })
}

/// The line of `field` within the `nth` `[[pools]]` entry (its `name`
/// line when the field is not written there).
fn field_line(text: &str, nth: usize, field: &str) -> usize {
    let start = line_of(text, "name", nth);
    text.lines()
        .enumerate()
        .skip(start)
        .take_while(|(_, l)| !l.trim_start().starts_with("[[pools]]"))
        .find(|(_, l)| {
            l.trim_start()
                .strip_prefix(field)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map_or(start, |(i, _)| i + 1)
}

/// The 1-based line of the `nth` (0-based) line assigning `field`; 0 when
/// there is none.
pub fn line_of(text: &str, field: &str, nth: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start();
            l.strip_prefix(field)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .nth(nth)
        .map_or(0, |(i, _)| i + 1)
}

/// A TOML syntax error located: an unknown field's own line, else where
/// the parser stopped.
fn toml_error(text: &str, file: &str, e: &toml::de::Error) -> PoolsError {
    let msg = e.message();
    let unknown = msg
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
        .map(|f| line_of(text, f, 0))
        .filter(|&l| l > 0);
    let line = unknown.or_else(|| {
        e.span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
    });
    PoolsError {
        file: file.into(),
        line,
        pool: None,
        field: None,
        reason: msg.to_string(),
    }
}

/// A TOML error as `file:line: message`, for other files read beside the
/// pools (the simulator's workload).
pub fn toml_error_text(text: &str, file: &str, e: &toml::de::Error) -> String {
    toml_error(text, file, e).to_string()
}

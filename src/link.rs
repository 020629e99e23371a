//! Sessions and the server-to-server link.
//!
//! The tool opens one read-only session on the source (for the catalog) and sessions on the
//! target; rows never pass through it. On the target, the link is the dblink extension, a
//! `dblink_fdw` foreign server and a user mapping that holds the source credentials, so that
//! no view definition ever contains a password.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, Context};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::cli::StagingKind;
use crate::conninfo::ConnInfo;
use crate::plan::{
    staging_name, ExtensionState, Purpose, StagingObject, Step, TargetState, REGISTRY,
};
use crate::source::{Catalog, Requirement, Shape, TriggerState};
use crate::sql::{Ident, QualifiedName};

/// Which server a session belongs to, for messages.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    /// The production side, only read.
    Source,
    /// The developer's side.
    Target,
}

impl Side {
    fn word(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Target => "target",
        }
    }
}

/// Opens a session; the driver task runs in the background until the client is dropped.
/// A source session is read-only from its first statement (`default_transaction_read_only`
/// as a startup option, so no statement can run before it applies).
pub async fn connect(info: &ConnInfo, side: Side) -> anyhow::Result<Client> {
    let mut config = info.to_driver_config()?;
    if let Side::Source = side {
        let options = match info.get("options") {
            Some(o) => format!("{o} -c default_transaction_read_only=on"),
            None => "-c default_transaction_read_only=on".to_string(),
        };
        config.options(&options);
    }
    let fail = |e: tokio_postgres::Error| {
        let message = describe(&e);
        let hint = match crate::tls::hint(&e) {
            Some(h) => format!("; {h}"),
            None if e.as_db_error().is_none() => {
                "; is the server running there and accepting connections?".to_string()
            }
            None => String::new(),
        };
        anyhow!(
            "could not connect to the {} database {}: {message}{hint}",
            side.word(),
            info.label(),
        )
    };
    // The driver task runs until the client is dropped; its error, if any, surfaces on the next
    // query through the client.
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let client = match crate::tls::connector(info, home.as_deref())? {
        Some(tls) => {
            let (client, connection) = config.connect(tls).await.map_err(fail)?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client
        }
        None => {
            let (client, connection) = config.connect(NoTls).await.map_err(fail)?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client
        }
    };
    Ok(client)
}

/// The server's own words for a database error, or the driver's for anything else, with the
/// source chain, never a conninfo.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = db.message().to_string();
            if let Some(detail) = db.detail() {
                s.push_str(&format!(" ({detail})"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                s.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            s
        }
    }
}

/// Reads what the plan needs to know about the target. Only reads: `snapcopy plan` calls it.
pub async fn target_state(
    client: &Client,
    staging_schema: &Ident,
    managed: Vec<Managed>,
    catalog: &Catalog,
) -> anyhow::Result<TargetState> {
    let mut state = TargetState::default();
    let row = client
        .query_opt(
            "SELECT n.nspname FROM pg_catalog.pg_extension e \
             JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'dblink'",
            &[],
        )
        .await
        .context("could not read the target's extensions")?;
    state.dblink_schema = row.map(|r| Ident::new(r.get::<_, String>(0)));

    for m in managed {
        if m.replaced {
            state.replaced.insert(m.name);
        } else {
            state.managed.insert(m.name, m.shape);
        }
    }

    let staging_rows = client
        .query(
            "SELECT c.relname, c.relkind::text, EXISTS (SELECT 1 FROM pg_catalog.pg_index i \
             WHERE i.indrelid = c.oid AND i.indisunique) FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('v', 'm')",
            &[&staging_schema.raw()],
        )
        .await?;
    state.staging_objects = staging_rows
        .iter()
        .map(|r| {
            let kind = if r.get::<_, String>(1) == "m" {
                StagingKind::Matview
            } else {
                StagingKind::View
            };
            let object = StagingObject {
                kind,
                unique_index: r.get(2),
            };
            (r.get::<_, String>(0), object)
        })
        .collect::<BTreeMap<_, _>>();
    // Only the chosen tables' staging names matter; the map keeps the lookup cheap.
    let wanted: BTreeSet<String> = catalog
        .tables
        .iter()
        .map(|t| staging_name(&t.name))
        .collect();
    state.staging_objects.retain(|k, _| wanted.contains(k));

    let schemas: Vec<&str> = catalog.tables.iter().map(|t| t.name.schema.raw()).collect();
    let names: Vec<&str> = catalog.tables.iter().map(|t| t.name.name.raw()).collect();
    let rows = client
        .query(
            "SELECT n.nspname, c.relname, con.conname \
             FROM unnest($1::text[], $2::text[]) AS w(schema_name, table_name) \
             JOIN pg_catalog.pg_namespace n ON n.nspname = w.schema_name \
             JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = w.table_name \
             LEFT JOIN pg_catalog.pg_constraint con ON con.conrelid = c.oid",
            &[&schemas, &names],
        )
        .await
        .context("could not read the target's tables")?;
    for r in rows {
        let name = QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1));
        if let Some(con) = r.get::<_, Option<String>>(2) {
            state.existing_constraints.insert((name.clone(), con));
        }
        state.existing_tables.insert(name);
    }

    let type_schemas: Vec<&str> = catalog.types.iter().map(|t| t.name.schema.raw()).collect();
    let type_names: Vec<&str> = catalog.types.iter().map(|t| t.name.name.raw()).collect();
    let rows = client
        .query(
            "SELECT n.nspname, t.typname, \
             ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e \
                   WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) \
             FROM unnest($1::text[], $2::text[]) AS w(schema_name, type_name) \
             JOIN pg_catalog.pg_namespace n ON n.nspname = w.schema_name \
             JOIN pg_catalog.pg_type t ON t.typnamespace = n.oid AND t.typname = w.type_name",
            &[&type_schemas, &type_names],
        )
        .await
        .context("could not read the target's types")?;
    for r in rows {
        let name = QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1));
        state
            .existing_types
            .insert(name, r.get::<_, Vec<String>>(2));
    }

    let (schemas, names): (Vec<&str>, Vec<&str>) = catalog
        .tables
        .iter()
        .flat_map(|t| std::iter::once(t).chain(&t.partitions))
        .map(|t| (t.name.schema.raw(), t.name.name.raw()))
        .unzip();
    for r in client
        .query(
            "SELECT n.nspname, c.relname, t.tgname, t.tgenabled::text \
             FROM unnest($1::text[], $2::text[]) AS w(s, n) \
             JOIN pg_catalog.pg_namespace n ON n.nspname = w.s \
             JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = w.n \
             JOIN pg_catalog.pg_trigger t ON t.tgrelid = c.oid AND NOT t.tgisinternal \
             ORDER BY 1, 2, 3",
            &[&schemas, &names],
        )
        .await
        .context("could not read the target's triggers")?
    {
        state
            .triggers
            .entry(QualifiedName::new(
                r.get::<_, String>(0),
                r.get::<_, String>(1),
            ))
            .or_default()
            .push((
                Ident::new(r.get::<_, String>(2)),
                TriggerState::from_catalog(&r.get::<_, String>(3)),
            ));
    }

    let (schemas, names): (Vec<&str>, Vec<&str>) = catalog
        .tables
        .iter()
        .map(|t| (t.name.schema.raw(), t.name.name.raw()))
        .unzip();
    for r in client
        .query(
            "SELECT pn.nspname, p.relname, cn.nspname, c.relname \
             FROM unnest($1::text[], $2::text[]) AS w(s, n) \
             JOIN pg_catalog.pg_namespace pn ON pn.nspname = w.s \
             JOIN pg_catalog.pg_class p ON p.relnamespace = pn.oid AND p.relname = w.n \
             JOIN pg_catalog.pg_inherits i ON i.inhparent = p.oid \
             JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid AND NOT c.relispartition \
             JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace ORDER BY 1, 2, 3, 4",
            &[&schemas, &names],
        )
        .await
        .context("could not read the target's inheritance")?
    {
        state
            .children
            .entry(QualifiedName::new(
                r.get::<_, String>(0),
                r.get::<_, String>(1),
            ))
            .or_default()
            .push(QualifiedName::new(
                r.get::<_, String>(2),
                r.get::<_, String>(3),
            ));
    }

    let extensions: Vec<&str> = catalog.extensions.iter().map(|e| e.name.as_str()).collect();
    for r in client
        .query(
            "SELECT w.name, EXISTS (SELECT 1 FROM pg_catalog.pg_extension e \
             WHERE e.extname = w.name), EXISTS (SELECT 1 FROM \
             pg_catalog.pg_available_extensions a WHERE a.name = w.name) \
             FROM unnest($1::text[]) AS w(name)",
            &[&extensions],
        )
        .await
        .context("could not read the target's extensions")?
    {
        let state_of = match (r.get::<_, bool>(1), r.get::<_, bool>(2)) {
            (true, _) => ExtensionState::Installed,
            (false, true) => ExtensionState::Available,
            (false, false) => ExtensionState::Missing,
        };
        state.extensions.insert(r.get(0), state_of);
    }

    // Collations of another encoding than the database's cannot be used there.
    let (schemas, names): (Vec<&str>, Vec<&str>) = catalog
        .collations
        .iter()
        .map(|c| (c.name.schema.raw(), c.name.name.raw()))
        .unzip();
    for r in client
        .query(
            "SELECT n.nspname, c.collname FROM unnest($1::text[], $2::text[]) AS w(s, n) \
             JOIN pg_catalog.pg_namespace n ON n.nspname = w.s \
             JOIN pg_catalog.pg_collation c ON c.collnamespace = n.oid AND c.collname = w.n \
             WHERE c.collencoding IN (-1, pg_catalog.pg_char_to_encoding(\
             pg_catalog.getdatabaseencoding()))",
            &[&schemas, &names],
        )
        .await
        .context("could not read the target's collations")?
    {
        state.existing_collations.insert(QualifiedName::new(
            r.get::<_, String>(0),
            r.get::<_, String>(1),
        ));
    }

    // Functions are told apart by schema, name and argument types, by name on both servers.
    let (schemas, names): (Vec<&str>, Vec<&str>) = catalog
        .functions
        .iter()
        .map(|f| (f.name.schema.raw(), f.name.name.raw()))
        .unzip();
    for r in client
        .query(
            "SELECT n.nspname || '.' || p.proname || '(' || coalesce((\
             SELECT pg_catalog.string_agg(tn.nspname || '.' || t.typname, ',' ORDER BY a.ord) \
             FROM unnest(p.proargtypes::pg_catalog.oid[]) WITH ORDINALITY AS a(typ, ord) \
             JOIN pg_catalog.pg_type t ON t.oid = a.typ \
             JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace), '') || ')' \
             FROM unnest($1::text[], $2::text[]) AS w(s, n) \
             JOIN pg_catalog.pg_namespace n ON n.nspname = w.s \
             JOIN pg_catalog.pg_proc p ON p.pronamespace = n.oid AND p.proname = w.n",
            &[&schemas, &names],
        )
        .await
        .context("could not read the target's functions")?
    {
        state.existing_functions.insert(r.get(0));
    }
    Ok(state)
}

/// The tables on the target with a foreign key to one of `tables` (TRUNCATE refuses to empty a
/// referenced table alone), each with the table it references.
pub async fn referencing(
    client: &Client,
    tables: &[&QualifiedName],
) -> anyhow::Result<Vec<(QualifiedName, QualifiedName)>> {
    let schemas: Vec<&str> = tables.iter().map(|t| t.schema.raw()).collect();
    let names: Vec<&str> = tables.iter().map(|t| t.name.raw()).collect();
    let rows = client
        .query(
            "WITH w AS (SELECT c.oid, n.nspname, c.relname \
               FROM unnest($1::text[], $2::text[]) AS u(s, n) \
               JOIN pg_catalog.pg_namespace n ON n.nspname = u.s \
               JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = u.n) \
             SELECT DISTINCT dn.nspname, d.relname, w.nspname, w.relname \
               FROM w JOIN pg_catalog.pg_constraint k ON k.confrelid = w.oid \
               JOIN pg_catalog.pg_class d ON d.oid = k.conrelid \
               JOIN pg_catalog.pg_namespace dn ON dn.oid = d.relnamespace \
              WHERE k.contype = 'f' AND k.conparentid = 0 AND k.conrelid <> k.confrelid \
             ORDER BY 1, 2, 3, 4",
            &[&schemas, &names],
        )
        .await
        .context("could not read the target's foreign keys")?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
                QualifiedName::new(r.get::<_, String>(2), r.get::<_, String>(3)),
            )
        })
        .collect())
}

/// The tables snapcopy manages on the target, with the source shape recorded at their last
/// refresh; empty when the staging schema has no registry yet.
pub async fn managed_tables(
    client: &Client,
    staging_schema: &Ident,
) -> anyhow::Result<Vec<Managed>> {
    let exists: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass(pg_catalog.quote_ident($1) || '.' || \
             pg_catalog.quote_ident($2)) IS NOT NULL",
            &[&staging_schema.raw(), &REGISTRY],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    // The oid through to_jsonb: a registry made before it was recorded lacks the column until
    // the next setup adds it.
    let sql = format!(
        "SELECT r.table_schema, r.table_name, r.source_shape::text, \
         coalesce((pg_catalog.to_jsonb(r) ->> 'table_oid')::oid <> c.oid, false) \
         FROM {}.{} r \
         LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = r.table_schema \
         LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = r.table_name \
         ORDER BY r.table_schema, r.table_name",
        staging_schema,
        Ident::new(REGISTRY)
    );
    let rows = client
        .query(&sql, &[])
        .await
        .context("could not read snapcopy's registry of managed tables")?;
    Ok(rows
        .iter()
        .map(|r| Managed {
            name: QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
            shape: r
                .get::<_, Option<String>>(2)
                .and_then(|json| serde_json::from_str(&json).ok()),
            replaced: r.get(3),
        })
        .collect())
}

/// A table snapcopy's registry lists.
#[derive(Debug, Clone)]
pub struct Managed {
    /// Its name on the target.
    pub name: QualifiedName,
    /// The source's shape at its last refresh.
    pub shape: Option<Shape>,
    /// A table of that name exists on the target, but not the one snapcopy made (it was
    /// dropped and made again since): snapcopy treats it as a table it did not create.
    pub replaced: bool,
}

/// Runs the plan's setup in one transaction. A statement that makes something only some tables
/// need ([`Purpose::Prerequisite`], [`Purpose::ForTable`]) runs in a savepoint: when it fails,
/// it is undone, the setup goes on, and it comes back with why, so that only the tables that
/// need it are refused. Any other failure changes nothing and comes back as an error that says
/// what to do: dblink or an extension missing, or a privilege lacking.
pub async fn run_setup(
    client: &mut Client,
    steps: &[Step],
    verbose: bool,
) -> anyhow::Result<Vec<(Purpose, String)>> {
    let tx = client.transaction().await?;
    let mut unmade: Vec<(Purpose, String)> = Vec::new();
    for step in steps {
        if verbose {
            eprintln!("{};", step.shown);
        }
        for (name, value) in &step.settings {
            tx.execute("SELECT pg_catalog.set_config($1, $2, true)", &[name, value])
                .await
                .map_err(|e| setup_error(&e, step))?;
        }
        if !matches!(
            step.purpose,
            Purpose::Prerequisite(_) | Purpose::ForTable(_)
        ) {
            if let Err(e) = tx.batch_execute(&step.sql).await {
                return Err(setup_error(&e, step));
            }
            continue;
        }
        tx.batch_execute("SAVEPOINT snapcopy_setup").await?;
        match tx.batch_execute(&step.sql).await {
            Ok(()) => tx.batch_execute("RELEASE SAVEPOINT snapcopy_setup").await?,
            Err(e) => {
                tx.batch_execute(
                    "ROLLBACK TO SAVEPOINT snapcopy_setup; RELEASE SAVEPOINT snapcopy_setup",
                )
                .await?;
                unmade.push((
                    step.purpose.clone(),
                    unmade_message(e.code(), &describe(&e), step),
                ));
            }
        }
    }
    tx.commit()
        .await
        .context("could not commit the setup on the target")?;
    Ok(unmade)
}

/// Why something tables need could not be made on the target, in words that follow "which
/// could not be made on the target: ".
fn unmade_message(code: Option<&SqlState>, message: &str, step: &Step) -> String {
    let what = first_line(&step.shown);
    match (&step.purpose, code) {
        (Purpose::Prerequisite(Requirement::Extension(ext)), Some(code))
            if *code == SqlState::UNDEFINED_FILE =>
        {
            format!(
                "its package is not installed on the target server ({message}): install it \
                 there ({}) and run snapcopy again",
                package_for(ext)
            )
        }
        (Purpose::Prerequisite(Requirement::Extension(ext)), Some(code))
            if *code == SqlState::INSUFFICIENT_PRIVILEGE =>
        {
            format!(
                "the target role may not create it ({message}): ask a superuser to run CREATE \
                 EXTENSION {ext} in the target database, or connect as a role that may"
            )
        }
        _ => format!(
            "{message} (while running: {what}); make it on the target by hand, as on the \
             source, and run snapcopy again"
        ),
    }
}

/// A statement's first line, cut to 200 bytes, for messages.
pub fn first_line(sql: &str) -> String {
    let line = sql.lines().next().unwrap_or_default();
    let cut = crate::sql::truncate_bytes(line, 200);
    if cut.len() < line.len() {
        format!("{cut}...")
    } else {
        line.to_string()
    }
}

fn setup_error(e: &tokio_postgres::Error, step: &Step) -> anyhow::Error {
    setup_message(e.code(), &describe(e), step)
}

/// The message for a failed setup statement, from its SQLSTATE, the server's words and what
/// the statement was for: what is missing and what to do.
fn setup_message(code: Option<&SqlState>, message: &str, step: &Step) -> anyhow::Error {
    let shown = &step.shown;
    let extension = match &step.purpose {
        Purpose::LinkCheck => return anyhow!("{}", link_failure(code, message)),
        Purpose::Extension(name)
        | Purpose::Prerequisite(crate::source::Requirement::Extension(name)) => Some(name),
        Purpose::Prerequisite(_) | Purpose::ForTable(_) | Purpose::Other => None,
    };
    match (code, extension) {
        (Some(code), Some(ext)) if *code == SqlState::UNDEFINED_FILE => anyhow!(
            "the extension {ext} is not installed on the target server ({message}); install its \
             package there ({}) and run snapcopy again",
            package_for(ext)
        ),
        (Some(code), Some(ext)) if *code == SqlState::INSUFFICIENT_PRIVILEGE => anyhow!(
            "the target role may not create the extension {ext} ({message}); ask a superuser to \
             run CREATE EXTENSION {ext} in the target database, or connect as a role that may"
        ),
        (Some(code), None) if *code == SqlState::INSUFFICIENT_PRIVILEGE => anyhow!(
            "the target role lacks a privilege snapcopy needs for its setup ({message}); it \
             needs CREATE on the target database and USAGE on the dblink_fdw foreign-data \
             wrapper. The statement was: {shown}"
        ),
        _ => anyhow!(
            "setup on the target failed: {message}. The statement was: {shown}. Nothing was \
             changed (the setup rolled back); fix what PostgreSQL names and run snapcopy again"
        ),
    }
}

/// What to say when the target server cannot open its dblink connection to the source.
pub fn link_failure(code: Option<&SqlState>, message: &str) -> String {
    // dblink's own refusal of a connection without a password, for a role that is not a
    // superuser.
    if code == Some(&SqlState::S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED) {
        format!(
            "the target server's dblink refused to connect to the source: {message}. dblink lets \
             a role that is not a superuser connect only with a password that the source \
             actually asks for: give the source role a password in the connection string (or \
             ~/.pgpass) and have the source's pg_hba.conf use scram-sha-256 or md5 for \
             connections from the target server, or run snapcopy as a superuser of the target"
        )
    } else {
        format!(
            "the target server could not open its dblink connection to the source: {message}. \
             Check that the target server can reach the source (see --source-via) and that the \
             source accepts the credentials in the user mapping"
        )
    }
}

/// The Debian package that ships an extension, for error messages.
pub fn package_for(extension: &str) -> String {
    match extension {
        "postgis" | "postgis_raster" | "postgis_topology" | "postgis_sfcgal" => {
            "Debian: postgresql-15-postgis-3".into()
        }
        "dblink" | "citext" | "hstore" | "ltree" | "pg_trgm" | "cube" | "isn" | "btree_gist"
        | "btree_gin" | "uuid-ossp" | "pgcrypto" | "tablefunc" | "intarray" | "seg" => {
            "Debian: postgresql-contrib".into()
        }
        other => format!("the package that provides {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The setup's CREATE EXTENSION step for `name`.
    fn create_extension(name: &str) -> Step {
        let sql = format!("CREATE EXTENSION IF NOT EXISTS \"{name}\" WITH SCHEMA \"public\"");
        Step {
            phase: crate::plan::Phase::Setup,
            table: None,
            shown: sql.clone(),
            sql,
            settings: Vec::new(),
            batch: None,
            purpose: Purpose::Extension(name.into()),
            also: None,
        }
    }

    #[test]
    fn a_missing_extension_names_its_package() {
        let err = setup_message(
            Some(&SqlState::UNDEFINED_FILE),
            "could not open extension control file \"/usr/share/postgresql/15/extension/postgis.control\"",
            &create_extension("postgis"),
        )
        .to_string();
        assert!(
            err.starts_with("the extension postgis is not installed on the target server")
                && err.contains("Debian: postgresql-15-postgis-3"),
            "{err}"
        );
        let err = setup_message(
            Some(&SqlState::UNDEFINED_FILE),
            "could not open extension control file",
            &create_extension("dblink"),
        )
        .to_string();
        assert!(
            err.contains("the extension dblink is not installed")
                && err.contains("postgresql-contrib"),
            "{err}"
        );
    }
}

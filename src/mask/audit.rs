//! `snapcopy audit`: the columns of the chosen tables whose names or types look sensitive and
//! that no mask rule (nor `keep`) covers. Names are split into words (`lastLoginIp`,
//! `last_login_ip` and `LastLoginIP` all give `last login ip`) and matched against kinds of
//! personal or secret data; `inet` and `cidr` columns are addresses whatever their name; the
//! keys of `jsonb` columns are read from a sample of the source's rows and matched the same way.

use serde::Serialize;

use super::Masks;
use crate::source::{Column, Table};
use crate::sql::QualifiedName;

/// One column that looks sensitive and has no rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The table, as people write it.
    pub table: String,
    /// The column (with the JSON key, for a key found in a `jsonb` column: `data->'email'`).
    pub column: String,
    /// What it looks like: `email`, `phone`, `name`, `address`, `birth date`, `password`,
    /// `token`, `secret`, `IP address`, `IBAN`, `SSN`, `card`.
    pub looks_like: &'static str,
    /// Why: its name, its type, or a key of its values.
    pub because: &'static str,
}

/// The kinds of sensitive data, each with the words of a name that give it away (all of a
/// group's words must appear, in any order); the first kind that matches wins, so `ip address`
/// is an IP address and `email address` an email.
const KINDS: &[(&str, &[&[&str]])] = &[
    (
        "email",
        &[
            &["email"],
            &["e", "mail"],
            &["mail", "address"],
            &["emailaddress"],
        ],
    ),
    (
        "phone",
        &[
            &["phone"],
            &["mobile"],
            &["telephone"],
            &["tel"],
            &["fax"],
            &["cell"],
            &["msisdn"],
        ],
    ),
    (
        "name",
        &[
            &["first", "name"],
            &["last", "name"],
            &["full", "name"],
            &["middle", "name"],
            &["given", "name"],
            &["family", "name"],
            &["maiden", "name"],
            &["firstname"],
            &["lastname"],
            &["fullname"],
            &["surname"],
            &["forename"],
        ],
    ),
    (
        "IP address",
        &[&["ip"], &["ipaddr"], &["ipaddress"], &["remote", "addr"]],
    ),
    (
        "address",
        &[
            &["address"],
            &["street"],
            &["addr"],
            &["zip"],
            &["zipcode"],
            &["postal"],
            &["postcode"],
        ],
    ),
    (
        "birth date",
        &[
            &["birth"],
            &["birthday"],
            &["birthdate"],
            &["dob"],
            &["born"],
        ],
    ),
    (
        "password",
        &[
            &["password"],
            &["passwd"],
            &["pwd"],
            &["pass", "hash"],
            &["passphrase"],
        ],
    ),
    (
        "token",
        &[
            &["token"],
            &["api", "key"],
            &["apikey"],
            &["access", "key"],
            &["private", "key"],
            &["otp"],
            &["totp"],
            &["session", "id"],
        ],
    ),
    ("secret", &[&["secret"]]),
    (
        "IBAN",
        &[
            &["iban"],
            &["bic"],
            &["account", "number"],
            &["bank", "account"],
        ],
    ),
    (
        "SSN",
        &[
            &["ssn"],
            &["social", "security"],
            &["national", "id"],
            &["tax", "id"],
            &["passport"],
            &["nin"],
        ],
    ),
    (
        "card",
        &[
            &["card", "number"],
            &["credit", "card"],
            &["cc", "number"],
            &["pan"],
            &["cvv"],
            &["cvc"],
        ],
    ),
];

/// Tables whose plain `name` column is a person's name.
const PEOPLE: &[&str] = &[
    "user",
    "users",
    "customer",
    "customers",
    "employee",
    "employees",
    "person",
    "people",
    "persons",
    "member",
    "members",
    "contact",
    "contacts",
    "patient",
    "patients",
    "client",
    "clients",
    "staff",
    "author",
    "authors",
    "account",
    "accounts",
];

/// The lower-case words of a name: split at non-alphanumerics and where a lower-case letter
/// meets an upper-case one (`lastLoginIP` gives `last`, `login`, `ip`).
pub fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower && !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        out.push(word);
    }
    // `address2` is an address: a number after letters is not part of the word.
    out.into_iter()
        .map(|w| match w.trim_end_matches(|c: char| c.is_ascii_digit()) {
            "" => w,
            letters => letters.to_string(),
        })
        .collect()
}

/// What a name looks like, if it looks sensitive. `table` is the table's name, for a plain
/// `name` column.
pub fn looks_like(name: &str, table: &str) -> Option<&'static str> {
    let w = words(name);
    if w == ["name"] && PEOPLE.contains(&table.to_lowercase().as_str()) {
        return Some("name");
    }
    KINDS
        .iter()
        .find(|(_, groups)| {
            groups
                .iter()
                .any(|group| group.iter().all(|g| w.iter().any(|x| x == g)))
        })
        .map(|(kind, _)| *kind)
}

/// The columns of `table` that look sensitive by name or type and that `masks` gives no rule
/// (nor `keep`).
pub fn columns(table: &Table, masks: &Masks) -> Vec<Finding> {
    let covered = |c: &Column| {
        masks.rule(&table.name, &c.name).is_some()
            || masks.kept.contains(&(table.name.clone(), c.name.clone()))
    };
    let mut found = Vec::new();
    for c in table.columns.iter().filter(|c| !covered(c)) {
        let by_name = looks_like(c.name.raw(), table.name.name.raw());
        let by_type = matches!(c.type_sql.as_str(), "inet" | "cidr").then_some("IP address");
        let (looks, because) = match (by_name, by_type) {
            (Some(kind), _) => (kind, "its name"),
            (None, Some(kind)) => (kind, "its type"),
            (None, None) => continue,
        };
        found.push(Finding {
            table: table.name.human(),
            column: c.name.raw().to_string(),
            looks_like: looks,
            because,
        });
    }
    found
}

/// The query that reads the keys of a `jsonb` column from a sample of the source's rows (at
/// most 10,000 rows read, 1,000 keys kept): cheap on any table.
pub fn json_keys_sql(table: &QualifiedName, column: &Column) -> String {
    format!(
        "SELECT DISTINCT k FROM (SELECT {c} AS v FROM {table} LIMIT 10000) s, \
         LATERAL pg_catalog.jsonb_object_keys(CASE WHEN pg_catalog.jsonb_typeof(s.v) = 'object' \
         THEN s.v ELSE '{{}}'::jsonb END) AS k LIMIT 1000",
        c = column.name
    )
}

/// Findings for the keys found in a `jsonb` column's values.
pub fn json_findings(table: &Table, column: &Column, keys: &[String]) -> Vec<Finding> {
    keys.iter()
        .filter_map(|k| {
            looks_like(k, "").map(|kind| Finding {
                table: table.name.human(),
                column: format!("{}->'{}'", column.name.raw(), k.replace('\'', "''")),
                looks_like: kind,
                because: "a key of its values",
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_words() {
        assert_eq!(words("lastLoginIP"), ["last", "login", "ip"]);
        assert_eq!(words("last_login_ip"), ["last", "login", "ip"]);
        assert_eq!(words("E-Mail"), ["e", "mail"]);
        assert_eq!(words("address2"), ["address"]);
        assert_eq!(words("2fa"), ["2fa"]);
    }

    #[test]
    fn sensitive_names_are_recognised_and_others_are_not() {
        for (name, kind) in [
            ("email", "email"),
            ("contact_email", "email"),
            ("EmailAddress", "email"),
            ("mobile_phone", "phone"),
            ("first_name", "name"),
            ("lastName", "name"),
            ("street_address", "address"),
            ("date_of_birth", "birth date"),
            ("dob", "birth date"),
            ("encrypted_password", "password"),
            ("reset_token", "token"),
            ("client_secret", "secret"),
            ("last_login_ip", "IP address"),
            ("iban", "IBAN"),
            ("ssn", "SSN"),
            ("card_number", "card"),
        ] {
            assert_eq!(looks_like(name, "t"), Some(kind), "{name}");
        }
        for name in [
            "id",
            "created_at",
            "amount",
            "status",
            "description",
            "shipping_method",
        ] {
            assert_eq!(looks_like(name, "t"), None, "{name}");
        }
        assert_eq!(looks_like("name", "customers"), Some("name"));
        assert_eq!(looks_like("name", "products"), None);
    }
}

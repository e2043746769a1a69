//! The README against the scheme registry: every scheme hookguard accepts
//! has its row in the provider presets table and is named where the route
//! keys are explained, the table names no scheme hookguard lacks, and the
//! table of proofs says for each preset the kind of signer its proof uses.

use hookguard::schemes::registry::{self, Family, KeyKind, SCHEMES};

const README: &str = include_str!("../../README.md");

/// The lines of the README section headed `heading`.
fn section(heading: &str) -> Vec<&'static str> {
    README
        .lines()
        .skip_while(|line| *line != heading)
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .collect()
}

/// The first cell of each table row in `lines`, without its backticks.
fn first_cells(lines: &[&'static str]) -> Vec<&'static str> {
    lines
        .iter()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(cell, _)| cell)
        .collect()
}

/// The text of the `[[routes]]` table's row for `key`.
fn route_key_row(key: &str) -> &'static str {
    let row = format!("| `{key}` |");
    section("## Configuration reference")
        .into_iter()
        .find(|line| line.starts_with(&row))
        .unwrap_or_else(|| panic!("the README explains no route key {key}"))
}

/// `` `a`, `b` `` for the names, as the README lists them.
fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn every_preset_in_the_registry_has_a_row_in_the_readme_presets_table() {
    let rows = first_cells(&section("## Provider presets"));
    let presets: Vec<&str> = registry::names_where(|e| !matches!(e.family, Family::Generic));
    for name in &presets {
        assert!(rows.contains(name), "README presets table lacks {name}");
    }
    for row in &rows {
        assert!(
            presets.contains(row),
            "README presets table has {row}, which the registry lacks"
        );
    }
}

#[test]
fn the_route_keys_table_names_the_schemes_the_registry_says() {
    let every: Vec<&str> = SCHEMES.iter().map(|e| e.name).collect();
    let scheme_row = route_key_row("scheme");
    for name in &every {
        assert!(
            scheme_row.contains(&format!("`{name}`"))
                || scheme_row.contains(&format!("\"{name}\"")),
            "the scheme row does not name {name}"
        );
    }
    let signs_url = registry::names_where(|e| e.signs_url);
    assert!(route_key_row("public_url").contains(&quoted(&signs_url)));
    let public_keys = registry::names_where(|e| e.keys == KeyKind::PublicKeys);
    assert!(route_key_row("public_keys").contains(&quoted(&public_keys)));
    let verify_token = registry::names_where(|e| e.needs_verify_token);
    assert!(route_key_row("verify_token").contains(&quoted(&verify_token)));
}

#[test]
fn the_proofs_table_lists_every_preset_with_the_kind_of_signer_its_proof_uses() {
    use crate::preset_proofs::{kind, Kind};
    let lines = section("## Provider presets");
    let table: Vec<&str> = lines
        .iter()
        .skip_while(|line| **line != "### How each preset is proven")
        .filter(|line| line.starts_with("| `"))
        .copied()
        .collect();
    let presets: Vec<&str> =
        registry::names_where(|e| !matches!(e.family, Family::Generic) && e.keys != KeyKind::None);
    assert_eq!(
        first_cells(&table),
        presets,
        "one row per preset, in registry order"
    );
    for (row, preset) in table.iter().zip(&presets) {
        let signer = row.split('|').nth(2).expect("a second cell").trim();
        let expected = match registry::find(preset).expect("listed").keys {
            KeyKind::PublicKeys => "fresh key pair",
            KeyKind::Certificate => "local CA",
            _ => match kind(preset) {
                Kind::Sdk(_) => "SDK: ",
                Kind::SdkChecked(_) => "second implementation, checked by the SDK: ",
                Kind::Vector(_) => "published vector: ",
                Kind::Doc => "second implementation",
            },
        };
        assert!(
            signer.starts_with(expected),
            "{preset}: the README says {signer:?}, the proof uses {expected:?}"
        );
    }
}

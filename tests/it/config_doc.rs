//! docs/CONFIG.md documents every setting with its default, and nothing else.

#[test]
fn config_doc_matches_the_code() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/CONFIG.md")).unwrap();
    let rows: Vec<(String, String)> = doc
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_string(), cells[2].trim_matches('`').to_string())
        })
        .collect();
    let settings = tartan::config::documented_settings();
    for (key, default) in &settings {
        let row =
            rows.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("docs/CONFIG.md does not document `{key}`"));
        assert_eq!(&row.1, default, "docs/CONFIG.md gives `{key}` the default {}, the code {default}", row.1);
    }
    for (key, _) in &rows {
        assert!(
            settings.iter().any(|(k, _)| k == key),
            "docs/CONFIG.md documents `{key}`, which the code does not have"
        );
    }
}

//! `--output json|table|yaml`: how a command that prints a list prints it. JSON is the default, so scripts
//! written against today's output keep working; `table` is for people, `yaml` for configuration tools.

use serde::Serialize;

/// The output formats of list commands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Pretty JSON (the default).
    #[default]
    Json,
    /// Aligned columns with a header line.
    Table,
    /// A YAML sequence of the same objects as the JSON.
    Yaml,
}

/// `--output`, flattened into every list command.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct OutputArgs {
    /// Output format: json (the default), table or yaml.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Json)]
    pub output: OutputFormat,
}

/// A value printed as one row of a table.
pub trait Row {
    /// The column names, in order.
    fn headers() -> &'static [&'static str];
    /// This value's cells, one per header.
    fn cells(&self) -> Vec<String>;
}

/// Prints `items` in `format` on stdout (see [`render_list`]).
pub fn print_list<T: Serialize + Row>(items: &[T], format: OutputFormat) {
    outln!("{}", render_list(items, format).trim_end());
}

/// `items` in `format`: the pretty JSON array, the table, or the YAML sequence; ends with a line end.
pub fn render_list<T: Serialize + Row>(items: &[T], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => json(&items),
        OutputFormat::Table => table(items),
        // What serialises as JSON serialises as YAML (no map has non-string keys).
        OutputFormat::Yaml => serde_norway::to_string(&items).expect("YAML serialises"),
    }
}

/// One value in `format`: the JSON object, a one-row table, or the YAML mapping; ends with a line end.
pub fn render_one<T: Serialize + Row>(value: &T, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => json(value),
        OutputFormat::Table => table(std::slice::from_ref(value)),
        OutputFormat::Yaml => serde_norway::to_string(value).expect("YAML serialises"),
    }
}

/// `value` as pretty JSON and a line end.
pub fn json(value: &impl Serialize) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON serialises");
    text.push('\n');
    text
}

/// `items` as aligned columns: every column as wide as its widest cell, two spaces apart. Cells are
/// printed on one line each, so a value with a newline cannot forge a row.
pub fn table<T: Row>(items: &[T]) -> String {
    let headers: Vec<String> = T::headers().iter().map(|h| h.to_uppercase()).collect();
    let rows: Vec<Vec<String>> =
        items.iter().map(|i| i.cells().into_iter().map(|c| c.replace(['\n', '\r'], " ")).collect()).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&headers).chain(&rows) {
        let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(&'static str, &'static str);

    impl Row for Item {
        fn headers() -> &'static [&'static str] {
            &["name", "route"]
        }
        fn cells(&self) -> Vec<String> {
            vec![self.0.into(), self.1.into()]
        }
    }

    #[derive(Serialize)]
    struct Named {
        name: &'static str,
        tags: Vec<&'static str>,
    }

    impl Row for Named {
        fn headers() -> &'static [&'static str] {
            &["name"]
        }
        fn cells(&self) -> Vec<String> {
            vec![self.name.into()]
        }
    }

    #[test]
    fn yaml_is_the_json_as_yaml() {
        let items = [Named { name: "a: b", tags: vec!["x"] }, Named { name: "c", tags: vec![] }];
        let yaml = render_list(&items, OutputFormat::Yaml);
        assert_eq!(yaml, "- name: 'a: b'\n  tags:\n  - x\n- name: c\n  tags: []\n");
        let back: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(&render_list(&items, OutputFormat::Json)).unwrap());
        assert_eq!(render_list::<Named>(&[], OutputFormat::Yaml), "[]\n");
    }

    #[test]
    fn columns_align_and_newlines_cannot_forge_rows() {
        let text = table(&[Item("team/app", "route 1"), Item("a\nb", "r")]);
        assert_eq!(text, "NAME      ROUTE\nteam/app  route 1\na b       r\n");
    }
}

//! `--output json|table`: how a command that prints a list prints it. JSON is the default, so scripts
//! written against today's output keep working; `table` is for people.

use serde::Serialize;

/// The output formats of list commands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Pretty JSON (the default).
    #[default]
    Json,
    /// Aligned columns with a header line.
    Table,
}

/// `--output`, flattened into every list command.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct OutputArgs {
    /// Output format: json (the default) or table.
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

/// Prints `items` in `format`: the JSON array, or the table.
pub fn print_list<T: Serialize + Row>(items: &[T], format: OutputFormat) {
    match format {
        OutputFormat::Json => super::print_json(&items),
        OutputFormat::Table => outln!("{}", table(items).trim_end()),
    }
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

    #[test]
    fn columns_align_and_newlines_cannot_forge_rows() {
        let text = table(&[Item("team/app", "route 1"), Item("a\nb", "r")]);
        assert_eq!(text, "NAME      ROUTE\nteam/app  route 1\na b       r\n");
    }
}

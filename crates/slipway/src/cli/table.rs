//! Plain aligned text tables: a header row and columns padded to their widest cell.

/// A table being built row by row.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
}

/// Space between columns.
const GAP: &str = "  ";

impl Table {
    /// A table with these column headers.
    pub(crate) fn new(headers: &[&str]) -> Table {
        Table {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Appends a row; missing cells render empty, extra cells are kept.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The rendered table: one line per row, each ending with `\n`, no trailing spaces.
    /// Widths count characters, so non-ASCII ids stay aligned.
    pub(crate) fn render(&self) -> String {
        let ncols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0usize; ncols];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                // Cells never contain newlines: keep one record per line.
                let cell = cell.replace(['\n', '\r'], " ");
                if i > 0 {
                    line.push_str(GAP);
                }
                line.push_str(&cell);
                let pad = width.saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn columns_align_to_the_widest_cell() {
        let mut t = Table::new(&["ID", "INSTANCES", "VERSION"]);
        t.row(cells(&["/web", "2/3", "2024-01-01T00:00:00.000Z"]));
        t.row(cells(&["/prod/api-long", "10/10", "-"]));
        assert_eq!(
            t.render(),
            "ID              INSTANCES  VERSION\n\
             /web            2/3        2024-01-01T00:00:00.000Z\n\
             /prod/api-long  10/10      -\n"
        );
    }

    #[test]
    fn short_rows_newlines_and_unicode() {
        let mut t = Table::new(&["A", "B"]);
        t.row(cells(&["é"]));
        t.row(cells(&["x\ny", "z"]));
        assert_eq!(t.render(), "A    B\né\nx y  z\n");
        assert_eq!(Table::new(&["ONLY"]).render(), "ONLY\n");
    }
}

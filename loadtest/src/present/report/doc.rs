//! The report as a list of blocks, rendered once as Markdown and once as a self-contained HTML
//! page, so both always say the same thing.

use std::fmt::Write;

/// One block of the report.
#[derive(Debug, Clone)]
pub enum Block {
    Heading(u8, String),
    Para(String),
    /// A paragraph that must stand out (an incomplete run, a generator-bound baseline).
    Warning(String),
    List(Vec<String>),
    Table(Table),
    /// A chart written to `charts/<file>.svg` and `.png`; the HTML inlines the SVG.
    Chart(ChartRef),
}

/// A table; cells are plain text.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub head: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Printed under the table: how its figures were obtained.
    pub note: Option<String>,
}

impl Table {
    pub fn new<S: Into<String>>(head: impl IntoIterator<Item = S>) -> Self {
        Self { head: head.into_iter().map(Into::into).collect(), rows: Vec::new(), note: None }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

#[derive(Debug, Clone)]
pub struct ChartRef {
    /// File stem under `charts/`.
    pub file: String,
    pub title: String,
    /// How the figure was obtained.
    pub caption: String,
    /// The SVG text, inlined by the HTML page.
    pub svg: String,
}

/// `#anchor` ids for headings.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// A cell is right-aligned when it reads as a number (digits, units, ranges).
fn numeric(text: &str) -> bool {
    text.chars().next().is_some_and(|c| c.is_ascii_digit() || c == '–' || c == '-' || c == '≤' || c == '<')
}

pub fn markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for block in blocks {
        match block {
            Block::Heading(level, text) => {
                let _ = writeln!(out, "{} {text}\n", "#".repeat(usize::from(*level)));
            }
            Block::Para(text) => {
                let _ = writeln!(out, "{text}\n");
            }
            Block::Warning(text) => {
                let _ = writeln!(out, "> **Warning:** {text}\n");
            }
            Block::List(items) => {
                for item in items {
                    let _ = writeln!(out, "- {item}");
                }
                out.push('\n');
            }
            Block::Table(table) => {
                let _ = writeln!(out, "| {} |", table.head.iter().map(|h| md_cell(h)).collect::<Vec<_>>().join(" | "));
                let align: Vec<&str> = (0..table.head.len())
                    .map(|i| {
                        let all_numeric = table
                            .rows
                            .iter()
                            .filter_map(|r| r.get(i))
                            .filter(|c| c.as_str() != "–")
                            .all(|c| numeric(c));
                        if i > 0 && all_numeric { "---:" } else { "---" }
                    })
                    .collect();
                let _ = writeln!(out, "|{}|", align.join("|"));
                for row in &table.rows {
                    let _ = writeln!(out, "| {} |", row.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | "));
                }
                out.push('\n');
                if let Some(note) = &table.note {
                    let _ = writeln!(out, "<sub>{note}</sub>\n");
                }
            }
            Block::Chart(chart) => {
                let _ = writeln!(out, "![{}](charts/{}.svg)\n", chart.title, chart.file);
                let _ = writeln!(out, "<sub>{} (PNG: charts/{}.png)</sub>\n", chart.caption, chart.file);
            }
        }
    }
    out
}

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Inline `**bold**` and `` `code` `` as the Markdown output has them.
fn inline(text: &str) -> String {
    let escaped = esc(text);
    let mut out = String::new();
    let mut bold = false;
    let mut code = false;
    let mut rest = escaped.as_str();
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("**") && !code {
            out.push_str(if bold { "</strong>" } else { "<strong>" });
            bold = !bold;
            rest = rest.get(2..).unwrap_or("");
            continue;
        }
        if c == '`' {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
        } else {
            out.push(c);
        }
        rest = rest.get(c.len_utf8()..).unwrap_or("");
    }
    if code {
        out.push_str("</code>");
    }
    if bold {
        out.push_str("</strong>");
    }
    out
}

/// Removes the XML prolog so the SVG can sit inside HTML.
fn inline_svg(svg: &str) -> &str {
    svg.find("<svg").and_then(|i| svg.get(i..)).unwrap_or(svg)
}

const CSS: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1d1d1f; max-width: 1240px; margin: 0 auto; padding: 24px; line-height: 1.45; }
h1 { font-size: 1.9em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 2em; }
h3 { margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
.wide { overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #d0d0d0; padding: 4px 8px; }
th { background: #f2f2f2; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fafafa; }
.note { color: #555; font-size: 0.85em; margin-top: 0; }
.warning { background: #fff4e5; border-left: 4px solid #e69f00; padding: 8px 12px; }
figure { margin: 1em 0 2em 0; }
figure svg { width: 100%; height: auto; border: 1px solid #e0e0e0; }
figcaption { color: #555; font-size: 0.85em; }
code, pre { font-family: "DejaVu Sans Mono", monospace; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; }
nav ul { columns: 2; }
"#;

pub fn html(title: &str, blocks: &[Block]) -> String {
    let mut body = String::new();
    let toc: Vec<(String, String)> = blocks
        .iter()
        .filter_map(|b| match b {
            Block::Heading(2, t) => Some((slug(t), t.clone())),
            _ => None,
        })
        .collect();
    for (i, block) in blocks.iter().enumerate() {
        match block {
            Block::Heading(level, text) => {
                let _ = writeln!(body, "<h{level} id=\"{}\">{}</h{level}>", slug(text), inline(text));
            }
            Block::Para(text) => {
                let _ = writeln!(body, "<p>{}</p>", inline(text));
            }
            Block::Warning(text) => {
                let _ = writeln!(body, "<p class=\"warning\"><strong>Warning:</strong> {}</p>", inline(text));
            }
            Block::List(items) => {
                body.push_str("<ul>\n");
                for item in items {
                    let _ = writeln!(body, "<li>{}</li>", inline(item));
                }
                body.push_str("</ul>\n");
            }
            Block::Table(table) => {
                // A table wider than the page scrolls on its own instead of running off it.
                body.push_str("<div class=\"wide\"><table>\n<thead><tr>");
                for h in &table.head {
                    let _ = write!(body, "<th>{}</th>", inline(h));
                }
                body.push_str("</tr></thead>\n<tbody>\n");
                for row in &table.rows {
                    body.push_str("<tr>");
                    for (j, cell) in row.iter().enumerate() {
                        let class = if j > 0 && numeric(cell) { " class=\"num\"" } else { "" };
                        let _ = write!(body, "<td{class}>{}</td>", inline(cell));
                    }
                    body.push_str("</tr>\n");
                }
                body.push_str("</tbody>\n</table></div>\n");
                if let Some(note) = &table.note {
                    let _ = writeln!(body, "<p class=\"note\">{}</p>", inline(note));
                }
            }
            Block::Chart(chart) => {
                let _ = writeln!(
                    body,
                    "<figure id=\"chart-{}\">\n{}\n<figcaption>{}</figcaption>\n</figure>",
                    chart.file,
                    inline_svg(&chart.svg),
                    inline(&chart.caption)
                );
            }
        }
        // The table of contents goes after the title and the paragraphs under it.
        if i == 0 && !toc.is_empty() {
            body.push_str("<nav><ul>\n");
            for (id, text) in &toc {
                let _ = writeln!(body, "<li><a href=\"#{id}\">{}</a></li>", esc(text));
            }
            body.push_str("</ul></nav>\n");
        }
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_markup_becomes_html_and_text_is_escaped() {
        assert_eq!(inline("a **b** `c<d>`"), "a <strong>b</strong> <code>c&lt;d&gt;</code>");
        assert_eq!(slug("Cost per request (steady)"), "cost-per-request-steady");
    }

    #[test]
    fn markdown_tables_escape_pipes_and_right_align_numbers() {
        let mut t = Table::new(["variant", "req/s"]);
        t.row(vec!["a|b".into(), "12.5k".into()]);
        let md = markdown(&[Block::Table(t)]);
        assert!(md.contains("| a\\|b | 12.5k |"), "{md}");
        assert!(md.contains("|---|---:|"), "{md}");
    }
}

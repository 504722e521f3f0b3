//! Where a person would fix a YAML syntax error the parser reports late: an unclosed flow
//! collection (`steps: { a: [x, y }` or a `[` never closed) is reported where it opens,
//! not where the parser gave up lines later.

/// Unclosed or mismatched flow brackets as (line, column, message), 1-based.
pub(crate) fn unbalanced(text: &str) -> Vec<(u32, u32, String)> {
    let mut problems = Vec::new();
    let mut stack: Vec<(char, u32, u32)> = Vec::new();
    // A block scalar (`|`, `>`) runs while lines are indented deeper than its key.
    let mut block_indent: Option<usize> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index as u32 + 1;
        let indent = line.len() - line.trim_start().len();
        if let Some(limit) = block_indent {
            if line.trim().is_empty() || indent > limit {
                continue;
            }
            block_indent = None;
        }
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        // Outside flow collections, a collection starts only where a value starts.
        if stack.is_empty() {
            match value_start(&chars) {
                Some(v) if matches!(chars[v], '[' | '{') => i = v,
                Some(v) if matches!(chars[v], '|' | '>') => {
                    block_indent = Some(indent);
                    continue;
                }
                _ => continue,
            }
        }
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '\'' | '"' => quote = Some(c),
                    '#' if i == 0 || chars[i - 1].is_whitespace() => break,
                    '[' | '{' => stack.push((c, number, i as u32 + 1)),
                    ']' | '}' => {
                        let want = if c == ']' { '[' } else { '{' };
                        match stack.pop() {
                            Some((open, _, _)) if open == want => {}
                            Some((open, l, col)) => {
                                problems.push((
                                    l,
                                    col,
                                    format!(
                                        "`{open}` is closed by `{c}` at line {number}, column {}",
                                        i + 1
                                    ),
                                ));
                                // The `}` closes the `{` around the unclosed `[`.
                                if stack.last().is_some_and(|(o, _, _)| *o == want) {
                                    stack.pop();
                                }
                            }
                            None => {}
                        }
                        if stack.is_empty() {
                            // Back to block context for the rest of the line.
                            break;
                        }
                    }
                    _ => {}
                },
            }
            i += 1;
        }
    }
    for (open, line, column) in stack.into_iter().rev() {
        let close = if open == '[' { ']' } else { '}' };
        problems.push((
            line,
            column,
            format!("`{open}` is never closed (add `{close}`)"),
        ));
    }
    problems.sort();
    problems
}

/// `text` with the key at (`line`, `column`) (1-based) and its value blanked out, lines
/// and columns of everything else unchanged: a block key with its deeper-indented lines,
/// or a `key: value` entry of a flow mapping. `None` when there is no key there.
pub(crate) fn without_key(text: &str, line: usize, column: usize) -> Option<String> {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let index = line.checked_sub(1)?;
    let chars: Vec<char> = lines.get(index)?.chars().collect();
    let at = column.checked_sub(1)?;
    if at >= chars.len() {
        return None;
    }
    let before: String = chars[..at].iter().collect();
    let block = before.trim().is_empty() || before.trim() == "-";
    if block {
        // The key's line, and the lines of its value (indented deeper than the key).
        lines[index] = format!("{before}{}", " ".repeat(chars.len() - at))
            .trim_end()
            .to_string();
        if lines[index].trim() == "-" {
            lines[index] = format!("{before}{{}}");
        }
        for l in lines.iter_mut().skip(index + 1) {
            let indent = l.len() - l.trim_start().len();
            if l.trim().is_empty() || indent > at {
                l.clear();
            } else {
                break;
            }
        }
        return Some(lines.join("\n"));
    }
    // In a flow mapping: up to the next `,` or `}` at this depth (a `,` goes too).
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut end = at;
    while end < chars.len() {
        let c = chars[end];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '[' | '{' => depth += 1,
                ']' | '}' if depth == 0 => break,
                ']' | '}' => depth -= 1,
                ',' if depth == 0 => {
                    end += 1;
                    break;
                }
                _ => {}
            },
        }
        end += 1;
    }
    let mut out = chars.clone();
    for c in out.iter_mut().take(end).skip(at) {
        *c = ' ';
    }
    // `{ a: 1, bad: 2 }`: the comma before the removed last entry goes too.
    if (chars.get(end) == Some(&'}') || chars.get(end) == Some(&']'))
        && let Some(comma) = (0..at).rev().find(|&i| !out[i].is_whitespace())
        && out[comma] == ','
    {
        out[comma] = ' ';
    }
    lines[index] = out.into_iter().collect();
    Some(lines.join("\n"))
}

/// Where the value of a `key: value` or `- value` line starts, if it has one.
fn value_start(chars: &[char]) -> Option<usize> {
    let mut i = chars.iter().position(|c| !c.is_whitespace())?;
    loop {
        if chars[i] == '#' {
            return None;
        }
        if chars[i] == '-' && chars.get(i + 1).is_none_or(|c| c.is_whitespace()) {
            i += 1;
            while chars.get(i).is_some_and(|c| c.is_whitespace()) {
                i += 1;
            }
            if i >= chars.len() {
                return None;
            }
            continue;
        }
        break;
    }
    if matches!(chars[i], '[' | '{' | '|' | '>') {
        return Some(i);
    }
    // `key: value`: the first `: ` outside quotes.
    let mut quote = None;
    let mut j = i;
    while j < chars.len() {
        let c = chars[j];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == ':' && chars.get(j + 1).is_none_or(|n| n.is_whitespace()) => {
                let mut v = j + 1;
                while chars.get(v).is_some_and(|c| c.is_whitespace()) {
                    v += 1;
                }
                return (v < chars.len()).then_some(v);
            }
            None => {}
        }
        j += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unclosed_brackets_are_found_where_they_open() {
        let text = "version: 1\nname: x\nsteps:\n  a:\n    run: [echo a, echo b\n  b:\n    needs: [a]\n    run: echo '[' b\n";
        assert_eq!(
            unbalanced(text),
            [(5, 10, "`[` is never closed (add `]`)".to_string())]
        );
        let ok = "steps:\n  a: { run: [x, 'y]'], needs: [] }  # [\n  b:\n    run: |\n      echo [\n    needs: [\n      a,\n    ]\n";
        assert_eq!(unbalanced(ok), []);
        assert_eq!(
            without_key("a:\n  timout: 5\n  x: 1\n", 2, 3).unwrap(),
            "a:\n\n  x: 1\n"
        );
        assert_eq!(
            without_key("a:\n  bad:\n    - 1\n  x: 1\n", 2, 3).unwrap(),
            "a:\n\n\n  x: 1\n"
        );
        assert_eq!(
            without_key("a: { run: x, timout: 5 }\n", 1, 14).unwrap(),
            format!("a: {{ run: x{}}}\n", " ".repeat(12))
        );
        assert_eq!(
            without_key("a: { timout: [5, 6], run: x }\n", 1, 6).unwrap(),
            "a: {                 run: x }\n"
        );
        assert_eq!(
            unbalanced("a: { b: [1, 2 }\n"),
            [(
                1,
                9,
                "`[` is closed by `}` at line 1, column 15".to_string()
            )]
        );
    }
}

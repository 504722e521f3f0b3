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
            unbalanced("a: { b: [1, 2 }\n"),
            [(
                1,
                9,
                "`[` is closed by `}` at line 1, column 15".to_string()
            )]
        );
    }
}

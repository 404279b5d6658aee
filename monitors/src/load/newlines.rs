//! Line breaks inside an object `for` expression. Terraform ignores newlines anywhere inside
//! `{ for k, v in m : k => v }` (its parser stops treating them as separators once it sees `for`), so public
//! modules break long value expressions there, e.g. `k => c ? a :` on one line and `b }` on the next. hcl-edit
//! only accepts that in a list `for`. When a file does not parse, [`join_object_for_lines`] puts each object
//! `for` on one line (comments inside it blanked) and adds the removed line breaks after it, so every line
//! after the expression keeps its number, and the file is parsed again.

/// The text with every object `for` expression joined onto one line, or `None` when there is none with a line
/// break (or the text is not lexically sound: an unterminated string, unbalanced braces, a heredoc inside one).
/// Line breaks in an object constructor nested in the `for` are kept.
// Over 100 lines on purpose (~117): one lexer state machine (strings, interpolations, braces) kept in one place.
pub(super) fn join_object_for_lines(text: &str) -> Option<String> {
    enum Frame {
        Str,
        /// `${ … }` or `%{ … }` in a string; the number of open braces when it started.
        Interp(usize),
    }
    let b = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut frames: Vec<Frame> = Vec::new();
    // Open `{` in code, outermost first: whether each opens an object `for`. A line break is joined when
    // the innermost one does (an object constructor nested in a `for` keeps its line breaks: there they
    // separate items, in Terraform too).
    let mut braces: Vec<bool> = Vec::new();
    let mut pending = 0usize;
    let mut changed = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if let Some(Frame::Str) = frames.last() {
            match c {
                b'\\' => {
                    out.push(c);
                    if let Some(n) = next {
                        out.push(n);
                    }
                    i += 2;
                    continue;
                }
                b'$' | b'%' if next == Some(c) && b.get(i + 2) == Some(&b'{') => {
                    out.extend_from_slice(&b[i..i + 3]);
                    i += 3;
                    continue;
                }
                b'$' | b'%' if next == Some(b'{') => {
                    frames.push(Frame::Interp(braces.len()));
                    out.extend_from_slice(&b[i..i + 2]);
                    i += 2;
                    continue;
                }
                b'"' => {
                    frames.pop();
                }
                b'\n' => return None,
                _ => {}
            }
            out.push(c);
            i += 1;
            continue;
        }
        let in_region = braces.last() == Some(&true);
        match c {
            b'"' => frames.push(Frame::Str),
            b'#' => {
                i = copy_line_comment(b, i, in_region, &mut out);
                continue;
            }
            b'/' if next == Some(b'/') => {
                i = copy_line_comment(b, i, in_region, &mut out);
                continue;
            }
            b'/' if next == Some(b'*') => {
                let (end, breaks) = copy_block_comment(b, i, in_region, &mut out)?;
                if breaks > 0 {
                    pending += breaks;
                    changed = true;
                }
                i = end;
                continue;
            }
            b'<' if next == Some(b'<') && heredoc_marker(b, i).is_some() => {
                if in_region {
                    return None;
                }
                let j = heredoc_end(b, i, &heredoc_marker(b, i)?)?;
                out.extend_from_slice(&b[i..j]);
                i = j;
                continue;
            }
            b'{' => braces.push(starts_for(b, i + 1)),
            b'}' => {
                if let Some(Frame::Interp(n)) = frames.last() {
                    if braces.len() == *n {
                        frames.pop();
                        out.push(c);
                        i += 1;
                        continue;
                    }
                }
                braces.pop()?;
            }
            b'\r' if in_region && next == Some(b'\n') => {
                i += 1;
                continue;
            }
            b'\n' if in_region => {
                out.push(b' ');
                pending += 1;
                changed = true;
                i += 1;
                continue;
            }
            b'\n' if frames.is_empty() && !braces.contains(&true) => {
                out.extend(std::iter::repeat_n(b'\n', pending));
                pending = 0;
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    if !changed || !braces.is_empty() || !frames.is_empty() {
        return None;
    }
    out.extend(std::iter::repeat_n(b'\n', pending));
    String::from_utf8(out).ok()
}

/// Copies a `#` or `//` comment up to its line break (blanked inside an expression being joined); returns where
/// the line break is.
fn copy_line_comment(b: &[u8], i: usize, blank: bool, out: &mut Vec<u8>) -> usize {
    let end = find(b, i, b"\n").unwrap_or(b.len());
    let end = if end > i && b[end - 1] == b'\r' && blank {
        end - 1
    } else {
        end
    };
    if blank {
        out.extend(std::iter::repeat_n(b' ', end - i));
    } else {
        out.extend_from_slice(&b[i..end]);
    }
    end
}

/// Copies a `/* … */` comment starting at `i` (blanked inside an expression being joined); returns where it
/// ends and how many line breaks were blanked.
fn copy_block_comment(
    b: &[u8],
    i: usize,
    blank: bool,
    out: &mut Vec<u8>,
) -> Option<(usize, usize)> {
    let end = find(b, i + 2, b"*/").map(|e| e + 2)?;
    let mut breaks = 0;
    for &x in &b[i..end] {
        if !blank {
            out.push(x);
        } else {
            out.push(b' ');
            if x == b'\n' {
                breaks += 1;
            }
        }
    }
    Some((end, breaks))
}

/// Where the heredoc opening at `i` ends: the opening line, then every line up to the one that is `marker`
/// alone (its line break not included); `None` if the text ends first.
fn heredoc_end(b: &[u8], i: usize, marker: &str) -> Option<usize> {
    let mut j = find(b, i, b"\n")? + 1;
    loop {
        let line_end = find(b, j, b"\n").unwrap_or(b.len());
        let line = std::str::from_utf8(&b[j..line_end]).ok()?;
        j = line_end;
        if line.trim() == marker {
            return Some(j);
        }
        if j >= b.len() {
            return None;
        }
        j += 1;
    }
}

fn find(b: &[u8], from: usize, pat: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(pat.len())
        .position(|w| w == pat)
        .map(|p| p + from)
}

/// The marker of a heredoc starting at `i` (`<<EOT` or `<<-EOT`, then the line's end).
fn heredoc_marker(b: &[u8], i: usize) -> Option<String> {
    let mut j = i + 2;
    if b.get(j) == Some(&b'-') {
        j += 1;
    }
    let start = j;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'-') {
        j += 1;
    }
    if j == start || !b[start].is_ascii_alphabetic() {
        return None;
    }
    let rest_of_line = &b[j..find(b, j, b"\n")?];
    rest_of_line
        .iter()
        .all(|x| x.is_ascii_whitespace())
        .then(|| String::from_utf8_lossy(&b[start..j]).into_owned())
}

/// Whether the code after a `{` at `i - 1` starts with the keyword `for` (after spaces, line breaks and
/// comments) followed by a name, as an object `for` expression does.
fn starts_for(b: &[u8], mut i: usize) -> bool {
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b.get(i) == Some(&b'#') || b[i..].starts_with(b"//") {
            match find(b, i, b"\n") {
                Some(e) => i = e,
                None => return false,
            }
            continue;
        }
        break;
    }
    if !b[i..].starts_with(b"for") {
        return false;
    }
    let mut j = i + 3;
    if !b.get(j).is_some_and(|x| *x == b' ' || *x == b'\t') {
        return false;
    }
    while b.get(j).is_some_and(|x| *x == b' ' || *x == b'\t') {
        j += 1;
    }
    b.get(j)
        .is_some_and(|x| x.is_ascii_alphabetic() || *x == b'_')
}

#[cfg(test)]
mod tests {
    use super::join_object_for_lines;

    #[test]
    fn an_object_for_is_joined_and_the_lines_after_it_keep_their_numbers() {
        let text = "locals {\n  m = { for k, v in var.x : k => v.on ? v.a :\n    v.b # fallback\n  }\n  n = 1\n}\n";
        let joined = join_object_for_lines(text).unwrap();
        assert_eq!(joined.lines().count(), text.lines().count());
        let n_line = |t: &str| t.lines().position(|l| l.contains("n = 1")).unwrap();
        assert_eq!(n_line(&joined), n_line(text));
        assert!(joined.lines().nth(1).unwrap().contains("v.a :     v.b"));
        assert!(!joined.contains("fallback"));
        hcl::edit::parser::parse_body(&joined).unwrap();
    }

    #[test]
    fn strings_heredocs_and_list_fors_are_left_alone() {
        // Nothing to join: a list `for`, a `{` in a string, a heredoc with a brace.
        let text = "a = [for x in y : x]\nb = \"{ for x\"\nc = <<EOT\n{ for\nEOT\n";
        assert_eq!(join_object_for_lines(text), None);
        // An interpolation holding an object, and an escaped `$${`, do not confuse the braces.
        let text = "a = \"${jsonencode({ x = 1 })} $${x}\"\nb = { for k in l :\n k => 1 }\nc = 2\n";
        let joined = join_object_for_lines(text).unwrap();
        assert!(joined.contains("b = { for k in l :  k => 1 }\n\nc = 2"));
        // An object constructor inside keeps its line breaks (they separate its items).
        let text = "m = { for k in l :\n  k => {\n  a = 1\n  b = k\n} }\nz = 1\n";
        let joined = join_object_for_lines(text).unwrap();
        assert_eq!(joined.lines().count(), text.lines().count());
        assert!(
            joined.contains("m = { for k in l :   k => {\n  a = 1\n  b = k\n} }\n\nz = 1"),
            "{joined}"
        );
        hcl::edit::parser::parse_body(&joined).unwrap();
    }
}

//! A small SQL tokenizer: enough of PostgreSQL's lexical rules to split a
//! file into statements, to map a server error position back to a line of
//! the file, and to give the lint keywords without strings or comments.
//!
//! It knows quoted strings ('' and E'\''), quoted identifiers, dollar
//! quoting ($$ and $tag$), line comments and nested block comments, so a
//! semicolon inside any of them does not end a statement. It does not know
//! `BEGIN ATOMIC ... END` function bodies: write those with `$$` quoting.

/// One token: its kind and the byte range it covers in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Tok,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A keyword or unquoted identifier, upper-cased.
    Word(String),
    /// A "quoted identifier", as written (case kept).
    Ident(String),
    /// Any string literal ('..', E'..', $tag$..$tag$).
    Str,
    Number,
    Punct(char),
}

impl Token {
    pub fn word(&self) -> Option<&str> {
        match &self.kind {
            Tok::Word(w) => Some(w),
            _ => None,
        }
    }
    pub fn is_word(&self, w: &str) -> bool {
        self.word() == Some(w)
    }
    pub fn is_punct(&self, c: char) -> bool {
        self.kind == Tok::Punct(c)
    }
}

/// One statement of a file: its text (without the `;`) and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement<'a> {
    pub text: &'a str,
    /// Byte offset of the statement's first token in the file.
    pub offset: usize,
    /// 1-based line of the statement's first token.
    pub line: usize,
    pub tokens: Vec<Token>,
}

/// Splits a file into statements at top-level semicolons. Comments before a
/// statement are not part of it, so its line is the line of its first word.
pub(crate) fn split(sql: &str) -> Vec<Statement<'_>> {
    let mut out = Vec::new();
    let mut current: Vec<Token> = Vec::new();
    for tok in tokenize(sql) {
        if tok.is_punct(';') {
            push_statement(sql, &mut out, std::mem::take(&mut current));
        } else {
            current.push(tok);
        }
    }
    push_statement(sql, &mut out, current);
    out
}

fn push_statement<'a>(sql: &'a str, out: &mut Vec<Statement<'a>>, tokens: Vec<Token>) {
    let (Some(first), Some(last)) = (tokens.first(), tokens.last()) else { return };
    let (start, end) = (first.start, last.end);
    // Offsets in tokens become relative to the statement text.
    let tokens = tokens.into_iter().map(|t| Token { start: t.start - start, end: t.end - start, ..t }).collect();
    out.push(Statement { text: &sql[start..end], offset: start, line: line_of(sql, start), tokens });
}

/// The 1-based line holding byte `offset` of `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Maps PostgreSQL's error position (1-based, in characters of the statement
/// sent) to the line of the file, given the statement's byte offset in it.
pub(crate) fn position_to_line(file: &str, stmt_offset: usize, stmt_text: &str, position: u32) -> usize {
    let char_index = (position as usize).saturating_sub(1);
    let byte = stmt_text.char_indices().nth(char_index).map(|(b, _)| b).unwrap_or(stmt_text.len());
    line_of(file, stmt_offset + byte)
}

/// Tokenizes SQL. Unterminated strings or comments run to the end of the
/// text: the server, not this lexer, reports them.
pub(crate) fn tokenize(sql: &str) -> Vec<Token> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            _ if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = find_from(b, i, b"\n").map_or(b.len(), |p| p + 1);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(b, i);
                continue;
            }
            b'\'' => {
                i = skip_quoted(b, i, b'\'', false);
                Tok::Str
            }
            b'E' | b'e' if b.get(i + 1) == Some(&b'\'') => {
                i = skip_quoted(b, i + 1, b'\'', true);
                Tok::Str
            }
            b'"' => {
                i = skip_quoted(b, i, b'"', false);
                let inner = &sql[start + 1..i.saturating_sub(1).max(start + 1)];
                Tok::Ident(inner.replace("\"\"", "\""))
            }
            b'$' => match dollar_tag(b, i) {
                Some(tag_end) => {
                    let tag = &b[i..tag_end];
                    i = find_from(b, tag_end, tag).map_or(b.len(), |p| p + tag.len());
                    Tok::Str
                }
                None => {
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    Tok::Punct('$')
                }
            },
            _ if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80) {
                    i += 1;
                }
                Tok::Word(sql[start..i].to_ascii_uppercase())
            }
            _ if c.is_ascii_digit() => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                Tok::Number
            }
            _ => {
                i += 1;
                Tok::Punct(c as char)
            }
        };
        out.push(Token { kind, start, end: i });
    }
    out
}

fn find_from(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || from >= b.len() {
        return None;
    }
    b[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// Skips a '...' or "..." token starting at `i` (the opening quote); a doubled
/// quote is an escaped quote, and with `backslash` so is \'.
fn skip_quoted(b: &[u8], mut i: usize, quote: u8, backslash: bool) -> usize {
    i += 1;
    while i < b.len() {
        if backslash && b[i] == b'\\' {
            i += 2;
        } else if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// PostgreSQL block comments nest.
fn skip_block_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// If a dollar-quote opener ($$ or $tag$) starts at `i`, the index after it.
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if j < b.len() && (b[j].is_ascii_digit()) {
        return None; // $1: a parameter, not a quote
    }
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
        j += 1;
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<(&str, usize)> {
        split(sql).into_iter().map(|s| (s.text, s.line)).collect()
    }

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let sql = "-- header\nCREATE TABLE a (x text DEFAULT ';');\n\n/* c; /* nested; */ still */ INSERT INTO a VALUES (E'\\';'), ($q$;$q$);\nSELECT \"we;ird\" FROM a";
        assert_eq!(
            texts(sql),
            vec![
                ("CREATE TABLE a (x text DEFAULT ';')", 2),
                ("INSERT INTO a VALUES (E'\\';'), ($q$;$q$)", 4),
                ("SELECT \"we;ird\" FROM a", 5),
            ]
        );
    }

    #[test]
    fn function_bodies_in_dollar_quotes_stay_whole() {
        let sql = "CREATE FUNCTION f() RETURNS trigger AS $$\nBEGIN\n  NEW.x := 1;\n  RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;\nSELECT 1;";
        let s = split(sql);
        assert_eq!(s.len(), 2);
        assert!(s[0].text.ends_with("LANGUAGE plpgsql"));
        assert_eq!(s[1].line, 7);
    }

    #[test]
    fn parameters_are_not_dollar_quotes() {
        let s = split("SELECT $1; SELECT 2");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn comments_only_file_has_no_statements() {
        assert!(split("-- nothing here\n/* or here */\n").is_empty());
    }

    #[test]
    fn error_position_maps_to_the_line_of_the_file() {
        let file = "-- fwdb:no-transaction\n\nCREATE TABLE t (\n  id int,\n  bad nosuchtype\n);";
        let stmt = &split(file)[0];
        assert_eq!(stmt.line, 3);
        let pos = stmt.text.find("nosuchtype").unwrap() as u32 + 1;
        assert_eq!(position_to_line(file, stmt.offset, stmt.text, pos), 5);
        // Positions count characters, not bytes.
        let file = "SELECT 'ééé',\n  nope";
        let stmt = &split(file)[0];
        let pos = stmt.text.chars().position(|c| c == 'n').unwrap() as u32 + 1;
        assert_eq!(position_to_line(file, stmt.offset, stmt.text, pos), 2);
    }

    #[test]
    fn words_are_upper_cased_and_identifiers_kept() {
        let t = tokenize("drop Table \"MyT\"");
        assert!(t[0].is_word("DROP") && t[1].is_word("TABLE"));
        assert_eq!(t[2].kind, Tok::Ident("MyT".into()));
    }
}

//! The CSV that Python's `csv.reader` reads in its default ("excel")
//! dialect, as `tornado.locale.load_translations` reads a translation file:
//! commas between fields, `"` around a field that holds commas, quotes or
//! line breaks, `""` for a quote inside one. Lines end with `\n`, `\r\n` or
//! `\r` (the file is read in Python's universal-newline mode, so a line
//! break inside a quoted field reads as `\n`).
//!
//! Python's reader is not strict by default, and neither is this one: a
//! quote inside an unquoted field is an ordinary character, text after a
//! closing quote joins the field (`"a"b` is `ab`), and a quoted field still
//! open at the end of the file ends there. What it refuses, as Python does,
//! is a line break that is neither inside quotes nor the end of a record
//! (only possible with a bare `\r` in the middle of a line, which universal
//! newlines have already turned into a line end, so in practice never).

/// The parser's states, named after those of CPython's `_csv.c`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    StartRecord,
    StartField,
    InField,
    InQuotedField,
    QuoteInQuotedField,
    EatNewline,
}

/// One input event: a character of a line, or the end of a line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ev {
    Char(char),
    EndOfLine,
}

/// The records of `text`, each a list of fields. An empty line is an empty
/// record, as Python's reader gives it (`[]`).
pub(super) fn records(text: &str) -> Vec<Vec<String>> {
    let text = universal_newlines(text);
    let mut p = Parser {
        state: State::StartRecord,
        field: String::new(),
        record: Vec::new(),
        out: Vec::new(),
    };
    for line in text.split_inclusive('\n') {
        for c in line.chars() {
            p.step(Ev::Char(c));
        }
        p.step(Ev::EndOfLine);
    }
    if p.state != State::StartRecord {
        // Python (not strict): a quoted field open at the end of the data
        // ends there, with its record.
        p.save_field();
        p.out.push(std::mem::take(&mut p.record));
    }
    p.out
}

/// `\r\n` and a lone `\r` read as `\n` (Python's text mode with
/// `newline=None`).
fn universal_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

struct Parser {
    state: State,
    field: String,
    record: Vec<String>,
    out: Vec<Vec<String>>,
}

impl Parser {
    fn save_field(&mut self) {
        self.record.push(std::mem::take(&mut self.field));
    }

    fn end_record(&mut self) {
        self.out.push(std::mem::take(&mut self.record));
    }

    /// A comma: the field ends, the next starts.
    fn next_field(&mut self) {
        self.save_field();
        self.state = State::StartField;
    }

    /// A character of an unquoted field (or after a closing quote, which
    /// Python's reader takes into the field when not strict).
    fn unquoted(&mut self, c: char) {
        self.field.push(c);
        self.state = State::InField;
    }

    /// After a field ends at a line break or the end of a line.
    fn field_ended_by(&mut self, ev: Ev) {
        self.save_field();
        self.state = if ev == Ev::EndOfLine {
            self.end_record();
            State::StartRecord
        } else {
            State::EatNewline
        };
    }

    fn step(&mut self, ev: Ev) {
        let newline = matches!(ev, Ev::Char('\n' | '\r'));
        match self.state {
            State::StartRecord if ev == Ev::EndOfLine => {
                // An empty line: an empty record.
                self.end_record();
            }
            State::StartRecord if newline => self.state = State::EatNewline,
            State::StartRecord | State::StartField => match ev {
                Ev::EndOfLine => self.field_ended_by(ev),
                _ if newline => self.field_ended_by(ev),
                Ev::Char('"') => self.state = State::InQuotedField,
                Ev::Char(',') => self.next_field(),
                Ev::Char(c) => self.unquoted(c),
            },
            State::InField => match ev {
                Ev::EndOfLine => self.field_ended_by(ev),
                _ if newline => self.field_ended_by(ev),
                Ev::Char(',') => self.next_field(),
                Ev::Char(c) => self.field.push(c),
            },
            State::InQuotedField => match ev {
                // The line break itself was a character of the field.
                Ev::EndOfLine => {}
                Ev::Char('"') => self.state = State::QuoteInQuotedField,
                Ev::Char(c) => self.field.push(c),
            },
            State::QuoteInQuotedField => match ev {
                Ev::EndOfLine => self.field_ended_by(ev),
                _ if newline => self.field_ended_by(ev),
                Ev::Char('"') => {
                    self.field.push('"');
                    self.state = State::InQuotedField;
                }
                Ev::Char(',') => self.next_field(),
                Ev::Char(c) => self.unquoted(c),
            },
            State::EatNewline => match ev {
                Ev::EndOfLine => {
                    self.end_record();
                    self.state = State::StartRecord;
                }
                _ if newline => {}
                Ev::Char(c) => {
                    // Not reached: after universal newlines every line
                    // break is a line's last character, so the end of the
                    // line comes next. (Python would raise "new-line
                    // character seen in unquoted field"; a new record is
                    // the answer that loses nothing.)
                    self.end_record();
                    self.unquoted(c);
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::records;

    fn rec(text: &str) -> Vec<Vec<String>> {
        records(text)
    }

    fn v(rows: &[&[&str]]) -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn reads_as_pythons_csv_reader() {
        // Each expected value is what Python 3.11's
        // `list(csv.reader(io.StringIO(text, newline=None)))` returns.
        assert_eq!(rec("a,b\n"), v(&[&["a", "b"]]));
        assert_eq!(rec("a,b"), v(&[&["a", "b"]]));
        assert_eq!(rec("\"a,b\",c\r\n"), v(&[&["a,b", "c"]]));
        assert_eq!(rec("\"say \"\"hi\"\"\",x\n"), v(&[&["say \"hi\"", "x"]]));
        assert_eq!(rec("\"two\nlines\",y\n"), v(&[&["two\nlines", "y"]]));
        assert_eq!(rec("\"two\r\nlines\",y\r\n"), v(&[&["two\nlines", "y"]]));
        assert_eq!(rec("a\n\nb\n"), v(&[&["a"], &[], &["b"]]));
        assert_eq!(rec("a,\n"), v(&[&["a", ""]]));
        assert_eq!(rec(",\n"), v(&[&["", ""]]));
        assert_eq!(rec("a\"b,c\n"), v(&[&["a\"b", "c"]]));
        assert_eq!(rec("\"a\"b,c\n"), v(&[&["ab", "c"]]));
        assert_eq!(rec("\"open\nto the end"), v(&[&["open\nto the end"]]));
        assert_eq!(rec(" \"a\",b\n"), v(&[&[" \"a\"", "b"]]));
        assert_eq!(rec("a\rb\n"), v(&[&["a"], &["b"]]));
        assert_eq!(rec(""), v(&[]));
        assert_eq!(rec("\n"), v(&[&[]]));
        assert_eq!(rec("\""), v(&[&[""]]));
        assert_eq!(rec("a,\"\"\n"), v(&[&["a", ""]]));
    }
}

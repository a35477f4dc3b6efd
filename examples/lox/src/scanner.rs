//! The scanner: source text to tokens, one at a time, on demand of the compiler.
//!
//! Tokens borrow their lexeme from the source. A lexical error is an `Error` token whose lexeme
//! is the message, so the compiler reports it like any other error (`[line N] Error: message`).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    LeftParen,
    RightParen,
    LeftBrace,
    RightBrace,
    Comma,
    Dot,
    Minus,
    Plus,
    Semicolon,
    Slash,
    Star,
    Bang,
    BangEqual,
    Equal,
    EqualEqual,
    Greater,
    GreaterEqual,
    Less,
    LessEqual,
    Identifier,
    String,
    Number,
    And,
    Class,
    Else,
    False,
    For,
    Fun,
    If,
    Nil,
    Or,
    Print,
    Return,
    Super,
    This,
    True,
    Var,
    While,
    Error,
    Eof,
}

#[derive(Clone, Copy, Debug)]
pub struct Token<'src> {
    pub kind: Kind,
    pub lexeme: &'src str,
    pub line: u32,
}

impl<'src> Token<'src> {
    /// A token that does not come from the source (`this`, `super` in generated code).
    pub fn synthetic(lexeme: &'src str) -> Self {
        Token {
            kind: Kind::Identifier,
            lexeme,
            line: 0,
        }
    }
}

pub struct Scanner<'src> {
    src: &'src str,
    start: usize,
    current: usize,
    line: u32,
}

impl<'src> Scanner<'src> {
    pub fn new(src: &'src str) -> Self {
        Scanner {
            src,
            start: 0,
            current: 0,
            line: 1,
        }
    }

    fn peek(&self) -> u8 {
        self.src.as_bytes().get(self.current).copied().unwrap_or(0)
    }

    fn peek_next(&self) -> u8 {
        self.src
            .as_bytes()
            .get(self.current + 1)
            .copied()
            .unwrap_or(0)
    }

    fn at_end(&self) -> bool {
        self.current >= self.src.len()
    }

    fn advance(&mut self) -> u8 {
        let c = self.peek();
        self.current += 1;
        c
    }

    fn matches(&mut self, c: u8) -> bool {
        if !self.at_end() && self.peek() == c {
            self.current += 1;
            true
        } else {
            false
        }
    }

    fn make(&self, kind: Kind) -> Token<'src> {
        Token {
            kind,
            lexeme: &self.src[self.start..self.current],
            line: self.line,
        }
    }

    fn error(&self, message: &'static str) -> Token<'src> {
        Token {
            kind: Kind::Error,
            lexeme: message,
            line: self.line,
        }
    }

    fn skip_whitespace(&mut self) {
        loop {
            match self.peek() {
                b' ' | b'\r' | b'\t' => self.current += 1,
                b'\n' => {
                    self.line += 1;
                    self.current += 1;
                }
                b'/' if self.peek_next() == b'/' => {
                    while self.peek() != b'\n' && !self.at_end() {
                        self.current += 1;
                    }
                }
                _ => return,
            }
        }
    }

    pub fn next_token(&mut self) -> Token<'src> {
        self.skip_whitespace();
        self.start = self.current;
        if self.at_end() {
            return self.make(Kind::Eof);
        }
        let c = self.advance();
        if c.is_ascii_alphabetic() || c == b'_' {
            return self.identifier();
        }
        if c.is_ascii_digit() {
            return self.number();
        }
        let kind = match c {
            b'(' => Kind::LeftParen,
            b')' => Kind::RightParen,
            b'{' => Kind::LeftBrace,
            b'}' => Kind::RightBrace,
            b';' => Kind::Semicolon,
            b',' => Kind::Comma,
            b'.' => Kind::Dot,
            b'-' => Kind::Minus,
            b'+' => Kind::Plus,
            b'/' => Kind::Slash,
            b'*' => Kind::Star,
            b'!' if self.matches(b'=') => Kind::BangEqual,
            b'!' => Kind::Bang,
            b'=' if self.matches(b'=') => Kind::EqualEqual,
            b'=' => Kind::Equal,
            b'<' if self.matches(b'=') => Kind::LessEqual,
            b'<' => Kind::Less,
            b'>' if self.matches(b'=') => Kind::GreaterEqual,
            b'>' => Kind::Greater,
            b'"' => return self.string(),
            _ => {
                // Skip the rest of a multi-byte character so lexemes stay on char boundaries.
                while !self.src.is_char_boundary(self.current) {
                    self.current += 1;
                }
                return self.error("Unexpected character.");
            }
        };
        self.make(kind)
    }

    fn string(&mut self) -> Token<'src> {
        while self.peek() != b'"' && !self.at_end() {
            if self.peek() == b'\n' {
                self.line += 1;
            }
            self.current += 1;
        }
        if self.at_end() {
            return self.error("Unterminated string.");
        }
        self.current += 1; // the closing quote
        self.make(Kind::String)
    }

    fn number(&mut self) -> Token<'src> {
        while self.peek().is_ascii_digit() {
            self.current += 1;
        }
        if self.peek() == b'.' && self.peek_next().is_ascii_digit() {
            self.current += 1;
            while self.peek().is_ascii_digit() {
                self.current += 1;
            }
        }
        self.make(Kind::Number)
    }

    fn identifier(&mut self) -> Token<'src> {
        while self.peek().is_ascii_alphanumeric() || self.peek() == b'_' {
            self.current += 1;
        }
        let kind = match &self.src[self.start..self.current] {
            "and" => Kind::And,
            "class" => Kind::Class,
            "else" => Kind::Else,
            "false" => Kind::False,
            "for" => Kind::For,
            "fun" => Kind::Fun,
            "if" => Kind::If,
            "nil" => Kind::Nil,
            "or" => Kind::Or,
            "print" => Kind::Print,
            "return" => Kind::Return,
            "super" => Kind::Super,
            "this" => Kind::This,
            "true" => Kind::True,
            "var" => Kind::Var,
            "while" => Kind::While,
            _ => Kind::Identifier,
        };
        self.make(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Kind> {
        let mut s = Scanner::new(src);
        let mut out = Vec::new();
        loop {
            let t = s.next_token();
            out.push(t.kind);
            if t.kind == Kind::Eof {
                return out;
            }
        }
    }

    #[test]
    fn scans_operators_keywords_and_literals() {
        use Kind::*;
        assert_eq!(
            kinds("var x = 1.5 >= \"a\"; // c\n classy != nil"),
            vec![
                Var,
                Identifier,
                Equal,
                Number,
                GreaterEqual,
                String,
                Semicolon,
                Identifier,
                BangEqual,
                Nil,
                Eof
            ]
        );
    }

    #[test]
    fn errors_are_tokens_and_lines_count() {
        let mut s = Scanner::new("\n\n\"abc");
        let t = s.next_token();
        assert_eq!(
            (t.kind, t.lexeme, t.line),
            (Kind::Error, "Unterminated string.", 3)
        );
        let mut s = Scanner::new("é");
        assert_eq!(s.next_token().lexeme, "Unexpected character.");
        assert_eq!(s.next_token().kind, Kind::Eof);
    }
}

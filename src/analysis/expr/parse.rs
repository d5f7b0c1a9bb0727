//! Reading a row expression: tokens, then a small precedence-climbing parser into [`Expr`].
//!
//! The syntax is the expression part of the prose templates (Python/Jinja-like: `status == 2`,
//! `age >= 65 and not frail`, `'LB' if bone_mets else 'L'`, `site in ['spine', 'ribs']`,
//! `grade is not none`), so authors keep one syntax. It is parsed here rather than by minijinja
//! because the *meaning* must be R's (a missing operand makes a missing result; see `value.rs`),
//! and an owned tree also lets every mistake be reported at its column before any row is read.

use super::value::Value;

/// Deepest nesting of parentheses, lists and operators an expression may have: a bound on the
/// parser's recursion, far above anything a person writes (a hostile spec must not overflow the stack).
const MAX_DEPTH: usize = 64;

/// Most tokens an expression may have. Chains of binary operators (`a + b + c ...`) are read in a
/// loop but build a tree as deep as they are long, which evaluation and dropping walk recursively:
/// this bounds that depth too (a list of a hundred levels is about 200 tokens).
const MAX_TOKENS: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    Concat,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::FloorDiv => "//",
            BinOp::Mod => "%",
            BinOp::Pow => "**",
            BinOp::Concat => "~",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
        )
    }
}

/// The functions a row expression may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Days,
    Months,
    Years,
    Year,
    IsMissing,
    Coalesce,
}

impl Function {
    pub const ALL: &'static [(&'static str, Function)] = &[
        ("days", Function::Days),
        ("months", Function::Months),
        ("years", Function::Years),
        ("year", Function::Year),
        ("is_missing", Function::IsMissing),
        ("coalesce", Function::Coalesce),
    ];

    fn named(name: &str) -> Option<Function> {
        Function::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
    }

    pub fn name(self) -> &'static str {
        Function::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("?", |(n, _)| n)
    }

    /// How many arguments the function takes (`None`: two or more).
    fn arity(self) -> Option<usize> {
        match self {
            Function::Days | Function::Months | Function::Years => Some(2),
            Function::Year | Function::IsMissing => Some(1),
            Function::Coalesce => None,
        }
    }
}

/// A parsed expression. Columns are resolved to an index into the expression's column list.
#[derive(Debug, Clone)]
pub enum Expr {
    Literal(Value),
    Column(usize),
    List(Vec<Expr>),
    Negate(Box<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `x in [..]` (`negated`: `x not in [..]`).
    In {
        item: Box<Expr>,
        list: Box<Expr>,
        negated: bool,
    },
    /// `x is none` / `x is not none`: never missing itself.
    IsNone {
        value: Box<Expr>,
        negated: bool,
    },
    IfElse {
        condition: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    Call(Function, Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Int(i64),
    Num(f64),
    Str(String),
    Name(String),
    /// A column name in backticks: never a keyword or a function.
    Quoted(String),
    /// Operators and punctuation.
    Sym(&'static str),
    End,
}

/// A parse error with the byte offset in the source it refers to.
#[derive(Debug)]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

fn error<T>(offset: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        offset,
        message: message.into(),
    })
}

const SYMBOLS: &[&str] = &[
    "**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]",
    ",",
];

fn tokenize(source: &str) -> Result<Vec<(Token, usize)>, ParseError> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if out.len() >= MAX_TOKENS {
            return error(
                i,
                format!("the expression is longer than {MAX_TOKENS} words and symbols"),
            );
        } else if c.is_ascii_digit()
            || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let start = i;
            i = number_end(bytes, i);
            out.push((number_token(&source[start..i], start)?, start));
        } else if c == b'\'' || c == b'"' {
            let (text, end) = string_literal(source, i)?;
            out.push((Token::Str(text), i));
            i = end;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            // Names may hold dots, as R's do (`ph.ecog`): there is no attribute access to confuse.
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
            {
                i += 1;
            }
            out.push((Token::Name(source[start..i].to_string()), start));
        } else if c == b'`' {
            // Any other column name is quoted in backticks, as in R: `age at entry`, `in`.
            let Some(len) = source[i + 1..].find('`') else {
                return error(i, "the column name starting with ` is never closed");
            };
            out.push((Token::Quoted(source[i + 1..i + 1 + len].to_string()), i));
            i += len + 2;
        } else if let Some(sym) = SYMBOLS.iter().find(|s| source[i..].starts_with(**s)) {
            out.push((Token::Sym(sym), i));
            i += sym.len();
        } else {
            let ch = source[i..].chars().next().unwrap_or('?');
            let hint = match ch {
                '|' => {
                    ": filters (`|`) belong to the prose templates; a row expression calls functions, e.g. `year(date)`"
                }
                '{' | '}' => ": an expression is written without `{{ }}`",
                '=' => ": compare with `==`",
                '&' => ": write `and`",
                '!' => ": write `not` (or `!=` to compare)",
                '.' => {
                    ": a column is named without `.` (use its name as written in the CSV header)"
                }
                _ => "",
            };
            return error(i, format!("unexpected `{ch}`{hint}"));
        }
    }
    out.push((Token::End, source.len()));
    Ok(out)
}

fn number_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.' || bytes[i] == b'_') {
        i += 1;
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        let mut j = i + 1;
        if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
            j += 1;
        }
        if j < bytes.len() && bytes[j].is_ascii_digit() {
            i = j;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

fn number_token(text: &str, offset: usize) -> Result<Token, ParseError> {
    let clean = text.replace('_', "");
    if !clean.contains(['.', 'e', 'E']) {
        return match clean.parse::<i64>() {
            Ok(v) => Ok(Token::Int(v)),
            Err(_) => error(offset, format!("`{text}` is too large for a whole number")),
        };
    }
    match clean.parse::<f64>() {
        Ok(v)
            if v.is_finite() && (v != 0.0 || !clean.chars().any(|c| ('1'..='9').contains(&c))) =>
        {
            Ok(Token::Num(v))
        }
        _ => error(
            offset,
            format!("`{text}` is not a number galley can hold (out of range)"),
        ),
    }
}

/// A quoted string starting at `start`; returns its text and the offset after the closing quote.
fn string_literal(source: &str, start: usize) -> Result<(String, usize), ParseError> {
    let quote = source.as_bytes()[start] as char;
    let mut text = String::new();
    let mut chars = source[start + 1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((text, start + 1 + i + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => text.push('\n'),
                Some((_, 't')) => text.push('\t'),
                Some((_, c)) => text.push(c),
                None => break,
            },
            c => text.push(c),
        }
    }
    error(
        start,
        format!("the text starting with {quote} is never closed"),
    )
}

/// Column names an expression refers to, resolved while parsing.
pub trait Columns {
    /// The index of column `name` in the expression's list, or `None` if the dataset lacks it.
    fn resolve(&mut self, name: &str) -> Option<usize>;
}

struct Parser<'a, C: Columns> {
    tokens: Vec<(Token, usize)>,
    pos: usize,
    depth: usize,
    columns: &'a mut C,
}

/// Parse `source`; every name that is not a function must be a column `columns` resolves.
pub fn parse<C: Columns>(source: &str, columns: &mut C) -> Result<Expr, ParseError> {
    let tokens = tokenize(source)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
        columns,
    };
    let expr = parser.expression()?;
    match parser.peek() {
        Token::End => Ok(expr),
        Token::Sym("=") => error(parser.offset(), "compare with `==`"),
        other => error(
            parser.offset(),
            format!("unexpected {} after a complete expression", describe(other)),
        ),
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Int(v) => format!("`{v}`"),
        Token::Num(v) => format!("`{v}`"),
        Token::Str(s) => format!("'{s}'"),
        Token::Name(n) => format!("`{n}`"),
        Token::Quoted(n) => format!("`{n}`"),
        Token::Sym(s) => format!("`{s}`"),
        Token::End => "the end of the expression".into(),
    }
}

impl<C: Columns> Parser<'_, C> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos].0
    }

    fn offset(&self) -> usize {
        self.tokens[self.pos].1
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens[self.pos].0.clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Token::Name(n) if n == word)
    }

    fn is_sym(&self, sym: &str) -> bool {
        matches!(self.peek(), Token::Sym(s) if *s == sym)
    }

    fn expect_sym(&mut self, sym: &str) -> Result<(), ParseError> {
        if self.is_sym(sym) {
            self.advance();
            Ok(())
        } else {
            error(
                self.offset(),
                format!("expected `{sym}`, found {}", describe(self.peek())),
            )
        }
    }

    /// Every rule that recurses passes through here, so nesting is bounded once.
    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return error(
                self.offset(),
                format!("the expression nests more than {MAX_DEPTH} levels deep"),
            );
        }
        let result = f(self);
        self.depth -= 1;
        result
    }

    /// `a if condition else b` (lowest precedence, right-associative).
    fn expression(&mut self) -> Result<Expr, ParseError> {
        self.nested(|p| {
            let then = p.or()?;
            if !p.is_word("if") {
                return Ok(then);
            }
            p.advance();
            let condition = p.or()?;
            if !p.is_word("else") {
                return error(
                    p.offset(),
                    "`a if condition` needs `else b`: say what a row gets when the condition is false",
                );
            }
            p.advance();
            let otherwise = p.expression()?;
            Ok(Expr::IfElse {
                condition: Box::new(condition),
                then: Box::new(then),
                otherwise: Box::new(otherwise),
            })
        })
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.is_word("or") {
            self.advance();
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not()?;
        while self.is_word("and") {
            self.advance();
            let right = self.not()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.is_word("not") {
            self.advance();
            return self.nested(|p| Ok(Expr::Not(Box::new(p.not()?))));
        }
        self.comparison()
    }

    /// One comparison, `in` or `is` test. A chain (`a < b < c`) is refused: Python reads it as
    /// `a < b and b < c`, Jinja as `(a < b) < c`, so either reading would surprise someone.
    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let left = self.concat()?;
        let expr = self.comparison_rest(left)?;
        if self.comparison_follows() {
            return error(
                self.offset(),
                "comparisons cannot be chained; join them with `and` (e.g. `18 <= age and age < 65`)",
            );
        }
        Ok(expr)
    }

    fn comparison_follows(&self) -> bool {
        matches!(
            self.peek(),
            Token::Sym("==" | "!=" | "<" | "<=" | ">" | ">=")
        ) || self.is_word("in")
            || self.is_word("is")
            || (self.is_word("not")
                && matches!(self.tokens.get(self.pos + 1), Some((Token::Name(n), _)) if n == "in"))
    }

    fn comparison_rest(&mut self, left: Expr) -> Result<Expr, ParseError> {
        let op = match self.peek() {
            Token::Sym("==") => BinOp::Eq,
            Token::Sym("!=") => BinOp::Ne,
            Token::Sym("<") => BinOp::Lt,
            Token::Sym("<=") => BinOp::Le,
            Token::Sym(">") => BinOp::Gt,
            Token::Sym(">=") => BinOp::Ge,
            Token::Name(n) if n == "in" => {
                self.advance();
                let list = self.concat()?;
                return Ok(in_expr(left, list, false));
            }
            Token::Name(n) if n == "not" && self.comparison_follows() => {
                self.advance();
                self.advance();
                let list = self.concat()?;
                return Ok(in_expr(left, list, true));
            }
            Token::Name(n) if n == "is" => {
                self.advance();
                let negated = self.is_word("not");
                if negated {
                    self.advance();
                }
                if !(self.is_word("none") || self.is_word("None") || self.is_word("missing")) {
                    return error(
                        self.offset(),
                        format!(
                            "`is` tests only for a missing value (`is none`, `is not none`), found {}",
                            describe(self.peek())
                        ),
                    );
                }
                self.advance();
                return Ok(Expr::IsNone {
                    value: Box::new(left),
                    negated,
                });
            }
            _ => return Ok(left),
        };
        self.advance();
        let right = self.concat()?;
        Ok(Expr::Binary(op, Box::new(left), Box::new(right)))
    }

    fn concat(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.additive()?;
        while self.is_sym("~") {
            self.advance();
            let right = self.additive()?;
            left = Expr::Binary(BinOp::Concat, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Token::Sym("+") => BinOp::Add,
                Token::Sym("-") => BinOp::Sub,
                _ => return Ok(left),
            };
            self.advance();
            let right = self.multiplicative()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Token::Sym("*") => BinOp::Mul,
                Token::Sym("/") => BinOp::Div,
                Token::Sym("//") => BinOp::FloorDiv,
                Token::Sym("%") => BinOp::Mod,
                _ => return Ok(left),
            };
            self.advance();
            let right = self.unary()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.is_sym("-") {
            self.advance();
            return self.nested(|p| Ok(Expr::Negate(Box::new(p.unary()?))));
        }
        if self.is_sym("+") {
            self.advance();
            return self.nested(|p| p.unary());
        }
        self.power()
    }

    /// `a ** b`, right-associative and binding tighter than a unary minus on its left (`-2 ** 2` is -4).
    fn power(&mut self) -> Result<Expr, ParseError> {
        let base = self.primary()?;
        if !self.is_sym("**") {
            return Ok(base);
        }
        self.advance();
        let exponent = self.nested(|p| p.unary())?;
        Ok(Expr::Binary(BinOp::Pow, Box::new(base), Box::new(exponent)))
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let offset = self.offset();
        match self.advance() {
            Token::Int(v) => Ok(Expr::Literal(Value::Int(v))),
            Token::Num(v) => Ok(Expr::Literal(Value::Num(v))),
            Token::Str(s) => Ok(Expr::Literal(Value::Str(s.into()))),
            Token::Sym("(") => {
                let inner = self.nested(|p| p.expression())?;
                self.expect_sym(")")?;
                Ok(inner)
            }
            Token::Sym("[") => self.nested(|p| p.list()),
            Token::Name(name) => self.name(name, offset),
            Token::Quoted(name) => match self.columns.resolve(&name) {
                Some(index) => Ok(Expr::Column(index)),
                None => error(offset, format!("unknown column `{name}`")),
            },
            other => error(
                offset,
                format!(
                    "expected a value, a column or `(`, found {}",
                    describe(&other)
                ),
            ),
        }
    }

    fn list(&mut self) -> Result<Expr, ParseError> {
        let mut items = Vec::new();
        while !self.is_sym("]") {
            items.push(self.expression()?);
            if !self.is_sym(",") {
                break;
            }
            self.advance();
        }
        self.expect_sym("]")?;
        Ok(Expr::List(items))
    }

    fn name(&mut self, name: String, offset: usize) -> Result<Expr, ParseError> {
        match name.as_str() {
            "true" | "True" => return Ok(Expr::Literal(Value::Bool(true))),
            "false" | "False" => return Ok(Expr::Literal(Value::Bool(false))),
            "none" | "None" => return Ok(Expr::Literal(Value::Missing)),
            "and" | "or" | "not" | "in" | "is" | "if" | "else" => {
                return error(
                    offset,
                    format!(
                        "`{name}` needs a value before it (a column named `{name}` is written in backticks: `{name}`)"
                    ),
                );
            }
            _ => {}
        }
        if self.is_sym("(") {
            return self.call(&name, offset);
        }
        match self.columns.resolve(&name) {
            Some(index) => Ok(Expr::Column(index)),
            None => error(offset, format!("unknown column `{name}`")),
        }
    }

    fn call(&mut self, name: &str, offset: usize) -> Result<Expr, ParseError> {
        let Some(function) = Function::named(name) else {
            let known: Vec<&str> = Function::ALL.iter().map(|(n, _)| *n).collect();
            return error(
                offset,
                format!(
                    "unknown function `{name}` (functions: {})",
                    known.join(", ")
                ),
            );
        };
        self.advance();
        let mut args = Vec::new();
        while !self.is_sym(")") {
            args.push(self.nested(|p| p.expression())?);
            if !self.is_sym(",") {
                break;
            }
            self.advance();
        }
        self.expect_sym(")")?;
        let ok = match function.arity() {
            Some(n) => args.len() == n,
            None => args.len() >= 2,
        };
        if !ok {
            let wanted = function
                .arity()
                .map_or_else(|| "two or more".to_string(), |n| n.to_string());
            return error(
                offset,
                format!("`{name}` takes {wanted} argument(s), found {}", args.len()),
            );
        }
        Ok(match function {
            Function::IsMissing => Expr::IsNone {
                value: Box::new(args.remove(0)),
                negated: false,
            },
            _ => Expr::Call(function, args),
        })
    }
}

fn in_expr(item: Expr, list: Expr, negated: bool) -> Expr {
    Expr::In {
        item: Box::new(item),
        list: Box::new(list),
        negated,
    }
}

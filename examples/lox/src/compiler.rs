//! The compiler: a single pass from tokens to bytecode (a Pratt parser for expressions,
//! recursive descent for statements), with no syntax tree in between.
//!
//! It resolves every variable at compile time: a local is a stack slot of the current function,
//! a variable of an enclosing function becomes an upvalue (captured by `Closure`), anything else
//! is a global, numbered by [`GlobalNames`] (the VM keeps global values in a GC array indexed by
//! that number, so a global access is an array load, not a hash lookup; the names persist
//! across compilations so REPL lines share their globals). Errors are collected (not printed) in the book's format,
//! `[line N] Error at 'x': message`; after an error the parser skips to the next statement
//! boundary so that one mistake gives one message.

use std::collections::HashMap;

use crate::chunk::{Constant, Op, Proto};
use crate::scanner::{Kind, Scanner, Token};

/// Most global variables a program may name (operands are two bytes).
pub const MAX_GLOBALS: usize = 1 << 16;

/// The numbering of global variable names, shared by every compilation of one VM.
#[derive(Default, Debug)]
pub struct GlobalNames {
    index: HashMap<String, u16>,
    names: Vec<String>,
}

impl GlobalNames {
    /// The slot of global `name`, numbering it if it is new; `None` if there are too many.
    pub fn slot(&mut self, name: &str) -> Option<u16> {
        if let Some(&i) = self.index.get(name) {
            return Some(i);
        }
        if self.names.len() == MAX_GLOBALS {
            return None;
        }
        let i = self.names.len() as u16;
        self.index.insert(name.to_string(), i);
        self.names.push(name.to_string());
        Some(i)
    }

    /// The name of slot `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// How many globals have been named.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Most locals (including the reserved slot 0), upvalues and constants per function: operands
/// are one byte.
const MAX_SLOTS: usize = 256;
/// Deepest nesting of expressions and statements the compiler accepts (it recurses on them).
const MAX_NESTING: usize = 1000;

/// Compile a whole program into the top-level script function.
pub fn compile(src: &str, globals: &mut GlobalNames) -> Result<Proto, Vec<String>> {
    let mut c = Compiler {
        globals,
        scanner: Scanner::new(src),
        current: Token::synthetic(""),
        previous: Token::synthetic(""),
        panic_mode: false,
        errors: Vec::new(),
        fns: Vec::new(),
        classes: Vec::new(),
        nesting: 0,
        abandoned: false,
    };
    c.begin_function(FnKind::Script, "");
    c.advance();
    while !c.matches(Kind::Eof) {
        c.declaration();
    }
    let (proto, _) = c.end_function();
    if c.errors.is_empty() {
        Ok(proto)
    } else {
        Err(c.errors)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    None,
    Assignment,
    Or,
    And,
    Equality,
    Comparison,
    Term,
    Factor,
    Unary,
    Call,
    Primary,
}

impl Prec {
    fn next(self) -> Prec {
        use Prec::*;
        match self {
            None => Assignment,
            Assignment => Or,
            Or => And,
            And => Equality,
            Equality => Comparison,
            Comparison => Term,
            Term => Factor,
            Factor => Unary,
            Unary => Call,
            Call | Primary => Primary,
        }
    }
}

/// The binding power of `kind` as an infix operator.
fn infix_prec(kind: Kind) -> Prec {
    use Kind::*;
    match kind {
        LeftParen | Dot => Prec::Call,
        Minus | Plus => Prec::Term,
        Slash | Star => Prec::Factor,
        BangEqual | EqualEqual => Prec::Equality,
        Greater | GreaterEqual | Less | LessEqual => Prec::Comparison,
        And => Prec::And,
        Or => Prec::Or,
        _ => Prec::None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FnKind {
    Script,
    Function,
    Method,
    Initializer,
}

struct Local<'src> {
    name: &'src str,
    /// Scope depth, or `None` while its initializer is being compiled.
    depth: Option<usize>,
    captured: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct UpvalueRef {
    index: u8,
    is_local: bool,
}

/// The state of one function being compiled (functions nest).
struct FnState<'src> {
    proto: Proto,
    kind: FnKind,
    locals: Vec<Local<'src>>,
    upvalues: Vec<UpvalueRef>,
    scope_depth: usize,
    /// The last instruction emitted and where it starts (for fusing a following `Pop`).
    last_op: Option<(usize, Op)>,
}

struct Compiler<'src, 'g> {
    globals: &'g mut GlobalNames,
    scanner: Scanner<'src>,
    current: Token<'src>,
    previous: Token<'src>,
    panic_mode: bool,
    errors: Vec<String>,
    fns: Vec<FnState<'src>>,
    /// For each enclosing class declaration: whether it has a superclass.
    classes: Vec<bool>,
    nesting: usize,
    /// Compilation gave up (too much nesting): report nothing more.
    abandoned: bool,
}

impl<'src> Compiler<'src, '_> {
    // ---- tokens and errors ----

    fn advance(&mut self) {
        self.previous = self.current;
        loop {
            self.current = self.scanner.next_token();
            if self.current.kind != Kind::Error {
                break;
            }
            self.error_at(self.current, self.current.lexeme);
        }
    }

    fn check(&self, kind: Kind) -> bool {
        self.current.kind == kind
    }

    fn matches(&mut self, kind: Kind) -> bool {
        if self.check(kind) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn consume(&mut self, kind: Kind, message: &str) {
        if self.check(kind) {
            self.advance();
        } else {
            self.error_at(self.current, message);
        }
    }

    fn error_at(&mut self, token: Token<'src>, message: &str) {
        if self.panic_mode || self.abandoned {
            return;
        }
        self.panic_mode = true;
        let place = match token.kind {
            Kind::Eof => " at end".to_string(),
            Kind::Error => String::new(),
            _ => format!(" at '{}'", token.lexeme),
        };
        self.errors
            .push(format!("[line {}] Error{place}: {message}", token.line));
    }

    fn error(&mut self, message: &str) {
        self.error_at(self.previous, message);
    }

    fn synchronize(&mut self) {
        self.panic_mode = false;
        while !self.check(Kind::Eof) {
            if self.previous.kind == Kind::Semicolon {
                return;
            }
            use Kind::*;
            if matches!(
                self.current.kind,
                Class | Fun | Var | For | If | While | Print | Return
            ) {
                return;
            }
            self.advance();
        }
    }

    /// Count one level of recursion. When nested too deeply: report it, skip the rest of the
    /// source (so every enclosing loop ends at once) and return false; the caller returns
    /// without compiling anything.
    fn enter(&mut self) -> bool {
        if self.nesting >= MAX_NESTING {
            self.error_at(self.current, "Too much nesting.");
            while !self.check(Kind::Eof) {
                self.current = self.scanner.next_token();
            }
            // Unwinding from here would report a missing '}' or ')' at every level.
            self.abandoned = true;
            return false;
        }
        self.nesting += 1;
        true
    }

    // ---- emitting ----

    fn f(&mut self) -> &mut FnState<'src> {
        self.fns.last_mut().expect("a function is being compiled")
    }

    fn emit(&mut self, byte: u8) {
        let line = self.previous.line;
        self.f().proto.write(byte, line);
    }

    fn emit_op(&mut self, op: Op) {
        let at = self.f().proto.code.len();
        self.f().last_op = Some((at, op));
        self.emit(op as u8);
    }

    fn emit_op_arg(&mut self, op: Op, arg: u8) {
        self.emit_op(op);
        self.emit(arg);
    }

    fn emit_op_u16(&mut self, op: Op, arg: u16) {
        self.emit_op(op);
        let [hi, lo] = arg.to_be_bytes();
        self.emit(hi);
        self.emit(lo);
    }

    fn global_slot(&mut self, name: &str) -> u16 {
        match self.globals.slot(name) {
            Some(i) => i,
            None => {
                self.error("Too many global variables.");
                0
            }
        }
    }

    /// Pop the value of an expression statement: fused into the instruction before when that
    /// was an assignment (and no jump lands between the two).
    fn emit_pop(&mut self) {
        let fused = match self.f().last_op {
            Some((at, Op::SetLocal)) => Some((at, Op::SetLocalPop)),
            Some((at, Op::SetGlobal)) => Some((at, Op::SetGlobalPop)),
            Some((at, Op::SetProperty)) => Some((at, Op::SetPropertyPop)),
            _ => None,
        };
        match fused {
            Some((at, op)) => {
                let f = self.f();
                f.proto.code[at] = op as u8;
                f.last_op = None;
            }
            None => self.emit_op(Op::Pop),
        }
    }

    /// The current position, as the target of a jump still to be emitted (a loop start): no
    /// instruction emitted after it may be fused with one before it.
    fn jump_target(&mut self) -> usize {
        let f = self.f();
        f.last_op = None;
        f.proto.code.len()
    }

    /// If the last instruction was `GetLocal` (with no jump target since), turn it into
    /// `fused` keeping its slot operand, and return true; the caller then emits the second
    /// operand. The fused opcode takes the line of the second instruction: a runtime error is
    /// reported at its opcode's line, and only the second part can fail (`o.⏎x` fails on the
    /// name's line, as in clox).
    fn fuse_after_get_local(&mut self, fused: Op) -> bool {
        let line = self.previous.line;
        let f = self.f();
        match f.last_op {
            Some((at, Op::GetLocal)) if at + 2 == f.proto.code.len() => {
                f.proto.code[at] = fused as u8;
                f.proto.lines[at] = line;
                f.last_op = Some((at, fused));
                true
            }
            _ => false,
        }
    }

    fn emit_constant(&mut self, c: u8) {
        if self.fuse_after_get_local(Op::GetLocalConstant) {
            self.emit(c);
        } else {
            self.emit_op_arg(Op::Constant, c);
        }
    }

    fn emit_jump(&mut self, op: Op) -> usize {
        // A comparison followed by a conditional jump becomes one compare-and-branch.
        if op == Op::PopJumpIfFalse {
            let f = self.f();
            let fused = match f.last_op {
                Some((at, cmp)) if at + 1 == f.proto.code.len() => match cmp {
                    Op::Less => Some(Op::JumpIfNotLess),
                    Op::Greater => Some(Op::JumpIfNotGreater),
                    Op::LessEqual => Some(Op::JumpIfGreater),
                    Op::GreaterEqual => Some(Op::JumpIfLess),
                    Op::Equal => Some(Op::JumpIfNotEqual),
                    Op::NotEqual => Some(Op::JumpIfEqual),
                    _ => None,
                }
                .map(|op| (at, op)),
                _ => None,
            };
            if let Some((at, fused)) = fused {
                f.proto.code[at] = fused as u8;
                f.last_op = Some((at, fused));
                self.emit(0xff);
                self.emit(0xff);
                return self.f().proto.code.len() - 2;
            }
        }
        self.emit_op(op);
        self.emit(0xff);
        self.emit(0xff);
        self.f().proto.code.len() - 2
    }

    fn patch_jump(&mut self, at: usize) {
        let distance = self.f().proto.code.len() - at - 2;
        if distance > u16::MAX as usize {
            self.error("Too much code to jump over.");
        }
        let f = self.f();
        f.proto.code[at] = (distance >> 8) as u8;
        f.proto.code[at + 1] = distance as u8;
        // A jump now lands here: the next instruction must not be fused with the previous.
        f.last_op = None;
    }

    fn emit_loop(&mut self, start: usize) {
        self.emit_op(Op::Loop);
        let distance = self.f().proto.code.len() - start + 2;
        if distance > u16::MAX as usize {
            self.error("Loop body too large.");
        }
        self.emit((distance >> 8) as u8);
        self.emit(distance as u8);
    }

    fn emit_return(&mut self) {
        if self.f().kind == FnKind::Initializer {
            self.emit_op_arg(Op::GetLocal, 0);
        } else {
            self.emit_op(Op::Nil);
        }
        self.emit_op(Op::Return);
    }

    fn make_constant(&mut self, c: Constant) -> u8 {
        let constants = &mut self.f().proto.constants;
        if constants.len() == MAX_SLOTS {
            self.error("Too many constants in one chunk.");
            return 0;
        }
        constants.push(c);
        (constants.len() - 1) as u8
    }

    fn identifier_constant(&mut self, name: &str) -> u8 {
        self.make_constant(Constant::Str(name.to_string()))
    }

    // ---- functions and scopes ----

    fn begin_function(&mut self, kind: FnKind, name: &str) {
        let slot0 = if matches!(kind, FnKind::Method | FnKind::Initializer) {
            "this"
        } else {
            ""
        };
        self.fns.push(FnState {
            proto: Proto {
                name: name.to_string(),
                ..Proto::default()
            },
            kind,
            locals: vec![Local {
                name: slot0,
                depth: Some(0),
                captured: false,
            }],
            upvalues: Vec::new(),
            scope_depth: 0,
            last_op: None,
        });
    }

    fn end_function(&mut self) -> (Proto, Vec<UpvalueRef>) {
        self.emit_return();
        let mut state = self.fns.pop().expect("a function is being compiled");
        state.proto.upvalue_count = state.upvalues.len() as u16;
        (state.proto, state.upvalues)
    }

    fn begin_scope(&mut self) {
        self.f().scope_depth += 1;
    }

    fn end_scope(&mut self) {
        self.f().scope_depth -= 1;
        loop {
            let f = self.f();
            let Some(local) = f.locals.last() else { break };
            if local.depth.is_some_and(|d| d <= f.scope_depth) {
                break;
            }
            let op = if local.captured {
                Op::CloseUpvalue
            } else {
                Op::Pop
            };
            f.locals.pop();
            self.emit_op(op);
        }
    }

    fn add_local(&mut self, name: &'src str) {
        if self.f().locals.len() == MAX_SLOTS {
            self.error("Too many local variables in function.");
            return;
        }
        self.f().locals.push(Local {
            name,
            depth: None,
            captured: false,
        });
    }

    fn declare_variable(&mut self) {
        if self.f().scope_depth == 0 {
            return;
        }
        let name = self.previous.lexeme;
        let f = self.f();
        let duplicate = f
            .locals
            .iter()
            .rev()
            .take_while(|l| l.depth.is_none_or(|d| d >= f.scope_depth))
            .any(|l| l.name == name);
        if duplicate {
            self.error("Already a variable with this name in this scope.");
        }
        self.add_local(name);
    }

    /// Parse a variable name and declare it; its global slot if it is a global.
    fn parse_variable(&mut self, message: &str) -> u16 {
        self.consume(Kind::Identifier, message);
        self.declare_variable();
        if self.f().scope_depth > 0 {
            return 0;
        }
        self.global_slot(self.previous.lexeme)
    }

    fn mark_initialized(&mut self) {
        let f = self.f();
        if f.scope_depth == 0 {
            return;
        }
        let depth = f.scope_depth;
        if let Some(l) = f.locals.last_mut() {
            l.depth = Some(depth);
        }
    }

    fn define_variable(&mut self, global: u16) {
        if self.f().scope_depth > 0 {
            self.mark_initialized();
        } else {
            self.emit_op_u16(Op::DefineGlobal, global);
        }
    }

    fn resolve_local(&mut self, fn_index: usize, name: &str) -> Option<u8> {
        let found = self.fns[fn_index]
            .locals
            .iter()
            .enumerate()
            .rev()
            .find(|(_, l)| l.name == name)
            .map(|(i, l)| (i, l.depth.is_none()));
        let (slot, uninitialized) = found?;
        if uninitialized {
            self.error("Can't read local variable in its own initializer.");
        }
        Some(slot as u8)
    }

    fn add_upvalue(&mut self, fn_index: usize, up: UpvalueRef) -> u8 {
        let ups = &self.fns[fn_index].upvalues;
        if let Some(i) = ups.iter().position(|u| *u == up) {
            return i as u8;
        }
        if ups.len() == MAX_SLOTS {
            self.error("Too many closure variables in function.");
            return 0;
        }
        self.fns[fn_index].upvalues.push(up);
        (self.fns[fn_index].upvalues.len() - 1) as u8
    }

    fn resolve_upvalue(&mut self, fn_index: usize, name: &str) -> Option<u8> {
        if fn_index == 0 {
            return None;
        }
        if let Some(local) = self.resolve_local(fn_index - 1, name) {
            self.fns[fn_index - 1].locals[local as usize].captured = true;
            let up = UpvalueRef {
                index: local,
                is_local: true,
            };
            return Some(self.add_upvalue(fn_index, up));
        }
        let outer = self.resolve_upvalue(fn_index - 1, name)?;
        let up = UpvalueRef {
            index: outer,
            is_local: false,
        };
        Some(self.add_upvalue(fn_index, up))
    }

    fn named_variable(&mut self, name: &str, can_assign: bool) {
        let top = self.fns.len() - 1;
        let (get, set, arg) = if let Some(slot) = self.resolve_local(top, name) {
            (Op::GetLocal, Op::SetLocal, slot as u16)
        } else if let Some(up) = self.resolve_upvalue(top, name) {
            (Op::GetUpvalue, Op::SetUpvalue, up as u16)
        } else {
            let g = self.global_slot(name);
            (Op::GetGlobal, Op::SetGlobal, g)
        };
        let op = if can_assign && self.matches(Kind::Equal) {
            self.expression();
            set
        } else {
            get
        };
        if op == Op::GetGlobal || op == Op::SetGlobal {
            self.emit_op_u16(op, arg);
        } else {
            self.emit_op_arg(op, arg as u8);
        }
    }

    // ---- declarations and statements ----

    fn declaration(&mut self) {
        if self.matches(Kind::Class) {
            self.class_declaration();
        } else if self.matches(Kind::Fun) {
            self.fun_declaration();
        } else if self.matches(Kind::Var) {
            self.var_declaration();
        } else {
            self.statement();
        }
        if self.panic_mode {
            self.synchronize();
        }
    }

    fn class_declaration(&mut self) {
        self.consume(Kind::Identifier, "Expect class name.");
        let class_name = self.previous.lexeme;
        let name_const = self.identifier_constant(class_name);
        self.declare_variable();
        self.emit_op_arg(Op::Class, name_const);
        let global = if self.f().scope_depth == 0 {
            self.global_slot(class_name)
        } else {
            0
        };
        self.define_variable(global);

        self.classes.push(false);
        if self.matches(Kind::Less) {
            self.consume(Kind::Identifier, "Expect superclass name.");
            self.named_variable(self.previous.lexeme, false);
            if self.previous.lexeme == class_name {
                self.error("A class can't inherit from itself.");
            }
            self.begin_scope();
            self.add_local("super");
            self.define_variable(0);
            self.named_variable(class_name, false);
            self.emit_op(Op::Inherit);
            *self.classes.last_mut().expect("in a class") = true;
        }
        self.named_variable(class_name, false);
        self.consume(Kind::LeftBrace, "Expect '{' before class body.");
        while !self.check(Kind::RightBrace) && !self.check(Kind::Eof) {
            self.method();
        }
        self.consume(Kind::RightBrace, "Expect '}' after class body.");
        self.emit_op(Op::Pop);
        if self.classes.pop() == Some(true) {
            self.end_scope();
        }
    }

    fn method(&mut self) {
        self.consume(Kind::Identifier, "Expect method name.");
        let name = self.previous.lexeme;
        let c = self.identifier_constant(name);
        let kind = if name == "init" {
            FnKind::Initializer
        } else {
            FnKind::Method
        };
        self.function(kind);
        self.emit_op_arg(Op::Method, c);
    }

    fn fun_declaration(&mut self) {
        let global = self.parse_variable("Expect function name.");
        self.mark_initialized();
        self.function(FnKind::Function);
        self.define_variable(global);
    }

    fn function(&mut self, kind: FnKind) {
        if !self.enter() {
            return;
        }
        self.begin_function(kind, self.previous.lexeme);
        self.begin_scope();
        self.consume(Kind::LeftParen, "Expect '(' after function name.");
        if !self.check(Kind::RightParen) {
            loop {
                if self.f().proto.arity == 255 {
                    self.error_at(self.current, "Can't have more than 255 parameters.");
                } else {
                    self.f().proto.arity += 1;
                }
                let c = self.parse_variable("Expect parameter name.");
                self.define_variable(c);
                if !self.matches(Kind::Comma) {
                    break;
                }
            }
        }
        self.consume(Kind::RightParen, "Expect ')' after parameters.");
        self.consume(Kind::LeftBrace, "Expect '{' before function body.");
        self.block();
        let (proto, upvalues) = self.end_function();
        let c = self.make_constant(Constant::Function(Box::new(proto)));
        self.emit_op_arg(Op::Closure, c);
        for up in upvalues {
            self.emit(up.is_local as u8);
            self.emit(up.index);
        }
        self.nesting -= 1;
    }

    fn var_declaration(&mut self) {
        let global = self.parse_variable("Expect variable name.");
        if self.matches(Kind::Equal) {
            self.expression();
        } else {
            self.emit_op(Op::Nil);
        }
        self.consume(Kind::Semicolon, "Expect ';' after variable declaration.");
        self.define_variable(global);
    }

    fn statement(&mut self) {
        if !self.enter() {
            return;
        }
        if self.matches(Kind::Print) {
            self.expression();
            self.consume(Kind::Semicolon, "Expect ';' after value.");
            self.emit_op(Op::Print);
        } else if self.matches(Kind::For) {
            self.for_statement();
        } else if self.matches(Kind::If) {
            self.if_statement();
        } else if self.matches(Kind::Return) {
            self.return_statement();
        } else if self.matches(Kind::While) {
            self.while_statement();
        } else if self.matches(Kind::LeftBrace) {
            self.begin_scope();
            self.block();
            self.end_scope();
        } else {
            self.expression();
            self.consume(Kind::Semicolon, "Expect ';' after expression.");
            self.emit_pop();
        }
        self.nesting -= 1;
    }

    fn block(&mut self) {
        while !self.check(Kind::RightBrace) && !self.check(Kind::Eof) {
            self.declaration();
        }
        self.consume(Kind::RightBrace, "Expect '}' after block.");
    }

    fn if_statement(&mut self) {
        self.consume(Kind::LeftParen, "Expect '(' after 'if'.");
        self.expression();
        self.consume(Kind::RightParen, "Expect ')' after condition.");
        let then_jump = self.emit_jump(Op::PopJumpIfFalse);
        self.statement();
        if self.matches(Kind::Else) {
            let else_jump = self.emit_jump(Op::Jump);
            self.patch_jump(then_jump);
            self.statement();
            self.patch_jump(else_jump);
        } else {
            self.patch_jump(then_jump);
        }
    }

    fn while_statement(&mut self) {
        let loop_start = self.jump_target();
        self.consume(Kind::LeftParen, "Expect '(' after 'while'.");
        self.expression();
        self.consume(Kind::RightParen, "Expect ')' after condition.");
        let exit = self.emit_jump(Op::PopJumpIfFalse);
        self.statement();
        self.emit_loop(loop_start);
        self.patch_jump(exit);
    }

    fn for_statement(&mut self) {
        self.begin_scope();
        self.consume(Kind::LeftParen, "Expect '(' after 'for'.");
        if self.matches(Kind::Semicolon) {
            // no initializer
        } else if self.matches(Kind::Var) {
            self.var_declaration();
        } else {
            self.expression();
            self.consume(Kind::Semicolon, "Expect ';' after expression.");
            self.emit_op(Op::Pop);
        }
        let mut loop_start = self.jump_target();
        let mut exit = None;
        if !self.matches(Kind::Semicolon) {
            self.expression();
            self.consume(Kind::Semicolon, "Expect ';' after loop condition.");
            exit = Some(self.emit_jump(Op::PopJumpIfFalse));
        }
        if !self.matches(Kind::RightParen) {
            let body_jump = self.emit_jump(Op::Jump);
            let increment_start = self.jump_target();
            self.expression();
            self.emit_pop();
            self.consume(Kind::RightParen, "Expect ')' after for clauses.");
            self.emit_loop(loop_start);
            loop_start = increment_start;
            self.patch_jump(body_jump);
        }
        self.statement();
        self.emit_loop(loop_start);
        if let Some(exit) = exit {
            self.patch_jump(exit);
        }
        self.end_scope();
    }

    fn return_statement(&mut self) {
        if self.f().kind == FnKind::Script {
            self.error("Can't return from top-level code.");
        }
        if self.matches(Kind::Semicolon) {
            self.emit_return();
        } else {
            if self.f().kind == FnKind::Initializer {
                self.error("Can't return a value from an initializer.");
            }
            self.expression();
            self.consume(Kind::Semicolon, "Expect ';' after return value.");
            self.emit_op(Op::Return);
        }
    }

    // ---- expressions ----

    fn expression(&mut self) {
        self.parse_precedence(Prec::Assignment);
    }

    fn parse_precedence(&mut self, prec: Prec) {
        if !self.enter() {
            return;
        }
        self.advance();
        let can_assign = prec <= Prec::Assignment;
        if !self.prefix(self.previous.kind, can_assign) {
            self.error("Expect expression.");
            self.nesting -= 1;
            return;
        }
        while prec <= infix_prec(self.current.kind) {
            self.advance();
            self.infix(self.previous.kind, can_assign);
        }
        if can_assign && self.matches(Kind::Equal) {
            self.error("Invalid assignment target.");
        }
        self.nesting -= 1;
    }

    /// Compile the prefix expression starting with `kind`; false if `kind` cannot start one.
    fn prefix(&mut self, kind: Kind, can_assign: bool) -> bool {
        match kind {
            Kind::LeftParen => {
                self.expression();
                self.consume(Kind::RightParen, "Expect ')' after expression.");
            }
            Kind::Minus | Kind::Bang => {
                self.parse_precedence(Prec::Unary);
                self.emit_op(if kind == Kind::Minus {
                    Op::Negate
                } else {
                    Op::Not
                });
            }
            Kind::Number => {
                let n: f64 = self.previous.lexeme.parse().unwrap_or(f64::NAN);
                let c = self.make_constant(Constant::Number(n));
                self.emit_constant(c);
            }
            Kind::String => {
                let lexeme = self.previous.lexeme;
                let text = lexeme[1..lexeme.len() - 1].to_string();
                let c = self.make_constant(Constant::Str(text));
                self.emit_constant(c);
            }
            Kind::Nil => self.emit_op(Op::Nil),
            Kind::True => self.emit_op(Op::True),
            Kind::False => self.emit_op(Op::False),
            Kind::Identifier => self.named_variable(self.previous.lexeme, can_assign),
            Kind::This => {
                if self.classes.is_empty() {
                    self.error("Can't use 'this' outside of a class.");
                } else {
                    self.named_variable("this", false);
                }
            }
            Kind::Super => self.super_expression(),
            _ => return false,
        }
        true
    }

    fn infix(&mut self, kind: Kind, can_assign: bool) {
        match kind {
            Kind::LeftParen => {
                let argc = self.argument_list();
                self.emit_op_arg(Op::Call, argc);
            }
            Kind::Dot => {
                self.consume(Kind::Identifier, "Expect property name after '.'.");
                let name = self.identifier_constant(self.previous.lexeme);
                if can_assign && self.matches(Kind::Equal) {
                    self.expression();
                    self.emit_op_arg(Op::SetProperty, name);
                } else if self.matches(Kind::LeftParen) {
                    let argc = self.argument_list();
                    self.emit_op_arg(Op::Invoke, name);
                    self.emit(argc);
                } else if self.fuse_after_get_local(Op::GetLocalProperty) {
                    self.emit(name);
                } else {
                    self.emit_op_arg(Op::GetProperty, name);
                }
            }
            Kind::And => {
                let end = self.emit_jump(Op::JumpIfFalse);
                self.emit_op(Op::Pop);
                self.parse_precedence(Prec::And);
                self.patch_jump(end);
            }
            Kind::Or => {
                let else_jump = self.emit_jump(Op::JumpIfFalse);
                let end = self.emit_jump(Op::Jump);
                self.patch_jump(else_jump);
                self.emit_op(Op::Pop);
                self.parse_precedence(Prec::Or);
                self.patch_jump(end);
            }
            _ => {
                self.parse_precedence(infix_prec(kind).next());
                match kind {
                    Kind::BangEqual => self.emit_op(Op::NotEqual),
                    Kind::EqualEqual => self.emit_op(Op::Equal),
                    Kind::Greater => self.emit_op(Op::Greater),
                    Kind::GreaterEqual => self.emit_op(Op::GreaterEqual),
                    Kind::Less => self.emit_op(Op::Less),
                    Kind::LessEqual => self.emit_op(Op::LessEqual),
                    Kind::Plus => self.emit_op(Op::Add),
                    Kind::Minus => self.emit_op(Op::Subtract),
                    Kind::Star => self.emit_op(Op::Multiply),
                    Kind::Slash => self.emit_op(Op::Divide),
                    _ => unreachable!("infix_prec admits only binary operators here"),
                }
            }
        }
    }

    fn argument_list(&mut self) -> u8 {
        let mut argc: usize = 0;
        if !self.check(Kind::RightParen) {
            loop {
                self.expression();
                if argc == 255 {
                    self.error("Can't have more than 255 arguments.");
                }
                argc += 1;
                if !self.matches(Kind::Comma) {
                    break;
                }
            }
        }
        self.consume(Kind::RightParen, "Expect ')' after arguments.");
        argc.min(255) as u8
    }

    fn super_expression(&mut self) {
        match self.classes.last() {
            None => self.error("Can't use 'super' outside of a class."),
            Some(false) => self.error("Can't use 'super' in a class with no superclass."),
            Some(true) => {}
        }
        self.consume(Kind::Dot, "Expect '.' after 'super'.");
        self.consume(Kind::Identifier, "Expect superclass method name.");
        let name = self.identifier_constant(self.previous.lexeme);
        self.named_variable("this", false);
        if self.matches(Kind::LeftParen) {
            let argc = self.argument_list();
            self.named_variable("super", false);
            self.emit_op_arg(Op::SuperInvoke, name);
            self.emit(argc);
        } else {
            self.named_variable("super", false);
            self.emit_op_arg(Op::GetSuper, name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_a_small_program() {
        let p = compile(
            "var a = 1; { var b = a + 2; print b; }",
            &mut GlobalNames::default(),
        )
        .unwrap();
        assert!(p.code.contains(&(Op::DefineGlobal as u8)));
        assert_eq!(p.code.last(), Some(&(Op::Return as u8)));
        assert_eq!(p.code.len(), p.lines.len());
    }

    #[test]
    fn reports_errors_in_the_book_format() {
        let e = compile("print 1 +;\nvar 1;", &mut GlobalNames::default()).unwrap_err();
        assert_eq!(
            e,
            vec![
                "[line 1] Error at ';': Expect expression.",
                "[line 2] Error at '1': Expect variable name."
            ]
        );
        let e = compile("{", &mut GlobalNames::default()).unwrap_err();
        assert_eq!(e, vec!["[line 1] Error at end: Expect '}' after block."]);
    }

    #[test]
    fn nesting_past_the_limit_ends_compilation() {
        // Each of these once made the parser spin without consuming input (found by the fuzz
        // test): the nesting error must end the compile.
        let cases = [
            format!("{}print 1;{}", "{".repeat(1000), "}".repeat(1000)),
            format!("{};}}", "(".repeat(1997)),
            format!("{}print 1;{}", "fun f() {".repeat(1000), "}".repeat(1000)),
            "class C < ".repeat(2000),
        ];
        for src in cases {
            let e = compile(&src, &mut GlobalNames::default()).unwrap_err();
            // One error: the nesting one, or an earlier one whose panic mode was still on.
            assert_eq!(e.len(), 1, "{e:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let src = format!("print {}1{};", "(".repeat(5000), ")".repeat(5000));
        let e = compile(&src, &mut GlobalNames::default()).unwrap_err();
        assert!(e[0].contains("Too much nesting."), "{e:?}");
    }
}

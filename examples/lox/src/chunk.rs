//! Bytecode: the instruction set, and the compiler's output before it is loaded onto the heap.
//!
//! The compiler produces plain Rust data ([`Proto`]): it runs outside any mutation scope and
//! never touches the heap, so a long compile cannot hold up a collection and needs no rooting.
//! [`crate::vm`] then *loads* a `Proto` tree into heap `Function` objects (code and line tables
//! in noscan byte arrays, constants in a traced array), interning every string constant.

/// One-byte opcodes. Operands follow inline: `u8` constant/slot indexes, `u16` big-endian jump
/// offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    Constant,
    Nil,
    True,
    False,
    Pop,
    GetLocal,
    SetLocal,
    GetGlobal,
    DefineGlobal,
    SetGlobal,
    GetUpvalue,
    SetUpvalue,
    GetProperty,
    SetProperty,
    GetSuper,
    Equal,
    Greater,
    Less,
    Add,
    Subtract,
    Multiply,
    Divide,
    Not,
    Negate,
    Print,
    Jump,
    JumpIfFalse,
    Loop,
    Call,
    Invoke,
    SuperInvoke,
    Closure,
    CloseUpvalue,
    Return,
    Class,
    Inherit,
    Method,
}

impl Op {
    const ALL: [Op; 37] = [
        Op::Constant,
        Op::Nil,
        Op::True,
        Op::False,
        Op::Pop,
        Op::GetLocal,
        Op::SetLocal,
        Op::GetGlobal,
        Op::DefineGlobal,
        Op::SetGlobal,
        Op::GetUpvalue,
        Op::SetUpvalue,
        Op::GetProperty,
        Op::SetProperty,
        Op::GetSuper,
        Op::Equal,
        Op::Greater,
        Op::Less,
        Op::Add,
        Op::Subtract,
        Op::Multiply,
        Op::Divide,
        Op::Not,
        Op::Negate,
        Op::Print,
        Op::Jump,
        Op::JumpIfFalse,
        Op::Loop,
        Op::Call,
        Op::Invoke,
        Op::SuperInvoke,
        Op::Closure,
        Op::CloseUpvalue,
        Op::Return,
        Op::Class,
        Op::Inherit,
        Op::Method,
    ];

    /// Decode a byte the compiler wrote as an opcode.
    #[inline(always)]
    pub fn from_byte(b: u8) -> Op {
        Op::ALL[b as usize]
    }
}

/// A constant in a compiled function.
#[derive(Debug)]
pub enum Constant {
    Number(f64),
    Str(String),
    Function(Box<Proto>),
}

/// A compiled function, not yet on the heap.
#[derive(Debug, Default)]
pub struct Proto {
    /// Empty for the top-level script.
    pub name: String,
    pub arity: u8,
    pub upvalue_count: u8,
    pub code: Vec<u8>,
    /// Source line of each byte of `code`.
    pub lines: Vec<u32>,
    pub constants: Vec<Constant>,
}

impl Proto {
    pub fn write(&mut self, byte: u8, line: u32) {
        self.code.push(byte);
        self.lines.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_round_trip_through_bytes() {
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(*op as u8 as usize, i);
            assert_eq!(Op::from_byte(i as u8), *op);
        }
    }
}

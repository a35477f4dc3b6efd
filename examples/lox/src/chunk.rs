//! Bytecode: the instruction set, and the compiler's output before it is loaded onto the heap.
//!
//! The compiler produces plain Rust data ([`Proto`]): it runs outside any mutation scope and
//! never touches the heap, so a long compile cannot hold up a collection and needs no rooting.
//! [`crate::vm`] then *loads* a `Proto` tree into heap `Function` objects (code and line tables
//! in noscan byte arrays, constants in a traced array), interning every string constant.

/// Declares [`Op`] and, for `match`ing on bytes, a `u8` constant per opcode in [`op`].
macro_rules! opcodes {
    ($($(#[$meta:meta])* $name:ident = $konst:ident,)*) => {
        /// One-byte opcodes. Operands follow inline: `u8` constant/slot indexes, `u16`
        /// big-endian jump offsets and global slots.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        pub enum Op {
            $($(#[$meta])* $name,)*
        }

        impl Op {
            /// Every opcode, in byte order.
            pub const ALL: &'static [Op] = &[$(Op::$name,)*];
        }

        /// The opcode bytes as constants, so a dispatch `match` is on the byte itself.
        pub mod op {
            $(pub const $konst: u8 = super::Op::$name as u8;)*
        }
    };
}

opcodes! {
    Constant = CONSTANT,
    Nil = NIL,
    True = TRUE,
    False = FALSE,
    Pop = POP,
    GetLocal = GET_LOCAL,
    SetLocal = SET_LOCAL,
    GetGlobal = GET_GLOBAL,
    DefineGlobal = DEFINE_GLOBAL,
    SetGlobal = SET_GLOBAL,
    GetUpvalue = GET_UPVALUE,
    SetUpvalue = SET_UPVALUE,
    GetProperty = GET_PROPERTY,
    SetProperty = SET_PROPERTY,
    GetSuper = GET_SUPER,
    Equal = EQUAL,
    Greater = GREATER,
    Less = LESS,
    Add = ADD,
    Subtract = SUBTRACT,
    Multiply = MULTIPLY,
    Divide = DIVIDE,
    Not = NOT,
    Negate = NEGATE,
    Print = PRINT,
    Jump = JUMP,
    JumpIfFalse = JUMP_IF_FALSE,
    Loop = LOOP,
    Call = CALL,
    Invoke = INVOKE,
    SuperInvoke = SUPER_INVOKE,
    Closure = CLOSURE,
    CloseUpvalue = CLOSE_UPVALUE,
    Return = RETURN,
    Class = CLASS,
    Inherit = INHERIT,
    Method = METHOD,
    // Superinstructions the compiler emits for common pairs.
    /// `Equal` then `Not`.
    NotEqual = NOT_EQUAL,
    /// `Less` then `Not` (so a NaN operand gives `true`, as the pair does).
    GreaterEqual = GREATER_EQUAL,
    /// `Greater` then `Not`.
    LessEqual = LESS_EQUAL,
    /// Pop the condition, then jump if it is falsey (`if`, `while`, `for`).
    PopJumpIfFalse = POP_JUMP_IF_FALSE,
    /// `SetLocal` then `Pop` (an assignment statement).
    SetLocalPop = SET_LOCAL_POP,
    /// `SetGlobal` then `Pop`.
    SetGlobalPop = SET_GLOBAL_POP,
    /// `SetProperty` then `Pop`.
    SetPropertyPop = SET_PROPERTY_POP,
    /// `GetLocal` then `Constant`: operands slot, constant.
    GetLocalConstant = GET_LOCAL_CONSTANT,
    /// `GetLocal` then `GetProperty` (`this.x`): operands slot, name.
    GetLocalProperty = GET_LOCAL_PROPERTY,
    // A comparison then `PopJumpIfFalse`: pop both operands, jump if the comparison is false.
    /// `Less`, `PopJumpIfFalse`.
    JumpIfNotLess = JUMP_IF_NOT_LESS,
    /// `Greater`, `PopJumpIfFalse`.
    JumpIfNotGreater = JUMP_IF_NOT_GREATER,
    /// `LessEqual` (= not greater), `PopJumpIfFalse`: jump if greater.
    JumpIfGreater = JUMP_IF_GREATER,
    /// `GreaterEqual` (= not less), `PopJumpIfFalse`: jump if less.
    JumpIfLess = JUMP_IF_LESS,
    /// `Equal`, `PopJumpIfFalse`.
    JumpIfNotEqual = JUMP_IF_NOT_EQUAL,
    /// `NotEqual`, `PopJumpIfFalse`.
    JumpIfEqual = JUMP_IF_EQUAL,
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
    pub upvalue_count: u16,
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
    fn opcode_bytes_are_their_position() {
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(*op as u8 as usize, i);
        }
    }
}

/* Table-driven decoder for one x86 instruction: prefixes, REX/VEX/EVEX/XOP,
 * opcode maps, ModRM/SIB, displacement, immediates and length in every CPU
 * mode. It identifies the instructions that emulate.c completes and names
 * the rest for diagnostics. Pure functions over a byte buffer. */
#ifndef KVMPC_X86_DECODE_H
#define KVMPC_X86_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define X86_MAX_INSN_LEN 15

enum x86_mode {
    X86_MODE_REAL,     /* CR0.PE = 0 */
    X86_MODE_VM86,     /* protected mode with EFLAGS.VM = 1 */
    X86_MODE_PROT16,   /* protected mode, CS.D = 0 */
    X86_MODE_PROT32,   /* protected mode, CS.D = 1 */
    X86_MODE_COMPAT16, /* long mode, CS.L = 0, CS.D = 0 */
    X86_MODE_COMPAT32, /* long mode, CS.L = 0, CS.D = 1 */
    X86_MODE_LONG64,   /* long mode, CS.L = 1 */
};

/* The mode from CR0, EFER, RFLAGS and the CS descriptor bits. */
enum x86_mode x86_mode_of(uint64_t cr0, uint64_t efer, uint64_t rflags,
                          bool cs_l, bool cs_db);
const char *x86_mode_name(enum x86_mode mode);
/* Default operand/address size in bytes (2 or 4; 64-bit mode: 4 and 8). */
unsigned x86_mode_default_size(enum x86_mode mode);

/* Segment register numbers as encoded in instructions. */
enum x86_seg { X86_ES, X86_CS, X86_SS, X86_DS, X86_FS, X86_GS, X86_SEG_NONE };

/* General registers in encoding order (RAX = 0 ... R15 = 15). */
enum x86_gpr {
    X86_RAX, X86_RCX, X86_RDX, X86_RBX, X86_RSP, X86_RBP, X86_RSI, X86_RDI,
    X86_R8, X86_R9, X86_R10, X86_R11, X86_R12, X86_R13, X86_R14, X86_R15,
    X86_REG_NONE = -1,
    X86_REG_RIP = -2, /* RIP-relative base (64-bit mode) */
};

/* The instructions the decoder tells apart from "something else". */
enum x86_op {
    X86_OP_OTHER,
    X86_OP_INT3,
    X86_OP_INT1,
    X86_OP_INTO,
    X86_OP_INT,
    X86_OP_CMPXCHG8B,
    X86_OP_CMPXCHG16B,
    X86_OP_FXSAVE,
    X86_OP_FXRSTOR,
    X86_OP_XSAVE,
    X86_OP_XSAVEOPT,
    X86_OP_XSAVEC,
    X86_OP_XSAVES,
    X86_OP_XRSTOR,
    X86_OP_XRSTORS,
    X86_OP_XGETBV,
    X86_OP_XSETBV,
    X86_OP_RDPID,
    X86_OP_RDTSCP,
    X86_OP_RDPKRU,
    X86_OP_WRPKRU,
    X86_OP_STAC,
    X86_OP_CLAC,
    X86_OP_POPCNT,
    X86_OP_RDFSBASE,
    X86_OP_RDGSBASE,
    X86_OP_WRFSBASE,
    X86_OP_WRGSBASE,
    X86_OP_SERIALIZE,
    X86_OP_INVPCID,
    X86_OP_FWAIT,
    X86_OP_LDMXCSR,
    X86_OP_STMXCSR,
    X86_OP_NATIVE, /* not decoded: vector instructions run on the host */
    X86_OP_WBINVD,
    X86_OP_INVD,
    X86_OP_IRET,
    X86_OP_LAR,
    X86_OP_LSL,
    X86_OP_COUNT,
};

enum x86_map {
    X86_MAP_PRIMARY, /* one-byte opcodes */
    X86_MAP_0F,
    X86_MAP_0F38,
    X86_MAP_0F3A,
    X86_MAP_3DNOW,   /* 0F 0F: the opcode is the trailing immediate byte */
};

enum x86_encoding { X86_ENC_LEGACY, X86_ENC_VEX, X86_ENC_EVEX, X86_ENC_XOP };

/* A memory operand: segment:[base + index * scale + disp], the sum
 * truncated to addr_size. */
struct x86_mem {
    int base;  /* enum x86_gpr, X86_REG_NONE or X86_REG_RIP */
    int index; /* enum x86_gpr or X86_REG_NONE */
    uint8_t scale;
    int64_t disp;
    enum x86_seg seg; /* override, or the default (SS for BP/SP bases) */
};

struct x86_insn {
    uint8_t bytes[X86_MAX_INSN_LEN];
    uint8_t len;
    enum x86_mode mode;
    enum x86_op op;
    enum x86_encoding enc;
    enum x86_map map;    /* legacy: the map; VEX/EVEX/XOP: map number */
    uint8_t vex_map;     /* VEX/EVEX/XOP map select field */
    uint8_t vex[4];      /* the raw VEX/EVEX/XOP prefix */
    uint8_t vex_len;
    uint8_t vvvv;        /* VEX/EVEX register specifier (un-inverted) */
    uint8_t opcode_pos;  /* offset of the escape/VEX prefix or opcode */
    uint8_t opcode;
    /* Prefixes. */
    bool lock, rep /* F3 */, repne /* F2 */, opsize_prefix, addrsize_prefix;
    uint8_t simd_prefix; /* last of 66/F2/F3 seen, 0 if none */
    enum x86_seg seg_override;
    uint8_t rex;         /* 0x40..0x4F, or 0 */
    bool rex_w;
    /* Sizes in bytes. */
    uint8_t op_size, addr_size;
    /* ModRM. */
    bool has_modrm;
    uint8_t modrm, mod, reg /* with REX.R */, rm /* with REX.B if mod=3 */;
    bool has_mem;
    struct x86_mem mem;
    uint8_t disp_size;
    uint8_t imm_size;
    uint64_t imm; /* first immediate, zero-extended */
};

enum x86_decode_status {
    X86_DECODE_OK = 0,
    X86_DECODE_TRUNCATED, /* more bytes needed than were supplied */
    X86_DECODE_TOO_LONG,  /* over 15 bytes: #GP on hardware */
    X86_DECODE_INVALID,   /* undefined opcode in this mode: #UD */
};

/* Decodes the instruction at the start of buf (len bytes available).
 * Fills *out (out->len is valid for OK only). */
enum x86_decode_status x86_decode(const uint8_t *buf, size_t len,
                                  enum x86_mode mode, struct x86_insn *out);

/* Whether the instruction is a pure register/memory computation (SSE,
 * AVX, AVX-512, SHA, AES, BMI, CRC32, ...) in 64-bit mode that can run on
 * the host CPU: no control flow, stack, system, I/O, implicit or
 * vector-indexed memory, AMX or privileged effect. */
bool x86_native_ok(const struct x86_insn *insn);

/* Mnemonic of a decoded instruction ("lock cmpxchg16b", "xrstor64",
 * "vex.0f38 op 0x18", ...), written into buf. Returns buf. */
const char *x86_insn_name(const struct x86_insn *insn, char *buf,
                          size_t len);

/* Name of an identified instruction, for statistics. */
const char *x86_op_name(enum x86_op op);

/* Offset of the memory operand (before segmentation): base + index *
 * scale + disp, truncated to the address size. An EVEX 8-bit displacement
 * is taken as is: its scale depends on the instruction's tuple type, which
 * the decoder does not model (emulate_native.c measures it). regs[] is indexed by
 * enum x86_gpr; next_rip is the address of the following instruction
 * (for RIP-relative operands). */
uint64_t x86_mem_offset(const struct x86_insn *insn, const uint64_t regs[16],
                        uint64_t next_rip);

#endif

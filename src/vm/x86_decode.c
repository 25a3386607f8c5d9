#include "vm/x86_decode.h"

#include <stdio.h>
#include <string.h>

/* Per-opcode attributes of the legacy maps. */
enum {
    F_M = 1 << 0,     /* a ModRM byte follows */
    F_IB = 1 << 1,    /* imm8 */
    F_IW = 1 << 2,    /* imm16 */
    F_IZ = 1 << 3,    /* imm16/32 by operand size (32 for 64-bit operands) */
    F_IV = 1 << 4,    /* imm16/32/64 by operand size */
    F_MOFFS = 1 << 5, /* a memory offset of the address size */
    F_FAR = 1 << 6,   /* ptr16:16 or ptr16:32 */
    F_ENTER = 1 << 7, /* imm16 + imm8 */
    F_I64 = 1 << 8,   /* undefined in 64-bit mode */
    F_BAD = 1 << 9,   /* undefined in every mode */
    F_GRP3 = 1 << 10, /* TEST (/0, /1) takes an immediate */
    F_REL = 1 << 11,  /* near branch: rel32 in 64-bit mode whatever 66h */
    F_MREG = 1 << 12, /* ModRM whose mod field is ignored (always reg) */
};

#define M F_M
#define MB (F_M | F_IB)
#define MZ (F_M | F_IZ)
#define IB F_IB
#define IZ F_IZ
#define X F_BAD
#define I64 F_I64

static const uint16_t primary_flags[256] = {
    /* 00 */ M, M, M, M, IB, IZ, I64, I64, M, M, M, M, IB, IZ, I64, 0,
    /* 10 */ M, M, M, M, IB, IZ, I64, I64, M, M, M, M, IB, IZ, I64, I64,
    /* 20 */ M, M, M, M, IB, IZ, 0, I64, M, M, M, M, IB, IZ, 0, I64,
    /* 30 */ M, M, M, M, IB, IZ, 0, I64, M, M, M, M, IB, IZ, 0, I64,
    /* 40 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 50 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 60 */ I64, I64, M | I64, M, 0, 0, 0, 0, IZ, MZ, IB, MB, 0, 0, 0, 0,
    /* 70 */ IB, IB, IB, IB, IB, IB, IB, IB, IB, IB, IB, IB, IB, IB, IB, IB,
    /* 80 */ MB, MZ, MB | I64, MB, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 90 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, F_FAR | I64, 0, 0, 0, 0, 0,
    /* A0 */ F_MOFFS, F_MOFFS, F_MOFFS, F_MOFFS, 0, 0, 0, 0, IB, IZ, 0, 0,
             0, 0, 0, 0,
    /* B0 */ IB, IB, IB, IB, IB, IB, IB, IB, F_IV, F_IV, F_IV, F_IV, F_IV,
             F_IV, F_IV, F_IV,
    /* C0 */ MB, MB, F_IW, 0, M | I64, M | I64, MB, MZ, F_ENTER, 0, F_IW, 0,
             0, IB, I64, 0,
    /* D0 */ M, M, M, M, IB | I64, IB | I64, I64, 0, M, M, M, M, M, M, M, M,
    /* E0 */ IB, IB, IB, IB, IB, IB, IB, IB, IZ | F_REL, IZ | F_REL,
             F_FAR | I64, IB, 0, 0, 0, 0,
    /* F0 */ 0, 0, 0, 0, 0, 0, M | F_GRP3, M | F_GRP3, 0, 0, 0, 0, 0, 0, M, M,
};

static const uint16_t map0f_flags[256] = {
    /* 00 */ M, M, M, M, X, 0, 0, 0, 0, 0, X, 0, X, M, 0, MB,
    /* 10 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 20 */ M | F_MREG, M | F_MREG, M | F_MREG, M | F_MREG, X, X, X, X, M, M,
             M, M, M, M, M, M,
    /* 30 */ 0, 0, 0, 0, 0, 0, X, 0, 0, X, 0, X, X, X, X, X,
    /* 40 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 50 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 60 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 70 */ MB, MB, MB, MB, M, M, M, 0, M, M, X, X, M, M, M, M,
    /* 80 */ IZ | F_REL, IZ | F_REL, IZ | F_REL, IZ | F_REL, IZ | F_REL,
             IZ | F_REL, IZ | F_REL, IZ | F_REL, IZ | F_REL, IZ | F_REL,
             IZ | F_REL, IZ | F_REL, IZ | F_REL, IZ | F_REL, IZ | F_REL,
             IZ | F_REL,
    /* 90 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* A0 */ 0, 0, 0, M, MB, M, X, X, 0, 0, 0, M, MB, M, M, M,
    /* B0 */ M, M, M, M, M, M, M, M, M, M, MB, M, M, M, M, M,
    /* C0 */ M, M, MB, M, MB, MB, MB, M, 0, 0, 0, 0, 0, 0, 0, 0,
    /* D0 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* E0 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* F0 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
};

#undef M
#undef MB
#undef MZ
#undef IB
#undef IZ
#undef X
#undef I64

/* Mnemonics. "@n" names group n, resolved by ModRM.reg. */
static const char *const primary_names[256] = {
    "add", "add", "add", "add", "add", "add", "push es", "pop es",
    "or", "or", "or", "or", "or", "or", "push cs", NULL,
    "adc", "adc", "adc", "adc", "adc", "adc", "push ss", "pop ss",
    "sbb", "sbb", "sbb", "sbb", "sbb", "sbb", "push ds", "pop ds",
    "and", "and", "and", "and", "and", "and", NULL, "daa",
    "sub", "sub", "sub", "sub", "sub", "sub", NULL, "das",
    "xor", "xor", "xor", "xor", "xor", "xor", NULL, "aaa",
    "cmp", "cmp", "cmp", "cmp", "cmp", "cmp", NULL, "aas",
    "inc", "inc", "inc", "inc", "inc", "inc", "inc", "inc",
    "dec", "dec", "dec", "dec", "dec", "dec", "dec", "dec",
    "push", "push", "push", "push", "push", "push", "push", "push",
    "pop", "pop", "pop", "pop", "pop", "pop", "pop", "pop",
    "pusha", "popa", "bound", "arpl", NULL, NULL, NULL, NULL,
    "push", "imul", "push", "imul", "insb", "ins", "outsb", "outs",
    "jo", "jno", "jb", "jae", "je", "jne", "jbe", "ja",
    "js", "jns", "jp", "jnp", "jl", "jge", "jle", "jg",
    "@1", "@1", "@1", "@1", "test", "test", "xchg", "xchg",
    "mov", "mov", "mov", "mov", "mov", "lea", "mov", "@1a",
    "nop", "xchg", "xchg", "xchg", "xchg", "xchg", "xchg", "xchg",
    "cbw", "cwd", "callf", "fwait", "pushf", "popf", "sahf", "lahf",
    "mov", "mov", "mov", "mov", "movsb", "movs", "cmpsb", "cmps",
    "test", "test", "stosb", "stos", "lodsb", "lods", "scasb", "scas",
    "mov", "mov", "mov", "mov", "mov", "mov", "mov", "mov",
    "mov", "mov", "mov", "mov", "mov", "mov", "mov", "mov",
    "@2", "@2", "ret", "ret", "les", "lds", "@11", "@11",
    "enter", "leave", "retf", "retf", "int3", "int", "into", "iret",
    "@2", "@2", "@2", "@2", "aam", "aad", "salc", "xlat",
    "x87", "x87", "x87", "x87", "x87", "x87", "x87", "x87",
    "loopne", "loope", "loop", "jcxz", "in", "in", "out", "out",
    "call", "jmp", "jmpf", "jmp", "in", "in", "out", "out",
    "lock", "int1", "repne", "rep", "hlt", "cmc", "@3", "@3",
    "clc", "stc", "cli", "sti", "cld", "std", "@4", "@5",
};

static const char *const map0f_names[256] = {
    [0x00] = "@6", [0x01] = "@7", [0x02] = "lar", [0x03] = "lsl",
    [0x05] = "syscall", [0x06] = "clts", [0x07] = "sysret",
    [0x08] = "invd", [0x09] = "wbinvd", [0x0B] = "ud2",
    [0x0D] = "prefetchw", [0x0E] = "femms", [0x0F] = "3dnow",
    [0x10] = "movups", [0x11] = "movups", [0x12] = "movlps",
    [0x13] = "movlps", [0x14] = "unpcklps", [0x15] = "unpckhps",
    [0x16] = "movhps", [0x17] = "movhps", [0x18] = "@16",
    [0x19] = "nop", [0x1A] = "nop", [0x1B] = "nop", [0x1C] = "nop",
    [0x1D] = "nop", [0x1E] = "nop", [0x1F] = "nop",
    [0x20] = "mov from cr", [0x21] = "mov from dr", [0x22] = "mov to cr",
    [0x23] = "mov to dr", [0x28] = "movaps", [0x29] = "movaps",
    [0x2A] = "cvtpi2ps", [0x2B] = "movntps", [0x2C] = "cvttps2pi",
    [0x2D] = "cvtps2pi", [0x2E] = "ucomiss", [0x2F] = "comiss",
    [0x30] = "wrmsr", [0x31] = "rdtsc", [0x32] = "rdmsr", [0x33] = "rdpmc",
    [0x34] = "sysenter", [0x35] = "sysexit", [0x37] = "getsec",
    [0x40] = "cmovo", [0x41] = "cmovno", [0x42] = "cmovb", [0x43] = "cmovae",
    [0x44] = "cmove", [0x45] = "cmovne", [0x46] = "cmovbe", [0x47] = "cmova",
    [0x48] = "cmovs", [0x49] = "cmovns", [0x4A] = "cmovp", [0x4B] = "cmovnp",
    [0x4C] = "cmovl", [0x4D] = "cmovge", [0x4E] = "cmovle", [0x4F] = "cmovg",
    [0x50] = "movmskps", [0x51] = "sqrtps", [0x54] = "andps",
    [0x57] = "xorps", [0x58] = "addps", [0x59] = "mulps", [0x5C] = "subps",
    [0x5E] = "divps", [0x6E] = "movd", [0x6F] = "movq", [0x77] = "emms",
    [0x78] = "vmread", [0x79] = "vmwrite", [0x7E] = "movd", [0x7F] = "movq",
    [0x80] = "jo", [0x81] = "jno", [0x82] = "jb", [0x83] = "jae",
    [0x84] = "je", [0x85] = "jne", [0x86] = "jbe", [0x87] = "ja",
    [0x88] = "js", [0x89] = "jns", [0x8A] = "jp", [0x8B] = "jnp",
    [0x8C] = "jl", [0x8D] = "jge", [0x8E] = "jle", [0x8F] = "jg",
    [0x90] = "seto", [0x91] = "setno", [0x92] = "setb", [0x93] = "setae",
    [0x94] = "sete", [0x95] = "setne", [0x96] = "setbe", [0x97] = "seta",
    [0x98] = "sets", [0x99] = "setns", [0x9A] = "setp", [0x9B] = "setnp",
    [0x9C] = "setl", [0x9D] = "setge", [0x9E] = "setle", [0x9F] = "setg",
    [0xA0] = "push fs", [0xA1] = "pop fs", [0xA2] = "cpuid", [0xA3] = "bt",
    [0xA4] = "shld", [0xA5] = "shld", [0xA8] = "push gs", [0xA9] = "pop gs",
    [0xAA] = "rsm", [0xAB] = "bts", [0xAC] = "shrd", [0xAD] = "shrd",
    [0xAE] = "@15", [0xAF] = "imul", [0xB0] = "cmpxchg", [0xB1] = "cmpxchg",
    [0xB2] = "lss", [0xB3] = "btr", [0xB4] = "lfs", [0xB5] = "lgs",
    [0xB6] = "movzx", [0xB7] = "movzx", [0xB8] = "popcnt", [0xB9] = "ud1",
    [0xBA] = "@8", [0xBB] = "btc", [0xBC] = "bsf", [0xBD] = "bsr",
    [0xBE] = "movsx", [0xBF] = "movsx", [0xC0] = "xadd", [0xC1] = "xadd",
    [0xC2] = "cmpps", [0xC3] = "movnti", [0xC4] = "pinsrw",
    [0xC5] = "pextrw", [0xC6] = "shufps", [0xC7] = "@9",
    [0xC8] = "bswap", [0xC9] = "bswap", [0xCA] = "bswap", [0xCB] = "bswap",
    [0xCC] = "bswap", [0xCD] = "bswap", [0xCE] = "bswap", [0xCF] = "bswap",
    [0xD6] = "movq", [0xE7] = "movntq", [0xEF] = "pxor", [0xFF] = "ud0",
};

static const char *const grp1[8] = {"add", "or", "adc", "sbb",
                                    "and", "sub", "xor", "cmp"};
static const char *const grp2[8] = {"rol", "ror", "rcl", "rcr",
                                    "shl", "shr", "sal", "sar"};
static const char *const grp3[8] = {"test", "test", "not", "neg",
                                    "mul", "imul", "div", "idiv"};
static const char *const grp5[8] = {"inc", "dec", "call", "callf",
                                    "jmp", "jmpf", "push", NULL};
static const char *const grp6[8] = {"sldt", "str", "lldt", "ltr",
                                    "verr", "verw", NULL, NULL};
static const char *const grp7_mem[8] = {"sgdt", "sidt", "lgdt", "lidt",
                                        "smsw", NULL, "lmsw", "invlpg"};
static const char *const grp8[8] = {NULL, NULL, NULL, NULL,
                                    "bt", "bts", "btr", "btc"};
static const char *const grp15_mem[8] = {"fxsave", "fxrstor", "ldmxcsr",
                                         "stmxcsr", "xsave", "xrstor",
                                         "xsaveopt", "clflush"};
static const char *const grp15_reg[8] = {"rdfsbase", "rdgsbase", "wrfsbase",
                                         "wrgsbase", NULL, "lfence",
                                         "mfence", "sfence"};
static const char *const grp16[8] = {"prefetchnta", "prefetcht0",
                                     "prefetcht1", "prefetcht2",
                                     "nop", "nop", "nop", "nop"};

/* 0F 01 with mod = 3, by the whole ModRM byte. */
static const struct {
    uint8_t modrm;
    const char *name;
} grp7_reg[] = {
    {0xC1, "vmcall"}, {0xC2, "vmlaunch"}, {0xC3, "vmresume"},
    {0xC4, "vmxoff"}, {0xC8, "monitor"}, {0xC9, "mwait"}, {0xCA, "clac"},
    {0xCB, "stac"}, {0xCF, "encls"}, {0xD0, "xgetbv"}, {0xD1, "xsetbv"},
    {0xD4, "vmfunc"}, {0xD5, "xend"}, {0xD6, "xtest"}, {0xD7, "enclu"},
    {0xD8, "vmrun"}, {0xD9, "vmmcall"}, {0xDA, "vmload"}, {0xDB, "vmsave"},
    {0xDC, "stgi"}, {0xDD, "clgi"}, {0xDE, "skinit"}, {0xDF, "invlpga"},
    {0xE8, "serialize"}, {0xEE, "rdpkru"}, {0xEF, "wrpkru"},
    {0xF8, "swapgs"}, {0xF9, "rdtscp"}, {0xFA, "monitorx"},
    {0xFB, "mwaitx"}, {0xFC, "clzero"}, {0xFD, "rdpru"},
};

static const char *const op_names[X86_OP_COUNT] = {
    [X86_OP_OTHER] = "other", [X86_OP_INT3] = "int3",
    [X86_OP_INT1] = "int1", [X86_OP_INTO] = "into", [X86_OP_INT] = "int",
    [X86_OP_CMPXCHG8B] = "cmpxchg8b", [X86_OP_CMPXCHG16B] = "cmpxchg16b",
    [X86_OP_FXSAVE] = "fxsave", [X86_OP_FXRSTOR] = "fxrstor",
    [X86_OP_XSAVE] = "xsave", [X86_OP_XSAVEOPT] = "xsaveopt",
    [X86_OP_XSAVEC] = "xsavec", [X86_OP_XSAVES] = "xsaves",
    [X86_OP_XRSTOR] = "xrstor", [X86_OP_XRSTORS] = "xrstors",
    [X86_OP_XGETBV] = "xgetbv", [X86_OP_XSETBV] = "xsetbv",
    [X86_OP_RDPID] = "rdpid", [X86_OP_RDTSCP] = "rdtscp",
    [X86_OP_RDPKRU] = "rdpkru", [X86_OP_WRPKRU] = "wrpkru",
    [X86_OP_STAC] = "stac", [X86_OP_CLAC] = "clac",
    [X86_OP_POPCNT] = "popcnt", [X86_OP_RDFSBASE] = "rdfsbase",
    [X86_OP_RDGSBASE] = "rdgsbase", [X86_OP_WRFSBASE] = "wrfsbase",
    [X86_OP_WRGSBASE] = "wrgsbase", [X86_OP_SERIALIZE] = "serialize",
    [X86_OP_INVPCID] = "invpcid", [X86_OP_FWAIT] = "fwait",
    [X86_OP_LDMXCSR] = "ldmxcsr", [X86_OP_STMXCSR] = "stmxcsr",
    [X86_OP_IRET] = "iret", [X86_OP_LAR] = "lar", [X86_OP_LSL] = "lsl",
    [X86_OP_NATIVE] = "vector",
    [X86_OP_WBINVD] = "wbinvd", [X86_OP_INVD] = "invd",
};

enum x86_mode x86_mode_of(uint64_t cr0, uint64_t efer, uint64_t rflags,
                          bool cs_l, bool cs_db)
{
    if (!(cr0 & 1))
        return X86_MODE_REAL;
    if (efer & (1u << 10)) { /* EFER.LMA */
        if (cs_l)
            return X86_MODE_LONG64;
        return cs_db ? X86_MODE_COMPAT32 : X86_MODE_COMPAT16;
    }
    if (rflags & (1u << 17))
        return X86_MODE_VM86;
    return cs_db ? X86_MODE_PROT32 : X86_MODE_PROT16;
}

const char *x86_mode_name(enum x86_mode mode)
{
    static const char *const names[] = {
        [X86_MODE_REAL] = "real", [X86_MODE_VM86] = "vm86",
        [X86_MODE_PROT16] = "prot16", [X86_MODE_PROT32] = "prot32",
        [X86_MODE_COMPAT16] = "compat16", [X86_MODE_COMPAT32] = "compat32",
        [X86_MODE_LONG64] = "long64",
    };
    return (unsigned)mode < sizeof(names) / sizeof(names[0]) ? names[mode]
                                                             : "?";
}

unsigned x86_mode_default_size(enum x86_mode mode)
{
    switch (mode) {
    case X86_MODE_PROT32:
    case X86_MODE_COMPAT32:
    case X86_MODE_LONG64:
        return 4;
    default:
        return 2;
    }
}

const char *x86_op_name(enum x86_op op)
{
    return (unsigned)op < X86_OP_COUNT && op_names[op] ? op_names[op] : "?";
}

/* Reading cursor over the instruction bytes. */
struct cursor {
    const uint8_t *buf;
    size_t avail;
    unsigned pos;
    enum x86_decode_status err;
};

static bool next_byte(struct cursor *c, uint8_t *b)
{
    if (c->pos >= X86_MAX_INSN_LEN) {
        c->err = X86_DECODE_TOO_LONG;
        return false;
    }
    if (c->pos >= c->avail) {
        c->err = X86_DECODE_TRUNCATED;
        return false;
    }
    *b = c->buf[c->pos++];
    return true;
}

static bool peek_byte(const struct cursor *c, unsigned ahead, uint8_t *b)
{
    if (c->pos + ahead >= c->avail || c->pos + ahead >= X86_MAX_INSN_LEN)
        return false;
    *b = c->buf[c->pos + ahead];
    return true;
}

/* Little-endian value of n bytes (1, 2, 4 or 8). */
static bool next_value(struct cursor *c, unsigned n, uint64_t *v)
{
    *v = 0;
    for (unsigned i = 0; i < n; i++) {
        uint8_t b;
        if (!next_byte(c, &b))
            return false;
        *v |= (uint64_t)b << (8 * i);
    }
    return true;
}

static int64_t sign_extend(uint64_t v, unsigned bytes)
{
    if (bytes == 0 || bytes >= 8)
        return (int64_t)v;
    unsigned shift = 64 - 8 * bytes;
    return (int64_t)(v << shift) >> shift;
}

static bool is_64(const struct x86_insn *in)
{
    return in->mode == X86_MODE_LONG64;
}

/* Legacy prefixes and REX. Returns false on a cursor error. */
static bool decode_prefixes(struct cursor *c, struct x86_insn *in)
{
    for (;;) {
        uint8_t b;
        if (!peek_byte(c, 0, &b))
            return next_byte(c, &b); /* sets the error */
        switch (b) {
        case 0xF0: in->lock = true; break;
        case 0xF2: in->repne = true; in->simd_prefix = b; break;
        case 0xF3: in->rep = true; in->simd_prefix = b; break;
        case 0x66:
            in->opsize_prefix = true;
            if (!in->simd_prefix || in->simd_prefix == 0x66)
                in->simd_prefix = b;
            break;
        case 0x67: in->addrsize_prefix = true; break;
        case 0x26: in->seg_override = X86_ES; break;
        case 0x2E: in->seg_override = X86_CS; break;
        case 0x36: in->seg_override = X86_SS; break;
        case 0x3E: in->seg_override = X86_DS; break;
        case 0x64: in->seg_override = X86_FS; break;
        case 0x65: in->seg_override = X86_GS; break;
        default:
            if (is_64(in) && (b & 0xF0) == 0x40) {
                c->pos++;
                in->rex = b;
                /* REX counts only right before the opcode. */
                uint8_t nb;
                if (peek_byte(c, 0, &nb) && (nb & 0xF0) != 0x40 &&
                    (nb == 0xF0 || nb == 0xF2 || nb == 0xF3 || nb == 0x66 ||
                     nb == 0x67 || nb == 0x26 || nb == 0x2E || nb == 0x36 ||
                     nb == 0x3E || nb == 0x64 || nb == 0x65))
                    in->rex = 0;
                continue;
            }
            return true;
        }
        c->pos++;
    }
}

static void set_sizes(struct x86_insn *in)
{
    unsigned def = x86_mode_default_size(in->mode);
    if (is_64(in)) {
        in->op_size = in->rex_w ? 8 : in->opsize_prefix ? 2 : 4;
        in->addr_size = in->addrsize_prefix ? 4 : 8;
        return;
    }
    in->op_size = in->opsize_prefix ? (def == 4 ? 2 : 4) : def;
    in->addr_size = in->addrsize_prefix ? (def == 4 ? 2 : 4) : def;
}

/* 16-bit addressing forms: base/index pairs by ModRM.rm. */
static void modrm16(struct x86_insn *in)
{
    static const int8_t base[8] = {X86_RBX, X86_RBX, X86_RBP, X86_RBP,
                                   X86_RSI, X86_RDI, X86_RBP, X86_RBX};
    static const int8_t index[8] = {X86_RSI, X86_RDI, X86_RSI, X86_RDI,
                                    -1,      -1,      -1,      -1};
    unsigned rm = in->modrm & 7;
    in->mem.base = base[rm];
    in->mem.index = index[rm];
    in->mem.scale = 1;
    if (in->mod == 0 && rm == 6) {
        in->mem.base = X86_REG_NONE;
        in->disp_size = 2;
    } else {
        in->disp_size = in->mod == 1 ? 1 : in->mod == 2 ? 2 : 0;
    }
    if (in->mem.base == X86_RBP)
        in->mem.seg = X86_SS;
}

static bool modrm32(struct cursor *c, struct x86_insn *in, unsigned rex_x,
                    unsigned rex_b)
{
    unsigned rm = in->modrm & 7;
    in->mem.scale = 1;
    in->mem.index = X86_REG_NONE;
    in->disp_size = in->mod == 1 ? 1 : in->mod == 2 ? 4 : 0;
    if (rm == 4) {
        uint8_t sib;
        if (!next_byte(c, &sib))
            return false;
        unsigned idx = ((sib >> 3) & 7) | rex_x << 3;
        in->mem.scale = (uint8_t)(1u << (sib >> 6));
        if (idx != 4)
            in->mem.index = (int)idx;
        unsigned base = sib & 7;
        if (base == 5 && in->mod == 0) {
            in->mem.base = X86_REG_NONE;
            in->disp_size = 4;
        } else {
            in->mem.base = (int)(base | rex_b << 3);
        }
    } else if (rm == 5 && in->mod == 0) {
        in->mem.base = is_64(in) ? X86_REG_RIP : X86_REG_NONE;
        in->disp_size = 4;
    } else {
        in->mem.base = (int)(rm | rex_b << 3);
    }
    if (in->mem.base == X86_RSP || in->mem.base == X86_RBP)
        in->mem.seg = X86_SS;
    return true;
}

/* ModRM, SIB and displacement; rex_r/x/b are the extension bits. */
static bool decode_modrm(struct cursor *c, struct x86_insn *in, bool reg_only,
                         unsigned rex_r, unsigned rex_x, unsigned rex_b)
{
    if (!next_byte(c, &in->modrm))
        return false;
    in->has_modrm = true;
    in->mod = reg_only ? 3 : in->modrm >> 6;
    in->reg = (uint8_t)(((in->modrm >> 3) & 7) | rex_r << 3);
    in->rm = (uint8_t)(in->modrm & 7);
    if (in->mod == 3) {
        in->rm = (uint8_t)(in->rm | rex_b << 3);
        return true;
    }
    in->has_mem = true;
    in->mem.seg = X86_DS;
    if (in->addr_size == 2)
        modrm16(in);
    else if (!modrm32(c, in, rex_x, rex_b))
        return false;
    if (in->seg_override != X86_SEG_NONE)
        in->mem.seg = in->seg_override;
    uint64_t d;
    if (!next_value(c, in->disp_size, &d))
        return false;
    in->mem.disp = sign_extend(d, in->disp_size);
    return true;
}

static unsigned imm_bytes(const struct x86_insn *in, uint16_t f)
{
    unsigned z = in->op_size == 2 ? 2 : 4;
    if (f & F_IB)
        return 1;
    if (f & F_IW)
        return 2;
    if (f & F_IZ)
        return (f & F_REL) && is_64(in) ? 4 : z;
    if (f & F_IV)
        return in->op_size;
    if (f & F_MOFFS)
        return in->addr_size;
    if (f & F_FAR)
        return z + 2;
    if (f & F_ENTER)
        return 3;
    if (f & F_GRP3)
        return ((in->modrm >> 3) & 7) < 2 ? (in->opcode == 0xF6 ? 1 : z) : 0;
    return 0;
}

static bool decode_imm(struct cursor *c, struct x86_insn *in, unsigned n)
{
    unsigned first = n == 6 ? 4 : n == 3 ? 2 : n == 10 ? 8 : n;
    in->imm_size = (uint8_t)n;
    if (!next_value(c, first, &in->imm))
        return false;
    uint64_t rest;
    return next_value(c, n - first, &rest);
}

/* VEX/EVEX/XOP: is the byte at the cursor such a prefix in this mode? */
static bool is_vex_like(const struct cursor *c, const struct x86_insn *in,
                        uint8_t b)
{
    uint8_t next;
    if (b != 0xC4 && b != 0xC5 && b != 0x62 && b != 0x8F)
        return false;
    if (!peek_byte(c, 1, &next))
        return b != 0x8F && is_64(in); /* let the cursor report truncation */
    if (b == 0x8F)
        return (next & 0x1F) >= 8;
    if (in->mode == X86_MODE_REAL || in->mode == X86_MODE_VM86)
        return false;
    return is_64(in) || (next & 0xC0) == 0xC0;
}

static unsigned vex_imm_bytes(const struct x86_insn *in)
{
    if (in->enc == X86_ENC_XOP)
        return in->vex_map == 8 ? 1 : in->vex_map == 0xA ? 4 : 0;
    if (in->vex_map == 3)
        return 1;
    if (in->vex_map == 1) {
        uint8_t o = in->opcode;
        if ((o >= 0x70 && o <= 0x73) || o == 0xC2 || (o >= 0xC4 && o <= 0xC6))
            return 1;
    }
    return 0;
}

static enum x86_decode_status decode_vex(struct cursor *c, struct x86_insn *in)
{
    uint8_t p[4];
    unsigned n;
    if (!next_byte(c, &p[0]))
        return c->err;
    in->enc = p[0] == 0xC5 || p[0] == 0xC4 ? X86_ENC_VEX
              : p[0] == 0x62            ? X86_ENC_EVEX
                                        : X86_ENC_XOP;
    n = p[0] == 0xC5 ? 1 : p[0] == 0x62 ? 3 : 2;
    for (unsigned i = 1; i <= n; i++)
        if (!next_byte(c, &p[i]))
            return c->err;
    if (in->rex || in->lock || in->simd_prefix)
        return X86_DECODE_INVALID;
    memcpy(in->vex, p, n + 1);
    in->vex_len = (uint8_t)(n + 1);
    in->vvvv = (uint8_t)(~(p[0] == 0xC5 ? p[1] : p[2]) >> 3 & 15);
    unsigned r = !(p[1] & 0x80), x = 0, b = 0;
    if (p[0] == 0xC5) {
        in->vex_map = 1;
    } else {
        x = !(p[1] & 0x40);
        b = !(p[1] & 0x20);
        in->vex_map = p[1] & (in->enc == X86_ENC_EVEX ? 0x07 : 0x1F);
        in->rex_w = p[2] >> 7;
    }
    if (!is_64(in))
        r = x = b = 0;
    in->map = in->vex_map == 2   ? X86_MAP_0F38
              : in->vex_map == 3 ? X86_MAP_0F3A
                                 : X86_MAP_0F;
    set_sizes(in);
    if (!next_byte(c, &in->opcode))
        return c->err;
    if (!(in->enc == X86_ENC_VEX && in->vex_map == 1 && in->opcode == 0x77) &&
        !decode_modrm(c, in, false, r, x, b))
        return c->err;
    unsigned imm = vex_imm_bytes(in);
    if (imm && !decode_imm(c, in, imm))
        return c->err;
    return X86_DECODE_OK;
}

static void identify_0f01(struct x86_insn *in)
{
    if (in->mod != 3)
        return;
    if (in->modrm == 0xD0)
        in->op = X86_OP_XGETBV;
    else if (in->modrm == 0xD1)
        in->op = X86_OP_XSETBV;
    else if (in->modrm == 0xF9)
        in->op = X86_OP_RDTSCP;
    else if (in->modrm == 0xEE && !in->simd_prefix)
        in->op = X86_OP_RDPKRU;
    else if (in->modrm == 0xEF && !in->simd_prefix)
        in->op = X86_OP_WRPKRU;
    else if (in->modrm == 0xCB && !in->simd_prefix)
        in->op = X86_OP_STAC;
    else if (in->modrm == 0xCA && !in->simd_prefix)
        in->op = X86_OP_CLAC;
    else if (in->modrm == 0xE8 && !in->simd_prefix)
        in->op = X86_OP_SERIALIZE;
}

static void identify_0fae(struct x86_insn *in)
{
    static const enum x86_op ops[8] = {
        X86_OP_FXSAVE, X86_OP_FXRSTOR, X86_OP_LDMXCSR, X86_OP_STMXCSR,
        X86_OP_XSAVE,  X86_OP_XRSTOR,  X86_OP_XSAVEOPT, X86_OP_OTHER,
    };
    static const enum x86_op base_ops[4] = {
        X86_OP_RDFSBASE, X86_OP_RDGSBASE, X86_OP_WRFSBASE, X86_OP_WRGSBASE,
    };
    unsigned reg = (in->modrm >> 3) & 7;
    if (in->mod != 3 && !in->simd_prefix)
        in->op = ops[reg];
    else if (in->mod == 3 && in->simd_prefix == 0xF3 && reg < 4)
        in->op = base_ops[reg];
}

static void identify_0fc7(struct x86_insn *in)
{
    unsigned reg = (in->modrm >> 3) & 7;
    if (in->mod == 3) {
        if (reg == 7 && in->simd_prefix == 0xF3)
            in->op = X86_OP_RDPID;
        return;
    }
    if (reg == 1)
        in->op = in->rex_w ? X86_OP_CMPXCHG16B : X86_OP_CMPXCHG8B;
    else if (!in->simd_prefix && reg == 3)
        in->op = X86_OP_XRSTORS;
    else if (!in->simd_prefix && reg == 4)
        in->op = X86_OP_XSAVEC;
    else if (!in->simd_prefix && reg == 5)
        in->op = X86_OP_XSAVES;
}

static void identify(struct x86_insn *in)
{
    if (in->map == X86_MAP_PRIMARY) {
        switch (in->opcode) {
        case 0xCC: in->op = X86_OP_INT3; break;
        case 0xF1: in->op = X86_OP_INT1; break;
        case 0xCE: in->op = X86_OP_INTO; break;
        case 0xCD: in->op = X86_OP_INT; break;
        case 0xCF: in->op = X86_OP_IRET; break;
        case 0x9B: in->op = X86_OP_FWAIT; break;
        default: break;
        }
        return;
    }
    if (in->map == X86_MAP_0F38 && in->opcode == 0x82 &&
        in->simd_prefix == 0x66 && in->mod != 3)
        in->op = X86_OP_INVPCID;
    if (in->map != X86_MAP_0F)
        return;
    switch (in->opcode) {
    case 0x01: identify_0f01(in); break;
    case 0x02: in->op = X86_OP_LAR; break;
    case 0x03: in->op = X86_OP_LSL; break;
    case 0xB8:
        if (in->simd_prefix == 0xF3)
            in->op = X86_OP_POPCNT;
        break;
    case 0x08: in->op = X86_OP_INVD; break;
    case 0x09: in->op = X86_OP_WBINVD; break;
    case 0xAE: identify_0fae(in); break;
    case 0xC7: identify_0fc7(in); break;
    default: break;
    }
}

/* The opcode byte(s) of a legacy instruction: sets map and opcode. */
static bool decode_opcode(struct cursor *c, struct x86_insn *in)
{
    uint8_t b;
    if (!next_byte(c, &b))
        return false;
    in->map = X86_MAP_PRIMARY;
    if (b == 0x0F) {
        if (!next_byte(c, &b))
            return false;
        in->map = X86_MAP_0F;
        if (b == 0x38 || b == 0x3A) {
            in->map = b == 0x38 ? X86_MAP_0F38 : X86_MAP_0F3A;
            if (!next_byte(c, &b))
                return false;
        }
    }
    in->opcode = b;
    return true;
}

static uint16_t legacy_flags(const struct x86_insn *in)
{
    switch (in->map) {
    case X86_MAP_PRIMARY: return primary_flags[in->opcode];
    case X86_MAP_0F:
        if (in->opcode == 0x0F)
            return F_M | F_IB; /* 3DNow!: ModRM then the opcode byte */
        return map0f_flags[in->opcode];
    case X86_MAP_0F38: return F_M;
    default: return F_M | F_IB;
    }
}

static enum x86_decode_status decode_legacy(struct cursor *c,
                                            struct x86_insn *in)
{
    if (!decode_opcode(c, in))
        return c->err;
    uint16_t f = legacy_flags(in);
    if ((f & F_BAD) || ((f & F_I64) && is_64(in)))
        return X86_DECODE_INVALID;
    unsigned rx = in->rex;
    if ((f & F_M) &&
        !decode_modrm(c, in, f & F_MREG, (rx >> 2) & 1, (rx >> 1) & 1, rx & 1))
        return c->err;
    /* In 64-bit mode near branches always take 64-bit operands. */
    if (is_64(in) && (f & F_REL))
        in->op_size = 8;
    unsigned imm = imm_bytes(in, f);
    if (imm && !decode_imm(c, in, imm))
        return c->err;
    if (in->map == X86_MAP_0F && in->opcode == 0x0F) {
        in->map = X86_MAP_3DNOW;
        in->opcode = (uint8_t)in->imm;
    }
    identify(in);
    return X86_DECODE_OK;
}

enum x86_decode_status x86_decode(const uint8_t *buf, size_t len,
                                  enum x86_mode mode, struct x86_insn *out)
{
    struct cursor c = {.buf = buf, .avail = len, .pos = 0};
    memset(out, 0, sizeof(*out));
    out->mode = mode;
    out->seg_override = X86_SEG_NONE;
    out->mem.base = out->mem.index = X86_REG_NONE;
    if (!decode_prefixes(&c, out))
        return c.err;
    out->rex_w = (out->rex >> 3) & 1;
    set_sizes(out);
    uint8_t b;
    enum x86_decode_status st;
    out->opcode_pos = (uint8_t)c.pos;
    if (peek_byte(&c, 0, &b) && is_vex_like(&c, out, b))
        st = decode_vex(&c, out);
    else
        st = decode_legacy(&c, out);
    if (st != X86_DECODE_OK)
        return st;
    out->len = (uint8_t)c.pos;
    memcpy(out->bytes, buf, c.pos);
    return X86_DECODE_OK;
}

static bool native_legacy_0f(const struct x86_insn *in)
{
    uint8_t o = in->opcode;
    if ((o >= 0x10 && o <= 0x17) || (o >= 0x28 && o <= 0x2F) ||
        (o >= 0x50 && o <= 0x77) || (o >= 0x7C && o <= 0x7F) ||
        o == 0xC2 || o == 0xC3 || (o >= 0xC4 && o <= 0xC6) ||
        (o >= 0xD0 && o <= 0xFE && o != 0xF7))
        return true;
    /* TZCNT, LZCNT */
    return (o == 0xBC || o == 0xBD) && in->simd_prefix == 0xF3;
}

static bool native_legacy_0f38(const struct x86_insn *in)
{
    uint8_t o = in->opcode;
    if (o <= 0x7F || (o >= 0xC8 && o <= 0xCF) || (o >= 0xDB && o <= 0xDF) ||
        o == 0xF0 || o == 0xF1)
        return true;
    /* ADCX, ADOX (F6 without prefix is WRSS) */
    return o == 0xF6 && (in->simd_prefix == 0x66 || in->simd_prefix == 0xF3);
}

static bool native_vex(const struct x86_insn *in)
{
    uint8_t o = in->opcode;
    bool evex = in->enc == X86_ENC_EVEX;
    switch (in->vex_map) {
    case 1: /* not VMASKMOVDQU: it stores to [RDI] */
        return o != 0xF7;
    case 3:
        return true;
    case 2:
        if (o >= 0x90 && o <= 0x93) /* gathers: vector-indexed */
            return false;
        if (evex)
            return !(o >= 0xA0 && o <= 0xA3) && o != 0xC6 && o != 0xC7;
        /* AMX tiles */
        return !(o >= 0x48 && o <= 0x4B) && !(o >= 0x5C && o <= 0x5F) &&
               !(o >= 0x6B && o <= 0x6F);
    case 5:
    case 6:
        return evex;
    default:
        return false;
    }
}

bool x86_native_ok(const struct x86_insn *in)
{
    if (in->mode != X86_MODE_LONG64)
        return false;
    switch (in->enc) {
    case X86_ENC_VEX:
    case X86_ENC_EVEX:
        return native_vex(in);
    case X86_ENC_XOP:
        return false;
    default:
        break;
    }
    switch (in->map) {
    case X86_MAP_0F: return native_legacy_0f(in);
    case X86_MAP_0F38: return native_legacy_0f38(in);
    case X86_MAP_0F3A: return true;
    default: return false;
    }
}

static const char *group_name(const struct x86_insn *in, const char *g)
{
    unsigned reg = (in->modrm >> 3) & 7;
    if (!strcmp(g, "@1"))
        return grp1[reg];
    if (!strcmp(g, "@1a"))
        return reg == 0 ? "pop" : NULL;
    if (!strcmp(g, "@2"))
        return grp2[reg];
    if (!strcmp(g, "@3"))
        return grp3[reg];
    if (!strcmp(g, "@4"))
        return reg == 0 ? "inc" : reg == 1 ? "dec" : NULL;
    if (!strcmp(g, "@5"))
        return grp5[reg];
    if (!strcmp(g, "@11"))
        return reg == 0 ? "mov" : in->modrm == 0xF8 ? (in->opcode == 0xC6
                                                           ? "xabort"
                                                           : "xbegin")
                                                    : NULL;
    if (!strcmp(g, "@6"))
        return grp6[reg];
    if (!strcmp(g, "@7")) {
        if (in->mod != 3)
            return grp7_mem[reg];
        if (reg == 4)
            return "smsw";
        if (reg == 6)
            return "lmsw";
        for (size_t i = 0; i < sizeof(grp7_reg) / sizeof(grp7_reg[0]); i++)
            if (grp7_reg[i].modrm == in->modrm)
                return grp7_reg[i].name;
        return NULL;
    }
    if (!strcmp(g, "@8"))
        return grp8[reg];
    if (!strcmp(g, "@9")) {
        static const char *const mem[8] = {NULL, "cmpxchg8b", NULL,
                                           "xrstors", "xsavec", "xsaves",
                                           "vmptrld", "vmptrst"};
        if (in->mod != 3)
            return reg == 1 && in->rex_w ? "cmpxchg16b" : mem[reg];
        return reg == 6 ? "rdrand" : reg == 7 ? (in->rep ? "rdpid" : "rdseed")
                                              : NULL;
    }
    if (!strcmp(g, "@15"))
        return in->mod == 3 ? grp15_reg[reg] : grp15_mem[reg];
    if (!strcmp(g, "@16"))
        return grp16[reg];
    return NULL;
}

static const char *base_name(const struct x86_insn *in)
{
    const char *n = NULL;
    if (in->op != X86_OP_OTHER)
        n = x86_op_name(in->op);
    else if (in->map == X86_MAP_PRIMARY)
        n = primary_names[in->opcode];
    else if (in->map == X86_MAP_0F)
        n = map0f_names[in->opcode];
    if (n && n[0] == '@')
        n = group_name(in, n);
    return n;
}

const char *x86_insn_name(const struct x86_insn *insn, char *buf, size_t len)
{
    static const char *const maps[] = {"", "0f", "0f38", "0f3a", "0f0f"};
    static const char *const encs[] = {"", "vex", "evex", "xop"};
    const char *n = insn->enc == X86_ENC_LEGACY ? base_name(insn) : NULL;
    const char *lock = insn->lock ? "lock " : "";
    bool wide = insn->rex_w && (insn->op >= X86_OP_FXSAVE &&
                                insn->op <= X86_OP_XRSTORS);
    if (n)
        snprintf(buf, len, "%s%s%s", lock, n, wide ? "64" : "");
    else if (insn->enc != X86_ENC_LEGACY)
        snprintf(buf, len, "%s.map%u op 0x%02x", encs[insn->enc],
                 insn->vex_map, insn->opcode);
    else if (insn->has_modrm)
        snprintf(buf, len, "%s%s%sop 0x%02x /%u", lock, maps[insn->map],
                 insn->map ? " " : "", insn->opcode, (insn->modrm >> 3) & 7);
    else
        snprintf(buf, len, "%s%s%sop 0x%02x", lock, maps[insn->map],
                 insn->map ? " " : "", insn->opcode);
    return buf;
}

uint64_t x86_mem_offset(const struct x86_insn *insn, const uint64_t regs[16],
                        uint64_t next_rip)
{
    const struct x86_mem *m = &insn->mem;
    uint64_t ea = (uint64_t)m->disp;
    if (m->base == X86_REG_RIP)
        ea += next_rip;
    else if (m->base >= 0)
        ea += regs[m->base];
    if (m->index >= 0)
        ea += regs[m->index] * m->scale;
    if (insn->addr_size == 2)
        return ea & 0xFFFF;
    if (insn->addr_size == 4)
        return ea & 0xFFFFFFFF;
    return ea;
}

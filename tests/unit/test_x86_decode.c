/* Decoder tables against known encodings. Lengths were cross-checked with
 * objdump (-M intel64 in 64-bit mode) when the cases were written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "vm/x86_decode.h"

struct dcase {
    enum x86_mode mode;
    const char *hex;
    unsigned len;
    const char *name; /* expected mnemonic, or NULL to skip */
    enum x86_op op;
};

#define L64 X86_MODE_LONG64
#define P32 X86_MODE_PROT32
#define P16 X86_MODE_PROT16
#define RM X86_MODE_REAL
#define OTHER X86_OP_OTHER

static const struct dcase cases[] = {
    /* The instructions the emulator completes. */
    {L64, "cc", 1, "int3", X86_OP_INT3},
    {L64, "f1", 1, "int1", X86_OP_INT1},
    {P32, "ce", 1, "into", X86_OP_INTO},
    {L64, "cd 80", 2, "int", X86_OP_INT},
    {L64, "48 0f ae 2f", 4, "xrstor64", X86_OP_XRSTOR},
    {L64, "0f ae 27", 3, "xsave", X86_OP_XSAVE},
    {L64, "48 0f ae 64 24 40", 6, "xsave64", X86_OP_XSAVE},
    {L64, "48 0f ae 37", 4, "xsaveopt64", X86_OP_XSAVEOPT},
    {L64, "48 0f c7 27", 4, "xsavec64", X86_OP_XSAVEC},
    {L64, "48 0f c7 2f", 4, "xsaves64", X86_OP_XSAVES},
    {L64, "48 0f c7 1f", 4, "xrstors64", X86_OP_XRSTORS},
    {L64, "0f ae 0f", 3, "fxrstor", X86_OP_FXRSTOR},
    {L64, "48 0f c7 0e", 4, "cmpxchg16b", X86_OP_CMPXCHG16B},
    {L64, "f0 48 0f c7 0f", 5, "lock cmpxchg16b", X86_OP_CMPXCHG16B},
    {L64, "f0 48 0f c7 8c 24 80 00 00 00", 10, "lock cmpxchg16b",
     X86_OP_CMPXCHG16B},
    {P32, "f0 0f c7 0e", 4, "lock cmpxchg8b", X86_OP_CMPXCHG8B},
    {L64, "0f 01 d0", 3, "xgetbv", X86_OP_XGETBV},
    {L64, "0f 01 d1", 3, "xsetbv", X86_OP_XSETBV},
    {L64, "f3 0f c7 f8", 4, "rdpid", X86_OP_RDPID},
    {L64, "0f 01 f9", 3, "rdtscp", X86_OP_RDTSCP},
    {L64, "0f 01 ee", 3, "rdpkru", X86_OP_RDPKRU},
    {L64, "0f 01 ef", 3, "wrpkru", X86_OP_WRPKRU},
    {L64, "0f 01 ca", 3, "clac", X86_OP_CLAC},
    {L64, "0f 01 cb", 3, "stac", X86_OP_STAC},
    {L64, "0f 01 e8", 3, "serialize", X86_OP_SERIALIZE},
    {L64, "0f 09", 2, "wbinvd", X86_OP_WBINVD},
    {L64, "f3 48 0f b8 c7", 5, "popcnt", X86_OP_POPCNT},
    {L64, "48 0f 03 c0", 4, "lsl", X86_OP_LSL},
    {L64, "0f 02 0e", 3, "lar", X86_OP_LAR},
    {L64, "f3 48 0f ae c0", 5, "rdfsbase", X86_OP_RDFSBASE},
    {L64, "f3 0f ae d7", 4, "wrfsbase", X86_OP_WRFSBASE},
    {L64, "f3 49 0f ae cb", 5, "rdgsbase", X86_OP_RDGSBASE},
    {L64, "f3 48 0f ae df", 5, "wrgsbase", X86_OP_WRGSBASE},
    {L64, "9b", 1, "fwait", X86_OP_FWAIT},
    {L64, "0f ae 54 24 04", 5, "ldmxcsr", X86_OP_LDMXCSR},
    {L64, "0f ae 1c 24", 4, "stmxcsr", X86_OP_STMXCSR},
    {L64, "66 0f 38 82 0f", 5, "invpcid", X86_OP_INVPCID},
    /* Look-alikes that are something else. */
    {L64, "66 0f ae 37", 4, "op", OTHER}, /* clwb */
    {L64, "0f ae f0", 3, "mfence", OTHER},
    {L64, "0f c7 f0", 3, "rdrand", OTHER},
    {L64, "f3 0f b8 c1", 4, "popcnt", X86_OP_POPCNT},
    /* Immediates and displacements. */
    {L64, "48 b8 88 77 66 55 44 33 22 11", 10, "mov", OTHER},
    {L64, "b8 44 33 22 11", 5, "mov", OTHER},
    {L64, "66 b8 22 11", 4, "mov", OTHER},
    {L64, "e8 00 00 00 00", 5, "call", OTHER},
    {L64, "66 e8 00 00 00 00", 6, "call", OTHER},
    {P32, "66 e8 00 00", 4, "call", OTHER},
    {L64, "0f 85 10 00 00 00", 6, "jne", OTHER},
    {L64, "c8 10 00 01", 4, "enter", OTHER},
    {L64, "a1 88 77 66 55 44 33 22 11", 9, "mov", OTHER},
    {L64, "67 a1 44 33 22 11", 6, "mov", OTHER},
    {L64, "f6 05 10 00 00 00 01", 7, "test", OTHER},
    {L64, "f7 c0 44 33 22 11", 6, "test", OTHER},
    {L64, "66 f7 c0 22 11", 5, "test", OTHER},
    {L64, "f7 d8", 2, "neg", OTHER},
    {L64, "48 81 ec 00 01 00 00", 7, "sub", OTHER},
    {L64, "48 83 c4 08", 4, "add", OTHER},
    {L64, "c6 f8 05", 3, "xabort", OTHER},
    {L64, "c7 f8 00 00 00 00", 6, "xbegin", OTHER},
    {L64, "42 8b 84 c8 00 10 00 00", 8, "mov", OTHER},
    {L64, "8b 04 25 00 10 00 00", 7, "mov", OTHER},
    {L64, "8b 05 00 10 00 00", 6, "mov", OTHER},
    {L64, "0f 20 c0", 3, "mov from cr", OTHER},
    {L64, "0f 22 18", 3, "mov to cr", OTHER}, /* mod bits ignored */
    {L64, "0f 0f c1 b4", 4, "0f0f op 0xb4", OTHER},
    {L64, "0f 3a 0f c1 08", 5, "0f3a op 0x0f", OTHER},
    {L64, "66 0f 38 00 c1", 5, "0f38 op 0x00", OTHER},
    {L64, "d9 7c 24 fe", 4, "x87", OTHER},
    /* VEX, EVEX, XOP. */
    {L64, "c5 f8 77", 3, "vex.map1 op 0x77", OTHER},
    {L64, "c5 fc 28 c1", 4, NULL, OTHER},
    {L64, "c4 e3 7d 18 c1 01", 6, "vex.map3 op 0x18", OTHER},
    {L64, "c4 e2 79 18 07", 5, NULL, OTHER},
    {L64, "c5 f9 71 d0 04", 5, NULL, OTHER},
    {L64, "62 f1 7c 48 10 07", 6, "evex.map1 op 0x10", OTHER},
    {L64, "62 f1 7c 48 10 47 01", 7, NULL, OTHER},
    {L64, "62 f3 7d 48 1b c1 01", 7, NULL, OTHER},
    {L64, "8f e9 78 c2 c1", 5, "xop.map9 op 0xc2", OTHER},
    {L64, "8f e8 78 c0 c1 05", 6, NULL, OTHER},
    /* Outside 64-bit mode C4/C5/62/8F are LES/LDS/BOUND/POP with memory. */
    {P32, "c4 07", 2, "les", OTHER},
    {P32, "c5 07", 2, "lds", OTHER},
    {P32, "62 07", 2, "bound", OTHER},
    {P32, "8f 07", 2, "pop", OTHER},
    {P32, "c5 f8 77", 3, NULL, OTHER},
    {P32, "40", 1, "inc", OTHER},
    {P32, "0f c7 4c 24 08", 5, "cmpxchg8b", X86_OP_CMPXCHG8B},
    {P32, "a1 44 33 22 11", 5, "mov", OTHER},
    {P32, "67 a1 22 11", 4, "mov", OTHER},
    {P32, "9a 44 33 22 11 10 00", 7, "callf", OTHER},
    {P32, "66 ea 22 11 10 00", 6, "jmpf", OTHER},
    /* 16-bit code. */
    {P16, "8b 46 02", 3, "mov", OTHER},
    {RM, "8b 86 00 10", 4, "mov", OTHER},
    {RM, "8b 06 34 12", 4, "mov", OTHER},
    {RM, "a1 34 12", 3, "mov", OTHER},
    {RM, "66 b8 78 56 34 12", 6, "mov", OTHER},
    {RM, "67 8b 04 24", 4, "mov", OTHER},
    {RM, "67 8b 05 44 33 22 11", 7, "mov", OTHER},
    {RM, "e8 00 10", 3, "call", OTHER},
    {RM, "ea 00 10 00 f0", 5, "jmpf", OTHER},
    {RM, "cc", 1, "int3", X86_OP_INT3},
    /* REX handling: a legacy prefix after REX cancels it. */
    {L64, "48 66 b8 22 11", 5, "mov", OTHER},
    {L64, "66 48 b8 88 77 66 55 44 33 22 11", 11, "mov", OTHER},
};

static size_t parse_hex(const char *s, uint8_t *out)
{
    size_t n = 0;
    while (*s) {
        unsigned v;
        if (*s == ' ') {
            s++;
            continue;
        }
        assert_int_equal(sscanf(s, "%2x", &v), 1);
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

static void test_known_encodings(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct dcase *c = &cases[i];
        uint8_t buf[32];
        char name[64];
        struct x86_insn in;
        size_t n = parse_hex(c->hex, buf);
        /* Trailing bytes must not change the result. */
        memset(buf + n, 0x90, sizeof(buf) - n);
        print_message("%s [%s]\n", x86_mode_name(c->mode), c->hex);
        assert_int_equal(x86_decode(buf, sizeof(buf), c->mode, &in),
                         X86_DECODE_OK);
        assert_int_equal(in.len, c->len);
        assert_int_equal(in.op, c->op);
        assert_memory_equal(in.bytes, buf, c->len);
        x86_insn_name(&in, name, sizeof(name));
        if (c->name)
            assert_non_null(strstr(name, c->name));
        /* Exactly len bytes are enough; one fewer is truncated. */
        assert_int_equal(x86_decode(buf, c->len, c->mode, &in),
                         X86_DECODE_OK);
        assert_int_equal(x86_decode(buf, c->len - 1, c->mode, &in),
                         X86_DECODE_TRUNCATED);
    }
}

static void test_invalid_and_too_long(void **state)
{
    struct x86_insn in;
    uint8_t b[20];
    memcpy(b, "\x06\x90", 2); /* push es */
    assert_int_equal(x86_decode(b, 2, L64, &in), X86_DECODE_INVALID);
    assert_int_equal(x86_decode(b, 2, P32, &in), X86_DECODE_OK);
    memcpy(b, "\xce", 1); /* into */
    assert_int_equal(x86_decode(b, 1, L64, &in), X86_DECODE_INVALID);
    memcpy(b, "\x0f\x04", 2);
    assert_int_equal(x86_decode(b, 2, L64, &in), X86_DECODE_INVALID);
    memcpy(b, "\x66\xc5\xf8\x77", 4); /* prefix before VEX */
    assert_int_equal(x86_decode(b, 4, L64, &in), X86_DECODE_INVALID);
    memset(b, 0x66, sizeof(b));
    b[14] = 0x90;
    assert_int_equal(x86_decode(b, sizeof(b), L64, &in), X86_DECODE_OK);
    assert_int_equal(in.len, 15);
    b[14] = 0x66;
    b[15] = 0x90;
    assert_int_equal(x86_decode(b, sizeof(b), L64, &in), X86_DECODE_TOO_LONG);
    assert_int_equal(x86_decode(b, 0, L64, &in), X86_DECODE_TRUNCATED);
}

static void test_operand_sizes(void **state)
{
    struct x86_insn in;
    assert_int_equal(x86_decode((const uint8_t *)"\x66\x67\x90", 3, L64, &in),
                     X86_DECODE_OK);
    assert_int_equal(in.op_size, 2);
    assert_int_equal(in.addr_size, 4);
    assert_int_equal(x86_decode((const uint8_t *)"\x48\x90", 2, L64, &in),
                     X86_DECODE_OK);
    assert_int_equal(in.op_size, 8);
    assert_int_equal(in.addr_size, 8);
    assert_int_equal(x86_decode((const uint8_t *)"\x66\x67\x90", 3, P32, &in),
                     X86_DECODE_OK);
    assert_int_equal(in.op_size, 2);
    assert_int_equal(in.addr_size, 2);
    assert_int_equal(x86_decode((const uint8_t *)"\x66\x67\x90", 3, RM, &in),
                     X86_DECODE_OK);
    assert_int_equal(in.op_size, 4);
    assert_int_equal(in.addr_size, 4);
    assert_int_equal(
        x86_decode((const uint8_t *)"\x90", 1, X86_MODE_COMPAT16, &in),
        X86_DECODE_OK);
    assert_int_equal(in.op_size, 2);
}

static uint64_t offset_of(enum x86_mode mode, const char *hex,
                          const uint64_t regs[16], uint64_t next_rip,
                          struct x86_insn *in)
{
    uint8_t buf[16];
    size_t n = parse_hex(hex, buf);
    assert_int_equal(x86_decode(buf, n, mode, in), X86_DECODE_OK);
    assert_true(in->has_mem);
    return x86_mem_offset(in, regs, next_rip);
}

static void test_memory_operands(void **state)
{
    uint64_t regs[16] = {0};
    struct x86_insn in;
    regs[X86_RSP] = 0x1000;
    regs[X86_RBX] = 0xFFF0;
    regs[X86_RSI] = 0x20;
    regs[X86_R9] = 0x100000;
    regs[X86_R13] = 0x7;
    regs[X86_RBP] = 0x8000;
    /* cmpxchg16b [rsp+0x10]: SS by default. */
    assert_int_equal(offset_of(L64, "48 0f c7 4c 24 10", regs, 0, &in), 0x1010);
    assert_int_equal(in.mem.seg, X86_SS);
    /* xrstor [rip+0x100] relative to the next instruction. */
    assert_int_equal(offset_of(L64, "0f ae 2d 00 01 00 00", regs, 0x5000, &in),
                     0x5100);
    assert_int_equal(in.mem.base, X86_REG_RIP);
    /* [r9 + r13*8 - 8] with REX.B and REX.X. */
    assert_int_equal(offset_of(L64, "4b 0f c7 4c e9 f8", regs, 0, &in),
                     0x100000 + 7 * 8 - 8);
    assert_int_equal(in.mem.seg, X86_DS);
    /* GS override; [r13] needs mod=1 with disp8 0 and is not SS-based. */
    assert_int_equal(offset_of(L64, "65 41 0f ae 65 00", regs, 0, &in), 7);
    assert_int_equal(in.mem.seg, X86_GS);
    /* 32-bit address size wraps. */
    regs[X86_RAX] = 0xFFFFFFF0;
    assert_int_equal(offset_of(L64, "67 0f c7 48 20", regs, 0, &in), 0x10);
    /* 16-bit forms: [bx+si+0x20] wraps at 64 KiB, [bp+2] uses SS. */
    assert_int_equal(offset_of(RM, "0f c7 48 20", regs, 0, &in), 0x0030);
    assert_int_equal(offset_of(RM, "8b 46 02", regs, 0, &in), 0x8002);
    assert_int_equal(in.mem.seg, X86_SS);
    assert_int_equal(offset_of(RM, "26 8b 46 02", regs, 0, &in), 0x8002);
    assert_int_equal(in.mem.seg, X86_ES);
    /* Absolute disp32 without base in 32-bit mode (no RIP-relative). */
    assert_int_equal(offset_of(P32, "0f ae 2d 00 01 00 00", regs, 0x5000, &in),
                     0x100);
}

static void test_modes(void **state)
{
    assert_int_equal(x86_mode_of(0x10, 0, 2, false, false), X86_MODE_REAL);
    assert_int_equal(x86_mode_of(0x11, 0, 2, false, true), X86_MODE_PROT32);
    assert_int_equal(x86_mode_of(0x11, 0, 2, false, false), X86_MODE_PROT16);
    assert_int_equal(x86_mode_of(0x11, 0, 0x20002, false, false),
                     X86_MODE_VM86);
    assert_int_equal(x86_mode_of(0x80000011, 0x500, 2, true, false),
                     X86_MODE_LONG64);
    assert_int_equal(x86_mode_of(0x80000011, 0x500, 2, false, true),
                     X86_MODE_COMPAT32);
    assert_int_equal(x86_mode_of(0x80000011, 0x500, 2, false, false),
                     X86_MODE_COMPAT16);
    assert_string_equal(x86_mode_name(X86_MODE_LONG64), "long64");
    assert_int_equal(x86_mode_default_size(X86_MODE_LONG64), 4);
    assert_int_equal(x86_mode_default_size(X86_MODE_VM86), 2);
}

/* What may run on the host: pure computations only. */
static void test_native_ok(void **state)
{
    static const struct {
        const char *hex;
        enum x86_mode mode;
        bool ok;
    } natives[] = {
        {"c5 fa 6f 07", L64, true},          /* vmovdqu */
        {"66 0f fe 47 10", L64, true},       /* paddd */
        {"62 f1 7c 48 10 07", L64, true},    /* vmovups zmm */
        {"f2 48 0f 38 f1 c7", L64, true},    /* crc32 */
        {"c4 e2 f8 f2 c1", L64, true},       /* andn */
        {"66 0f 3a 44 c1 00", L64, true},    /* pclmulqdq */
        {"0f 38 c8 c1", L64, true},          /* sha1nexte */
        {"c5 f8 77", L64, true},             /* vzeroupper */
        {"66 0f f7 c1", L64, false},         /* maskmovdqu: [RDI] */
        {"c5 f9 f7 c1", L64, false},         /* vmaskmovdqu: [RDI] */
        {"c4 e2 79 90 04 87", L64, false},   /* vpgatherdd: VSIB */
        {"62 f2 7d 49 a0 04 87", L64, false}, /* vpscatterdd */
        {"c4 e2 7b 4b 04 08", L64, false},   /* tileloadd: AMX */
        {"66 0f 38 f8 07", L64, false},      /* movdir64b */
        {"0f 38 f6 07", L64, false},         /* wrss */
        {"66 0f 38 f6 c1", L64, true},       /* adcx */
        {"0f ae 07", L64, false},            /* fxsave */
        {"0f 01 d0", L64, false},            /* xgetbv */
        {"e8 00 00 00 00", L64, false},      /* call */
        {"8f e8 78 c0 c1 05", L64, false},   /* XOP */
        {"66 0f fe c1", P32, false},         /* outside 64-bit mode */
    };
    for (size_t i = 0; i < sizeof(natives) / sizeof(natives[0]); i++) {
        uint8_t buf[16];
        struct x86_insn in;
        size_t n = parse_hex(natives[i].hex, buf);
        print_message("%s\n", natives[i].hex);
        assert_int_equal(x86_decode(buf, n, natives[i].mode, &in),
                         X86_DECODE_OK);
        assert_int_equal(x86_native_ok(&in), natives[i].ok);
    }
}

static void test_names_of_unknown(void **state)
{
    struct x86_insn in;
    char name[64];
    assert_int_equal(x86_decode((const uint8_t *)"\x0f\x38\xf0\x07", 4, L64,
                                &in),
                     X86_DECODE_OK);
    assert_string_equal(x86_insn_name(&in, name, sizeof(name)),
                        "0f38 op 0xf0 /0");
    assert_int_equal(x86_decode((const uint8_t *)"\x0f\x01\xc1", 3, L64, &in),
                     X86_DECODE_OK);
    assert_string_equal(x86_insn_name(&in, name, sizeof(name)), "vmcall");
    assert_int_equal(x86_decode((const uint8_t *)"\x80\x3f\x01", 3, L64, &in),
                     X86_DECODE_OK);
    assert_string_equal(x86_insn_name(&in, name, sizeof(name)), "cmp");
    assert_string_equal(x86_op_name(X86_OP_XRSTORS), "xrstors");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_encodings),
        cmocka_unit_test(test_invalid_and_too_long),
        cmocka_unit_test(test_operand_sizes),
        cmocka_unit_test(test_memory_operands),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_names_of_unknown),
        cmocka_unit_test(test_native_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

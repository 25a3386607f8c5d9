/* The entries from ring 3 that kvmpc completes on PVM hosts
 * (src/vm/user_entry.c): recognising a lost SYSCALL in a page fault, and
 * the state SYSCALL, SYSENTER and INT n must produce. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util.h"
#include "vm/user_entry.h"

/* Linux's numbers: kernel CS 0x10, user CS32 0x23 (STAR[63:48] = 0x23),
 * SFMASK with IF, DF, TF, AC, NT, RF ... */
#define STAR 0x0023001000000000ull
#define LSTAR 0xffffffff81400040ull
#define SFMASK 0x257fd5ull
#define USER_CS 0x33
#define USER_SS 0x2b
#define USER_FLAGS 0x246ull /* IF ZF PF */
#define RF (1ull << 16)

static const struct syscall_msrs msrs = {STAR, LSTAR, SFMASK};

/* The #PF PVM raises after the half-done SYSCALL. */
static struct exc_frame64 lost_syscall_frame(void)
{
    return (struct exc_frame64){.error = 0x15, .rip = LSTAR, .cs = USER_CS,
                                .rflags = (USER_FLAGS & ~SFMASK) | 2 | RF,
                                .rsp = 0x7ffd2be06680, .ss = USER_SS};
}

static void lost_syscall_is_recognised(void **state)
{
    (void)state;
    struct exc_frame64 f = lost_syscall_frame();
    assert_true(syscall_lost_in_fault(&msrs, &f, LSTAR, USER_FLAGS));
    f.rflags &= ~RF; /* with or without RF in the pushed flags */
    assert_true(syscall_lost_in_fault(&msrs, &f, LSTAR, USER_FLAGS));
}

static void other_faults_are_not_syscalls(void **state)
{
    (void)state;
    struct exc_frame64 f = lost_syscall_frame();
    /* an ordinary fault elsewhere */
    struct exc_frame64 g = f;
    g.rip = 0x401000;
    assert_false(syscall_lost_in_fault(&msrs, &g, 0x401000, USER_FLAGS));
    /* the kernel faulting at its own entry */
    g = f;
    g.cs = 0x10;
    g.error = 0x11;
    assert_false(syscall_lost_in_fault(&msrs, &g, LSTAR, USER_FLAGS));
    /* a data access that faults on the LSTAR page from elsewhere */
    assert_false(syscall_lost_in_fault(&msrs, &f, LSTAR + 8, USER_FLAGS));
    /* the error code of a supervisor access */
    g = f;
    g.error = 0x11;
    assert_false(syscall_lost_in_fault(&msrs, &g, LSTAR, USER_FLAGS));
    /* ring 3 jumping to LSTAR: IF still set, nothing masked */
    g = f;
    g.rflags = USER_FLAGS | RF;
    assert_false(syscall_lost_in_fault(&msrs, &g, LSTAR, USER_FLAGS));
    /* R11 not the flags the frame shows (outside what SFMASK clears) */
    assert_false(syscall_lost_in_fault(&msrs, &f, LSTAR, USER_FLAGS | 0x80000));
    assert_false(syscall_lost_in_fault(&msrs, &f, LSTAR, 0x3f8));
}

static void syscall_state_after_completion(void **state)
{
    (void)state;
    struct exc_frame64 f = lost_syscall_frame();
    struct kvm_regs r = {.rip = 0xffffffff81400b00, .rsp = 0xfffffe0000002fd0,
                         .rflags = 0x10002, .rcx = 0x401234,
                         .r11 = USER_FLAGS, .rax = 39};
    struct kvm_sregs s;
    memset(&s, 0, sizeof(s));
    s.cs.selector = 0x10;
    s.ss.selector = 0; /* what the #PF delivery from ring 3 loaded */
    s.cr2 = LSTAR;
    s.ds.selector = 0x2b;
    syscall_complete(&msrs, &f, &r, &s);
    assert_int_equal(r.rip, LSTAR);
    assert_int_equal(r.rsp, 0x7ffd2be06680);
    assert_int_equal(r.rflags, 0x2);
    assert_int_equal(r.rcx, 0x401234); /* the host set RCX and R11 */
    assert_int_equal(r.r11, USER_FLAGS);
    assert_int_equal(r.rax, 39);
    assert_int_equal(s.cs.selector, 0x10);
    assert_int_equal(s.cs.dpl, 0);
    assert_int_equal(s.cs.l, 1);
    assert_int_equal(s.cs.db, 0);
    assert_int_equal(s.cs.type, 0xB);
    assert_int_equal(s.cs.present, 1);
    assert_int_equal(s.cs.base, 0);
    assert_int_equal(s.ss.selector, 0x18);
    assert_int_equal(s.ss.dpl, 0);
    assert_int_equal(s.ss.type, 0x3);
    assert_int_equal(s.ss.db, 1);
    assert_int_equal(s.ss.limit, 0xFFFFFFFF);
    assert_int_equal(s.ds.selector, 0x2b); /* SYSCALL leaves DS alone */
}

static void syscall_segments_drop_rpl(void **state)
{
    (void)state;
    struct kvm_segment cs, ss;
    kernel_flat_segments(0x13, &cs, &ss);
    assert_int_equal(cs.selector, 0x10);
    assert_int_equal(ss.selector, 0x18);
}

static void frame_parse(void **state)
{
    (void)state;
    uint8_t buf[48];
    for (unsigned i = 0; i < 6; i++)
        put_le64(buf + 8 * i, 0x1111111111111111ull * (i + 1));
    struct exc_frame64 f;
    exc_frame64_parse(buf, true, &f);
    assert_int_equal(f.error, 0x1111111111111111ull);
    assert_int_equal(f.rip, 0x2222222222222222ull);
    assert_int_equal(f.ss, 0x6666666666666666ull);
    exc_frame64_parse(buf, false, &f);
    assert_int_equal(f.error, 0);
    assert_int_equal(f.rip, 0x1111111111111111ull);
    assert_int_equal(f.cs, 0x2222222222222222ull);
    assert_int_equal(f.rflags, 0x3333333333333333ull);
    assert_int_equal(f.rsp, 0x4444444444444444ull);
    assert_int_equal(f.ss, 0x5555555555555555ull);
}

static void make_gate(uint8_t g[16], uint64_t handler, uint16_t sel,
                      uint8_t ist, uint8_t attr)
{
    memset(g, 0, 16);
    put_le16(g, (uint16_t)handler);
    put_le16(g + 2, sel);
    g[4] = ist;
    g[5] = attr;
    put_le16(g + 6, (uint16_t)(handler >> 16));
    put_le32(g + 8, (uint32_t)(handler >> 32));
}

static void gate_decode(void **state)
{
    (void)state;
    uint8_t g[16];
    struct idt_gate64 d;
    make_gate(g, 0xffffffff81400b00, 0x10, 0, 0x8E); /* interrupt, DPL 0 */
    assert_true(idt_gate64_decode(g, &d));
    assert_int_equal(d.handler, 0xffffffff81400b00);
    assert_int_equal(d.selector, 0x10);
    assert_int_equal(d.ist, 0);
    assert_int_equal(d.dpl, 0);
    assert_false(d.trap);
    make_gate(g, 0x123456789abcdef0, 0x08, 3, 0xEF); /* trap, DPL 3, IST 3 */
    assert_true(idt_gate64_decode(g, &d));
    assert_int_equal(d.handler, 0x123456789abcdef0);
    assert_int_equal(d.ist, 3);
    assert_int_equal(d.dpl, 3);
    assert_true(d.trap);
    make_gate(g, 0x1000, 0x10, 0, 0x0E); /* not present */
    assert_false(idt_gate64_decode(g, &d));
    make_gate(g, 0x1000, 0x10, 0, 0x8C); /* call gate */
    assert_false(idt_gate64_decode(g, &d));
    make_gate(g, 0x1000, 0x10, 0, 0x85); /* task gate */
    assert_false(idt_gate64_decode(g, &d));
    make_gate(g, 0x1000, 0x10, 0, 0x9E); /* S bit set: not a gate */
    assert_false(idt_gate64_decode(g, &d));
}

static void classify(void **state)
{
    (void)state;
    uint8_t v = 0;
    assert_int_equal(user_insn_classify((const uint8_t[]){0x0F, 0x34}, &v),
                     USER_INSN_SYSENTER);
    assert_int_equal(user_insn_classify((const uint8_t[]){0xCD, 0x80}, &v),
                     USER_INSN_INT);
    assert_int_equal(v, 0x80);
    assert_int_equal(user_insn_classify((const uint8_t[]){0x0F, 0x0B}, &v),
                     USER_INSN_OTHER);
    assert_int_equal(user_insn_classify((const uint8_t[]){0x0F, 0x05}, &v),
                     USER_INSN_OTHER);
}

/* The #UD frame PVM pushes for SYSENTER / INT n at user RIP 0x401000. */
static struct exc_frame64 ud_frame(void)
{
    return (struct exc_frame64){.rip = 0x401000, .cs = USER_CS,
                                .rflags = USER_FLAGS | RF | (1ull << 8),
                                .rsp = 0x7ffc0000, .ss = USER_SS};
}

static void sysenter(void **state)
{
    (void)state;
    struct exc_frame64 f = ud_frame();
    struct kvm_regs r = {.rcx = 5, .rdx = 6};
    struct kvm_sregs s;
    memset(&s, 0, sizeof(s));
    struct sysenter_msrs m = {.cs = 0x10, .eip = 0xffffffff81401230,
                              .esp = 0xfffffe0000003000};
    assert_true(sysenter_complete(&m, &f, &r, &s));
    assert_int_equal(r.rip, 0xffffffff81401230);
    assert_int_equal(r.rsp, 0xfffffe0000003000);
    /* IF and RF clear, TF kept (SYSENTER does not touch it) */
    assert_int_equal(r.rflags, (USER_FLAGS & ~0x200ull) | (1ull << 8));
    assert_int_equal(r.rcx, 5);
    assert_int_equal(r.rdx, 6);
    assert_int_equal(s.cs.selector, 0x10);
    assert_int_equal(s.cs.l, 1);
    assert_int_equal(s.ss.selector, 0x18);
    m.cs = 0x3; /* null selector: #GP(0) on a CPU, not completed */
    assert_false(sysenter_complete(&m, &f, &r, &s));
}

static void int_gate_checks(void **state)
{
    (void)state;
    struct idt_gate64 g = {.handler = 0x1000, .selector = 0x10, .dpl = 3};
    assert_true(int_gate_usable(&g, 0x10));
    g.dpl = 0; /* a CPU raises #GP: left as it is */
    assert_false(int_gate_usable(&g, 0x10));
    g.dpl = 3;
    g.selector = 0x08; /* another code segment: not handled */
    assert_false(int_gate_usable(&g, 0x10));
}

static void int_stack_and_frame(void **state)
{
    (void)state;
    uint8_t tss[TSS64_MIN_SIZE] = {0};
    put_le64(tss + 4, 0xfffffe0000003008);     /* RSP0, not aligned */
    put_le64(tss + 0x24 + 8, 0xfffffe0000009000); /* IST2 */
    struct idt_gate64 g = {.handler = 0xffffffff81401800, .selector = 0x10,
                           .dpl = 3, .trap = false};
    uint64_t at = int_frame_address(tss, &g);
    assert_int_equal(at, 0xfffffe0000003000 - INT_FRAME64_SIZE);
    g.ist = 2;
    assert_int_equal(int_frame_address(tss, &g),
                     0xfffffe0000009000 - INT_FRAME64_SIZE);
    g.ist = 0;

    struct exc_frame64 f = ud_frame();
    struct kvm_regs r = {.rax = 1};
    uint8_t out[INT_FRAME64_SIZE];
    int_complete(&f, &g, at, out, &r);
    assert_int_equal(get_le64(out), 0x401002);          /* after CD 80 */
    assert_int_equal(get_le64(out + 8), USER_CS);
    assert_int_equal(get_le64(out + 16), f.rflags & ~RF); /* RF not saved */
    assert_int_equal(get_le64(out + 24), 0x7ffc0000);
    assert_int_equal(get_le64(out + 32), USER_SS);
    assert_int_equal(r.rip, 0xffffffff81401800);
    assert_int_equal(r.rsp, at);
    /* interrupt gate: TF, RF and IF cleared */
    assert_int_equal(r.rflags, USER_FLAGS & ~0x200ull);
    assert_int_equal(r.rax, 1);
    g.trap = true; /* trap gate: IF stays */
    int_complete(&f, &g, at, out, &r);
    assert_int_equal(r.rflags, USER_FLAGS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lost_syscall_is_recognised),
        cmocka_unit_test(other_faults_are_not_syscalls),
        cmocka_unit_test(syscall_state_after_completion),
        cmocka_unit_test(syscall_segments_drop_rpl),
        cmocka_unit_test(frame_parse),
        cmocka_unit_test(gate_decode),
        cmocka_unit_test(classify),
        cmocka_unit_test(sysenter),
        cmocka_unit_test(int_gate_checks),
        cmocka_unit_test(int_stack_and_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

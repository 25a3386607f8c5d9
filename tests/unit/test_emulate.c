/* Each completion on crafted guest memory with a fake vCPU. */
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpuid.h>

#include "util.h"
#include "vm/emulate.h"
#include "vm/emulate_native.h"

/* ---- a fake vCPU ------------------------------------------------------ */

struct fake_vcpu {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    uint8_t xsave[4096];
    uint64_t xcr0;
    uint64_t xss;
    uint64_t tsc, tsc_aux;
    struct kvm_vcpu_events events;
    int set_regs, set_sregs, set_xsave, set_events;
    int get_xsave, get_xcrs;
};

static int f_get_regs(void *v, struct kvm_regs *r)
{
    *r = ((struct fake_vcpu *)v)->regs;
    return 0;
}

static int f_set_regs(void *v, const struct kvm_regs *r)
{
    ((struct fake_vcpu *)v)->regs = *r;
    ((struct fake_vcpu *)v)->set_regs++;
    return 0;
}

static int f_get_sregs(void *v, struct kvm_sregs *s)
{
    *s = ((struct fake_vcpu *)v)->sregs;
    return 0;
}

static int f_set_sregs(void *v, const struct kvm_sregs *s)
{
    ((struct fake_vcpu *)v)->sregs = *s;
    ((struct fake_vcpu *)v)->set_sregs++;
    return 0;
}

static size_t f_xsave_size(void *v) { return 4096; }

static int f_get_xsave(void *v, void *buf, size_t len)
{
    ((struct fake_vcpu *)v)->get_xsave++;
    memcpy(buf, ((struct fake_vcpu *)v)->xsave, len);
    return 0;
}

static int f_set_xsave(void *v, const void *buf, size_t len)
{
    memcpy(((struct fake_vcpu *)v)->xsave, buf, len);
    ((struct fake_vcpu *)v)->set_xsave++;
    return 0;
}

static int f_get_xcrs(void *v, struct kvm_xcrs *x)
{
    ((struct fake_vcpu *)v)->get_xcrs++;
    x->nr_xcrs = 1;
    x->xcrs[0].xcr = 0;
    x->xcrs[0].value = ((struct fake_vcpu *)v)->xcr0;
    return 0;
}

/* Accepts what a CPU with x87/SSE/AVX/AVX-512/PKRU accepts. */
static int f_set_xcrs(void *v, const struct kvm_xcrs *x)
{
    uint64_t val = x->xcrs[0].value;
    if (x->nr_xcrs != 1 || x->xcrs[0].xcr != 0 || !(val & 1) ||
        (val & ~0x2E7ull) || ((val & 4) && !(val & 2)))
        return -1;
    ((struct fake_vcpu *)v)->xcr0 = val;
    return 0;
}

static int f_get_msr(void *v, uint32_t index, uint64_t *value)
{
    struct fake_vcpu *f = v;
    switch (index) {
    case 0x10: *value = f->tsc; return 0;
    case 0xDA0: *value = f->xss; return 0;
    case 0xC0000103: *value = f->tsc_aux; return 0;
    default: return -1;
    }
}

static int f_get_events(void *v, struct kvm_vcpu_events *e)
{
    *e = ((struct fake_vcpu *)v)->events;
    return 0;
}

static int f_set_events(void *v, const struct kvm_vcpu_events *e)
{
    ((struct fake_vcpu *)v)->events = *e;
    ((struct fake_vcpu *)v)->set_events++;
    return 0;
}

/* The host-like XSAVE layout of test_xstate.c, 46 physical address bits. */
static void f_cpuid(void *v, uint32_t leaf, uint32_t sub, uint32_t out[4])
{
    static const uint32_t comp[10][2] = {
        [2] = {256, 576}, [5] = {64, 1088}, [6] = {512, 1152},
        [7] = {1024, 1664}, [9] = {8, 2688},
    };
    memset(out, 0, 4 * sizeof(uint32_t));
    if (leaf == 0x80000008) {
        out[0] = 46;
    } else if (leaf == 0xD && sub == 0) {
        out[0] = 0x2E7;
    } else if (leaf == 0xD && sub == 1) {
        out[0] = 0xF;
    } else if (leaf == 0xD && sub < 10) {
        out[0] = comp[sub][0];
        out[1] = comp[sub][1];
    }
}

static struct emu_native *executor;

static struct emu_native *f_native(void *v) { return executor; }

static const struct emu_vcpu_ops fake_ops = {
    .get_regs = f_get_regs, .set_regs = f_set_regs,
    .get_sregs = f_get_sregs, .set_sregs = f_set_sregs,
    .xsave_size = f_xsave_size, .get_xsave = f_get_xsave,
    .set_xsave = f_set_xsave, .get_xcrs = f_get_xcrs,
    .set_xcrs = f_set_xcrs, .get_msr = f_get_msr,
    .get_events = f_get_events, .set_events = f_set_events,
    .cpuid = f_cpuid, .native = f_native,
};

/* ---- guest memory and CPU modes ---------------------------------------- */

#define RAM_SIZE (4u << 20)
#define CODE 0x10000ull
#define DATA 0x20000ull
static uint8_t *ram;
static struct guest_mem mem;
static struct fake_vcpu cpu;
static struct emu_stats stats;
static char diag[256];

#define PTE_P 1ull
#define PTE_RW 2ull
#define PTE_PS 0x80ull

/* Long mode: the first 2 MiB identity-mapped by 4 KiB pages (PT at
 * 0x4000), the next 2 MiB by one large page. */
static void long_mode(void)
{
    put_le64(ram + 0x1000, 0x2000 | PTE_P | PTE_RW);
    put_le64(ram + 0x2000, 0x3000 | PTE_P | PTE_RW);
    put_le64(ram + 0x3000, 0x4000 | PTE_P | PTE_RW);
    put_le64(ram + 0x3008, 0x200000 | PTE_P | PTE_RW | PTE_PS);
    for (uint64_t i = 0; i < 512; i++)
        put_le64(ram + 0x4000 + 8 * i, (i << 12) | PTE_P | PTE_RW);
    struct kvm_sregs *s = &cpu.sregs;
    s->cr0 = 0x80050033; /* PG WP NE ET MP PE */
    s->cr3 = 0x1000;
    s->cr4 = 0x40620;     /* OSXSAVE OSXMMEXCPT OSFXSR PAE */
    s->efer = 0xD01;      /* NXE LMA LME SCE */
    s->cs = (struct kvm_segment){.limit = 0xFFFFFFFF, .selector = 0x10,
                                 .type = 0xB, .present = 1, .s = 1, .l = 1,
                                 .g = 1};
    s->ds = s->es = s->ss = s->fs = s->gs =
        (struct kvm_segment){.limit = 0xFFFFFFFF, .selector = 0x18,
                             .type = 3, .present = 1, .s = 1, .db = 1,
                             .g = 1};
}

/* 32-bit protected mode, flat, no paging. */
static void prot32_mode(void)
{
    struct kvm_sregs *s = &cpu.sregs;
    memset(s, 0, sizeof(*s));
    s->cr0 = 0x33;
    s->cr4 = 0x40600;
    s->cs = (struct kvm_segment){.limit = 0xFFFFFFFF, .selector = 0x8,
                                 .type = 0xB, .present = 1, .s = 1, .db = 1,
                                 .g = 1};
    s->ds = s->es = s->ss = s->fs = s->gs =
        (struct kvm_segment){.limit = 0xFFFFFFFF, .selector = 0x10,
                             .type = 3, .present = 1, .s = 1, .db = 1,
                             .g = 1};
}

/* CPL 3 runs: make the tables and the code page user-accessible. */
static void user_mode(void)
{
    ram[0x1000] |= 4;
    ram[0x2000] |= 4;
    ram[0x3000] |= 4;
    ram[0x4000 + 8 * (CODE >> 12)] |= 4;
    cpu.sregs.ss.dpl = cpu.sregs.cs.dpl = 3;
}

static void set_pte(uint64_t la, uint64_t flags)
{
    put_le64(ram + 0x4000 + 8 * (la >> 12), (la & ~0xFFFull) | flags);
}

/* An x87/SSE/AVX state with tagged bytes, all in use. */
static void fill_xsave(void)
{
    memset(cpu.xsave, 0, sizeof(cpu.xsave));
    for (unsigned i = 0; i < 160; i++)
        cpu.xsave[i] = (uint8_t)(0x80 + i);
    put_le32(cpu.xsave + 24, 0x1F80);
    put_le32(cpu.xsave + 28, 0xFFFF);
    memset(cpu.xsave + 160, 0x11, 256);
    memset(cpu.xsave + 576, 0x22, 256);
    put_le64(cpu.xsave + 512, 0x7);
}

static int setup(void **state)
{
    if (!executor)
        executor = emu_native_create();
    assert_non_null(executor);
    if (!ram)
        ram = aligned_alloc(4096, RAM_SIZE);
    memset(ram, 0, RAM_SIZE);
    memset(&mem, 0, sizeof(mem));
    assert_int_equal(gmem_add(&mem, 0, RAM_SIZE, ram, false), 0);
    memset(&cpu, 0, sizeof(cpu));
    memset(&stats, 0, sizeof(stats));
    long_mode();
    cpu.regs.rip = CODE;
    cpu.regs.rflags = 0x2;
    cpu.regs.rsp = 0x8000;
    cpu.xcr0 = 0x7;
    fill_xsave();
    cpu.events.flags = KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM;
    /* What KVM queues when its emulator gives up at CPL 0. */
    cpu.events.exception.pending = 1;
    cpu.events.exception.nr = 6;
    return 0;
}

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

static struct kvm_run failure_exit(void)
{
    struct kvm_run run;
    memset(&run, 0, sizeof(run));
    run.exit_reason = KVM_EXIT_INTERNAL_ERROR;
    run.emulation_failure.suberror = KVM_INTERNAL_ERROR_EMULATION;
    run.emulation_failure.ndata = 0;
    return run;
}

/* Puts the instruction at CS:RIP and handles the failure exit. */
static enum emu_result run_at(uint64_t gpa, const char *hex)
{
    uint8_t b[32];
    size_t n = parse_hex(hex, b);
    memcpy(ram + gpa, b, n);
    memset(ram + gpa + n, 0xF4, 16); /* hlt: nothing else runs with it */
    struct kvm_run run = failure_exit();
    return emu_handle_failure(&fake_ops, &cpu, &mem, &run, &stats, diag,
                              sizeof(diag));
}

static enum emu_result run(const char *hex)
{
    return run_at(CODE, hex);
}

static void assert_no_exception(void)
{
    assert_int_equal(cpu.events.exception.injected, 0);
    assert_int_equal(cpu.events.exception.pending, 0);
}

static void assert_exception(uint8_t nr, bool has_error, uint32_t error)
{
    assert_int_equal(cpu.events.exception.injected, 1);
    assert_int_equal(cpu.events.exception.nr, nr);
    assert_int_equal(cpu.events.exception.has_error_code, has_error);
    if (has_error)
        assert_int_equal(cpu.events.exception.error_code, error);
}

/* ---- int3, int1, into --------------------------------------------------- */

static void test_int3(void **state)
{
    assert_int_equal(run("cc"), EMU_DONE);
    assert_int_equal(cpu.regs.rip, CODE + 1);
    assert_exception(3, false, 0);
    assert_int_equal(stats.completed[X86_OP_INT3], 1);
    assert_int_equal(cpu.set_regs, 1);
}

static void test_int3_real_mode(void **state)
{
    struct kvm_sregs *s = &cpu.sregs;
    memset(s, 0, sizeof(*s));
    s->cr0 = 0x10;
    s->cs = (struct kvm_segment){.base = 0xF0000, .limit = 0xFFFF,
                                 .selector = 0xF000, .type = 0xB,
                                 .present = 1, .s = 1};
    s->ds = s->es = s->ss = s->fs = s->gs =
        (struct kvm_segment){.limit = 0xFFFF, .type = 3, .present = 1,
                             .s = 1};
    cpu.regs.rip = 0xFFFF;
    assert_int_equal(run_at(0xFFFFF, "cc"), EMU_DONE);
    assert_int_equal(cpu.regs.rip, 0); /* IP wraps in 16-bit code */
    assert_exception(3, false, 0);
}

static void test_int1_and_into(void **state)
{
    assert_int_equal(run("f1"), EMU_DONE);
    assert_exception(1, false, 0);
    prot32_mode();
    cpu.regs.rip = CODE;
    cpu.events.exception.injected = 0;
    assert_int_equal(run("ce"), EMU_DONE); /* OF clear: nothing happens */
    assert_int_equal(cpu.regs.rip, CODE + 1);
    assert_no_exception();
    cpu.regs.rip = CODE;
    cpu.regs.rflags |= 1u << 11;
    assert_int_equal(run("ce"), EMU_DONE);
    assert_int_equal(cpu.regs.rip, CODE + 1);
    assert_exception(4, false, 0);
    /* INTO does not exist in 64-bit mode. */
    long_mode();
    cpu.regs.rip = CODE;
    assert_int_equal(run("ce"), EMU_FAULT);
    assert_exception(6, false, 0);
    assert_int_equal(cpu.regs.rip, CODE);
}

/* ---- cmpxchg8b / cmpxchg16b ------------------------------------------- */

static void set_pair(uint64_t gpa, uint64_t lo, uint64_t hi)
{
    put_le64(ram + gpa, lo);
    put_le64(ram + gpa + 8, hi);
}

static void test_cmpxchg16b_success(void **state)
{
    set_pair(DATA, 1, 2);
    cpu.regs.rdi = DATA;
    cpu.regs.rax = 1, cpu.regs.rdx = 2;
    cpu.regs.rbx = 3, cpu.regs.rcx = 4;
    assert_int_equal(run("f0 48 0f c7 0f"), EMU_DONE);
    assert_int_equal(get_le64(ram + DATA), 3);
    assert_int_equal(get_le64(ram + DATA + 8), 4);
    assert_true(cpu.regs.rflags & 0x40);
    assert_int_equal(cpu.regs.rip, CODE + 5);
    assert_no_exception(); /* the #UD KVM queued is gone */
    assert_int_equal(stats.completed[X86_OP_CMPXCHG16B], 1);
    /* The walk marked the page accessed and dirty. */
    assert_int_equal(get_le64(ram + 0x4000 + 8 * (DATA >> 12)) & 0x60, 0x60);
}

static void test_cmpxchg16b_failure(void **state)
{
    set_pair(DATA + 0x10, 5, 6);
    cpu.regs.rsp = DATA;
    cpu.regs.rax = 1, cpu.regs.rdx = 2;
    cpu.regs.rbx = 3, cpu.regs.rcx = 4;
    cpu.regs.rflags |= 0x40;
    /* lock cmpxchg16b [rsp+0x10] */
    assert_int_equal(run("f0 48 0f c7 4c 24 10"), EMU_DONE);
    assert_int_equal(cpu.regs.rax, 5);
    assert_int_equal(cpu.regs.rdx, 6);
    assert_false(cpu.regs.rflags & 0x40);
    assert_int_equal(get_le64(ram + DATA + 0x10), 5);
    assert_int_equal(get_le64(ram + DATA + 0x18), 6);
    assert_int_equal(cpu.regs.rip, CODE + 7);
}

static void test_cmpxchg16b_alignment(void **state)
{
    set_pair(DATA + 8, 1, 2);
    cpu.regs.rdi = DATA + 8;
    cpu.regs.rax = 1, cpu.regs.rdx = 2;
    assert_int_equal(run("f0 48 0f c7 0f"), EMU_FAULT);
    assert_exception(13, true, 0);
    assert_int_equal(cpu.regs.rip, CODE);
    assert_int_equal(get_le64(ram + DATA + 8), 1);
    assert_int_equal(stats.faulted[X86_OP_CMPXCHG16B], 1);
    assert_int_equal(cpu.set_regs, 0);
}

static void test_cmpxchg16b_page_faults(void **state)
{
    cpu.regs.rdi = DATA;
    set_pte(DATA, 0); /* not present */
    assert_int_equal(run("f0 48 0f c7 0f"), EMU_FAULT);
    assert_exception(14, true, 0x2); /* write, supervisor, not present */
    assert_int_equal(cpu.sregs.cr2, DATA);
    assert_int_equal(cpu.set_sregs, 1);
    /* With exception payloads KVM gets CR2 with a pending exception. */
    cpu.events.flags |= KVM_VCPUEVENT_VALID_PAYLOAD;
    cpu.sregs.cr2 = 0;
    set_pte(DATA, PTE_P); /* read-only, CR0.WP set */
    assert_int_equal(run("f0 48 0f c7 0f"), EMU_FAULT);
    assert_int_equal(cpu.events.exception.pending, 1);
    assert_int_equal(cpu.events.exception.injected, 0);
    assert_int_equal(cpu.events.exception.nr, 14);
    assert_int_equal(cpu.events.exception.error_code, 0x3);
    assert_int_equal(cpu.events.exception_has_payload, 1);
    assert_int_equal(cpu.events.exception_payload, DATA);
    assert_int_equal(cpu.sregs.cr2, 0);
    /* A user-mode access to a supervisor page. */
    set_pte(DATA, PTE_P | PTE_RW);
    user_mode();
    assert_int_equal(run("f0 48 0f c7 0f"), EMU_FAULT);
    assert_int_equal(cpu.events.exception.error_code, 0x7);
}

static void test_cmpxchg8b_prot32(void **state)
{
    prot32_mode();
    cpu.regs.rip = CODE;
    put_le64(ram + DATA + 4, 0x1111111122222222ull);
    cpu.regs.rsi = DATA;
    cpu.regs.rax = 0xAAAAAAAA00000000ull; /* upper halves are kept */
    cpu.regs.rdx = 0xBBBBBBBB00000000ull;
    /* lock cmpxchg8b [esi+4], failing: EDX:EAX get the memory value. */
    assert_int_equal(run("f0 0f c7 4e 04"), EMU_DONE);
    assert_int_equal(cpu.regs.rax, 0xAAAAAAAA22222222ull);
    assert_int_equal(cpu.regs.rdx, 0xBBBBBBBB11111111ull);
    assert_false(cpu.regs.rflags & 0x40);
    cpu.regs.rip = CODE;
    cpu.regs.rbx = 0x33333333, cpu.regs.rcx = 0x44444444;
    assert_int_equal(run("f0 0f c7 4e 04"), EMU_DONE);
    assert_true(cpu.regs.rflags & 0x40);
    assert_int_equal(get_le64(ram + DATA + 4), 0x4444444433333333ull);
    /* A split across a cache line still compares and stores. */
    cpu.regs.rip = CODE;
    put_le64(ram + DATA + 0x3C, 0x4444444433333333ull);
    cpu.regs.rsi = DATA + 0x38;
    cpu.regs.rax = 0x33333333, cpu.regs.rdx = 0x44444444;
    cpu.regs.rbx = 0x55555555, cpu.regs.rcx = 0x66666666;
    assert_int_equal(run("0f c7 4e 04"), EMU_DONE);
    assert_int_equal(get_le64(ram + DATA + 0x3C), 0x6666666655555555ull);
}

static void test_cmpxchg_mod3_is_not_completed(void **state)
{
    assert_int_equal(run("48 0f c7 c8"), EMU_UNSUPPORTED);
    assert_int_equal(stats.unsupported, 1);
}

/* The completion is atomic against the host CPU touching the same guest
 * memory: two threads add 1 a million times each through cmpxchg16b,
 * one of them through the emulator. */
#define ROUNDS 100000
struct racer {
    volatile uint64_t *p;
};

static void *host_adder(void *arg)
{
    struct racer *r = arg;
    for (int i = 0; i < ROUNDS; i++) {
        for (;;) {
            uint64_t lo = r->p[0], hi = r->p[1];
            bool ok;
            uint64_t nlo = lo + 1, nhi = hi + 1;
            __asm__ volatile("lock cmpxchg16b %1"
                             : "=@ccz"(ok), "+m"(*(volatile uint64_t(*)[2])r->p),
                               "+a"(lo), "+d"(hi)
                             : "b"(nlo), "c"(nhi)
                             : "memory");
            if (ok)
                break;
        }
    }
    return NULL;
}

static void test_cmpxchg16b_is_atomic(void **state)
{
    struct racer r = {.p = (volatile uint64_t *)(void *)(ram + DATA)};
    pthread_t t;
    set_pair(DATA, 0, 0);
    memcpy(ram + CODE, "\xf0\x48\x0f\xc7\x0f", 5);
    assert_int_equal(pthread_create(&t, NULL, host_adder, &r), 0);
    for (int i = 0; i < ROUNDS; i++) {
        cpu.regs.rax = get_le64(ram + DATA);
        cpu.regs.rdx = cpu.regs.rax;
        for (;;) {
            cpu.regs.rip = CODE;
            cpu.regs.rdi = DATA;
            cpu.regs.rbx = cpu.regs.rax + 1;
            cpu.regs.rcx = cpu.regs.rdx + 1;
            struct kvm_run run_exit = failure_exit();
            assert_int_equal(emu_handle_failure(&fake_ops, &cpu, &mem,
                                                &run_exit, NULL, diag,
                                                sizeof(diag)),
                             EMU_DONE);
            if (cpu.regs.rflags & 0x40)
                break;
        }
    }
    pthread_join(t, NULL);
    assert_int_equal(get_le64(ram + DATA), 2 * ROUNDS);
    assert_int_equal(get_le64(ram + DATA + 8), 2 * ROUNDS);
}

/* ---- the XSAVE family --------------------------------------------------- */

static void all_components(void)
{
    cpu.regs.rax = 0xFFFFFFFF;
    cpu.regs.rdx = 0xFFFFFFFF;
}

static void test_xsave_xrstor_standard(void **state)
{
    static uint8_t before[4096];
    memcpy(before, cpu.xsave, sizeof(before));
    memset(ram + DATA, 0xEE, 0x1000);
    put_le64(ram + DATA + 512, 0x200); /* kept: not in RFBM */
    cpu.regs.rdi = DATA;
    all_components();
    assert_int_equal(run("48 0f ae 27"), EMU_DONE); /* xsave64 [rdi] */
    assert_int_equal(cpu.regs.rip, CODE + 4);
    assert_memory_equal(ram + DATA, before, 416);
    assert_int_equal(get_le64(ram + DATA + 512), 0x207);
    put_le64(ram + DATA + 512, 0x7);
    assert_int_equal(ram[DATA + 520], 0xEE); /* XCOMP_BV not written */
    assert_memory_equal(ram + DATA + 576, before + 576, 256);
    assert_int_equal(ram[DATA + 832], 0xEE);
    memset(ram + DATA + 520, 0, 56);
    /* Scramble the vCPU state, then restore it from memory. */
    memset(cpu.xsave, 0x5A, 832);
    put_le32(cpu.xsave + 28, 0xFFFF);
    put_le64(cpu.xsave + 512, 0);
    cpu.regs.rip = CODE;
    assert_int_equal(run("48 0f ae 2f"), EMU_DONE); /* xrstor64 [rdi] */
    assert_memory_equal(cpu.xsave, before, 416);
    assert_memory_equal(cpu.xsave + 576, before + 576, 256);
    assert_int_equal(get_le64(cpu.xsave + 512), 0x7);
    assert_int_equal(cpu.set_xsave, 1);
    assert_int_equal(stats.completed[X86_OP_XSAVE], 1);
    assert_int_equal(stats.completed[X86_OP_XRSTOR], 1);
}

static void test_xsavec_and_xrstor_compacted(void **state)
{
    static uint8_t before[4096];
    cpu.xcr0 = 0xE7;
    put_le64(cpu.xsave + 512, 0x5); /* SSE and AVX-512 not in use */
    memset(cpu.xsave + 160, 0, 256);
    memcpy(before, cpu.xsave, sizeof(before));
    memset(ram + DATA, 0, 0x1000);
    cpu.regs.rbx = DATA + 0x40;
    all_components();
    assert_int_equal(run("48 0f c7 63 c0"), EMU_DONE); /* xsavec64 [rbx-64] */
    assert_int_equal(get_le64(ram + DATA + 512), 0x5);
    assert_int_equal(get_le64(ram + DATA + 520), 0x80000000000000E7ull);
    assert_memory_equal(ram + DATA, before, 24);
    assert_memory_equal(ram + DATA + 576, before + 576, 256);
    assert_int_equal(ram[DATA + 160], 0); /* SSE not stored */
    memset(cpu.xsave, 0x5A, 2688);
    put_le32(cpu.xsave + 28, 0xFFFF);
    put_le64(cpu.xsave + 512, 0xE7);
    memset(cpu.xsave + 520, 0, 56);
    cpu.regs.rip = CODE;
    assert_int_equal(run("48 0f ae 6b c0"), EMU_DONE); /* xrstor64 [rbx-64] */
    assert_memory_equal(cpu.xsave, before, 24);
    assert_int_equal(get_le32(cpu.xsave + 24), 0x1F80); /* SSE init */
    for (unsigned i = 160; i < 416; i++)
        assert_int_equal(cpu.xsave[i], 0);
    assert_memory_equal(cpu.xsave + 576, before + 576, 256);
    for (unsigned i = 1088; i < 2688; i++)
        assert_int_equal(cpu.xsave[i], 0); /* AVX-512: init */
    assert_int_equal(get_le64(cpu.xsave + 512), 0x5);
}

static void test_xsaves_xrstors(void **state)
{
    static uint8_t before[4096];
    memcpy(before, cpu.xsave, sizeof(before));
    cpu.regs.rdi = DATA;
    cpu.regs.rax = 0x6, cpu.regs.rdx = 0; /* SSE and AVX only */
    assert_int_equal(run("48 0f c7 2f"), EMU_DONE); /* xsaves64 */
    assert_int_equal(get_le64(ram + DATA + 520), 0x8000000000000006ull);
    assert_int_equal(get_le64(ram + DATA + 512), 0x6);
    assert_int_equal(ram[DATA], 0); /* x87 not requested */
    memset(cpu.xsave + 160, 0x5A, 256);
    cpu.regs.rip = CODE;
    assert_int_equal(run("48 0f c7 1f"), EMU_DONE); /* xrstors64 */
    assert_memory_equal(cpu.xsave, before, 832);
    /* Both are CPL 0 only. */
    user_mode();
    cpu.regs.rip = CODE;
    assert_int_equal(run("48 0f c7 2f"), EMU_FAULT);
    assert_exception(13, true, 0);
    /* XRSTORS refuses the standard form. */
    cpu.sregs.ss.dpl = cpu.sregs.cs.dpl = 0;
    put_le64(ram + DATA + 520, 0);
    assert_int_equal(run("48 0f c7 1f"), EMU_FAULT);
    assert_exception(13, true, 0);
}

static void test_xrstor_init_components(void **state)
{
    memset(ram + DATA, 0x33, 1024);
    put_le32(ram + DATA + 24, 0x1F80);
    memset(ram + DATA + 512, 0, 64);
    put_le64(ram + DATA + 512, 0x1); /* only x87 in the area */
    cpu.regs.rdi = DATA;
    all_components();
    assert_int_equal(run("0f ae 2f"), EMU_DONE); /* xrstor [rdi] */
    assert_int_equal(cpu.xsave[0], 0x33);
    assert_int_equal(cpu.xsave[160], 0);
    assert_int_equal(cpu.xsave[576], 0);
    assert_int_equal(get_le64(cpu.xsave + 512), 0x1);
    /* The 32-bit form keeps only the low half of FIP. */
    assert_int_equal(get_le64(cpu.xsave + 8), 0x33333333);
}

static void test_xsave_faults(void **state)
{
    cpu.regs.rdi = DATA + 0x20; /* not 64-byte aligned */
    all_components();
    assert_int_equal(run("0f ae 27"), EMU_FAULT);
    assert_exception(13, true, 0);
    cpu.regs.rdi = DATA;
    cpu.sregs.cr4 &= ~(1ull << 18); /* OSXSAVE */
    assert_int_equal(run("0f ae 27"), EMU_FAULT);
    assert_exception(6, false, 0);
    cpu.sregs.cr4 |= 1ull << 18;
    cpu.sregs.cr0 |= 8; /* TS */
    assert_int_equal(run("0f ae 2f"), EMU_FAULT);
    assert_exception(7, false, 0);
    cpu.sregs.cr0 &= ~8ull;
    assert_int_equal(run("f0 0f ae 27"), EMU_FAULT); /* LOCK */
    assert_exception(6, false, 0);
    /* An invalid header: XSTATE_BV beyond XCR0. */
    memset(ram + DATA + 512, 0, 64);
    put_le64(ram + DATA + 512, 0x20);
    assert_int_equal(run("0f ae 2f"), EMU_FAULT);
    assert_exception(13, true, 0);
    assert_int_equal(cpu.set_xsave, 0);
    assert_int_equal(cpu.regs.rip, CODE);
}

static void test_xsave_page_fault_writes_nothing(void **state)
{
    uint64_t area = DATA + 0x1FC0; /* the area crosses into DATA+0x2000 */
    memset(ram + area, 0xEE, 64);
    set_pte(DATA + 0x2000, 0);
    cpu.regs.rdi = area;
    all_components();
    assert_int_equal(run("0f ae 27"), EMU_FAULT);
    assert_exception(14, true, 0x2);
    /* Some byte of the missing page (the order of accesses inside an
     * XSAVE is not architectural). */
    assert_true(cpu.sregs.cr2 >= DATA + 0x2000 && cpu.sregs.cr2 < DATA + 0x3000);
    assert_int_equal(ram[area], 0xEE);
    /* XRSTOR reads: the fault is a read fault. */
    set_pte(DATA + 0x2000, PTE_P | PTE_RW);
    memset(ram + area + 512, 0, 64);
    put_le64(ram + area + 512, 0x4);
    set_pte(DATA + 0x2000, 0);
    assert_int_equal(run("0f ae 2f"), EMU_FAULT);
    assert_exception(14, true, 0x0);
}

/* ---- xgetbv, xsetbv ------------------------------------------------------ */

static void test_xgetbv_xsetbv(void **state)
{
    cpu.xcr0 = 0x7;
    put_le64(cpu.xsave + 512, 0x5);
    cpu.regs.rcx = 0;
    cpu.regs.rax = cpu.regs.rdx = 0xFFFFFFFFFFFFFFFFull;
    assert_int_equal(run("0f 01 d0"), EMU_DONE);
    assert_int_equal(cpu.regs.rax, 0x7);
    assert_int_equal(cpu.regs.rdx, 0);
    cpu.regs.rcx = 1;
    cpu.regs.rip = CODE;
    assert_int_equal(run("0f 01 d0"), EMU_DONE);
    assert_int_equal(cpu.regs.rax, 0x5); /* XCR0 & XINUSE */
    cpu.regs.rcx = 2;
    cpu.regs.rip = CODE;
    assert_int_equal(run("0f 01 d0"), EMU_FAULT);
    assert_exception(13, true, 0);
    cpu.regs.rcx = 0, cpu.regs.rax = 0xE7, cpu.regs.rdx = 0;
    assert_int_equal(run("0f 01 d1"), EMU_DONE);
    assert_int_equal(cpu.xcr0, 0xE7);
    cpu.regs.rip = CODE;
    cpu.regs.rax = 0x5; /* AVX without SSE */
    assert_int_equal(run("0f 01 d1"), EMU_FAULT);
    assert_exception(13, true, 0);
    assert_int_equal(cpu.xcr0, 0xE7);
    cpu.regs.rax = 0x3;
    user_mode();
    assert_int_equal(run("0f 01 d1"), EMU_FAULT);
    assert_exception(13, true, 0);
    assert_int_equal(cpu.xcr0, 0xE7);
}

/* ---- the others ------------------------------------------------------------ */

static void test_rdpid_rdtscp(void **state)
{
    cpu.tsc_aux = 0x1234;
    cpu.tsc = 0x1122334455667788ull;
    cpu.regs.r9 = 0xFFFFFFFFFFFFFFFFull;
    assert_int_equal(run("f3 41 0f c7 f9"), EMU_DONE); /* rdpid r9 */
    assert_int_equal(cpu.regs.r9, 0x1234);
    cpu.regs.rip = CODE;
    assert_int_equal(run("0f 01 f9"), EMU_DONE);
    assert_int_equal(cpu.regs.rax, 0x55667788);
    assert_int_equal(cpu.regs.rdx, 0x11223344);
    assert_int_equal(cpu.regs.rcx, 0x1234);
}

static void test_stac_clac(void **state)
{
    assert_int_equal(run("0f 01 cb"), EMU_DONE);
    assert_true(cpu.regs.rflags & (1u << 18));
    cpu.regs.rip = CODE;
    assert_int_equal(run("0f 01 ca"), EMU_DONE);
    assert_false(cpu.regs.rflags & (1u << 18));
    cpu.regs.rip = CODE;
    user_mode();
    assert_int_equal(run("0f 01 cb"), EMU_FAULT);
    assert_exception(6, false, 0);
}

static void test_popcnt(void **state)
{
    cpu.regs.rdi = 0xF0F0F0F0F0F0F0F0ull;
    cpu.regs.rax = 0xFFFFFFFFFFFFFFFFull;
    cpu.regs.rflags |= 0x8D5; /* CF PF AF ZF SF OF */
    assert_int_equal(run("f3 48 0f b8 c7"), EMU_DONE); /* popcnt rax, rdi */
    assert_int_equal(cpu.regs.rax, 32);
    assert_int_equal(cpu.regs.rflags & 0x8D5, 0);
    put_le32(ram + DATA, 0);
    cpu.regs.rsi = DATA;
    cpu.regs.rip = CODE;
    assert_int_equal(run("f3 0f b8 06"), EMU_DONE); /* popcnt eax, [rsi] */
    assert_int_equal(cpu.regs.rax, 0);
    assert_int_equal(cpu.regs.rflags & 0x8D5, 0x40);
    cpu.regs.rip = CODE;
    cpu.regs.rax = 0xFFFF0000FFFF0000ull;
    cpu.regs.rcx = 0x7;
    assert_int_equal(run("66 f3 0f b8 c1"), EMU_DONE); /* popcnt ax, cx */
    assert_int_equal(cpu.regs.rax, 0xFFFF0000FFFF0003ull);
}

/* LSL/LAR as Linux uses them: a ring-3 data segment whose limit holds
 * the CPU and node number (GDT entry 15, selector 0x7B). */
static void test_lsl_lar(void **state)
{
    uint64_t gdt[16] = {0, 0x00AF9B000000FFFFull, 0x00CF93000000FFFFull};
    gdt[15] = 0x0040F50000001003ull; /* limit 0x1003, DPL 3, expand-down */
    gdt[4] = 0x00CF93000000FFFFull;  /* DPL 0 data: hidden at CPL 3 */
    memcpy(ram + 0x8000, gdt, sizeof(gdt));
    cpu.sregs.gdt.base = 0x8000;
    cpu.sregs.gdt.limit = sizeof(gdt) - 1;
    cpu.regs.rax = 0x7B;
    assert_int_equal(run("48 0f 03 c0"), EMU_DONE); /* lsl rax, ax */
    assert_int_equal(cpu.regs.rax, 0x1003);
    assert_true(cpu.regs.rflags & 0x40);
    assert_int_equal(cpu.regs.rip, CODE + 4);
    assert_no_exception();
    assert_int_equal(stats.completed[X86_OP_LSL], 1);
    /* G=1 scales the limit; LAR gives the access rights. */
    cpu.regs.rip = CODE;
    cpu.regs.rcx = 0x10;
    assert_int_equal(run("0f 03 d1"), EMU_DONE); /* lsl edx, ecx */
    assert_int_equal(cpu.regs.rdx, 0xFFFFFFFF);
    cpu.regs.rip = CODE;
    assert_int_equal(run("0f 02 d1"), EMU_DONE); /* lar edx, ecx */
    assert_int_equal(cpu.regs.rdx, 0x00CF9300);
    /* Null, beyond the limit, too privileged: ZF clear, dest unchanged. */
    const uint16_t hidden[] = {0, 0x80, 0x7F8};
    for (unsigned i = 0; i < 3; i++) {
        cpu.regs.rip = CODE;
        cpu.regs.rcx = hidden[i];
        cpu.regs.rdx = 0x55;
        assert_int_equal(run("0f 03 d1"), EMU_DONE);
        assert_int_equal(cpu.regs.rdx, 0x55);
        assert_false(cpu.regs.rflags & 0x40);
    }
    user_mode(); /* the GDT's page stays supervisor-only: read as ring 0 */
    cpu.regs.rip = CODE;
    cpu.regs.rcx = 0x23; /* entry 4, DPL 0 */
    assert_int_equal(run("0f 03 d1"), EMU_DONE);
    assert_false(cpu.regs.rflags & 0x40);
    cpu.regs.rip = CODE;
    cpu.regs.rcx = 0x7B;
    assert_int_equal(run("0f 03 d1"), EMU_DONE);
    assert_int_equal(cpu.regs.rdx, 0x1003);
    assert_true(cpu.regs.rflags & 0x40);
}

static void test_fsgsbase(void **state)
{
    cpu.sregs.cr4 |= 1ull << 16;
    cpu.sregs.fs.base = 0xFFFF888000001000ull;
    assert_int_equal(run("f3 48 0f ae c0"), EMU_DONE); /* rdfsbase rax */
    assert_int_equal(cpu.regs.rax, 0xFFFF888000001000ull);
    cpu.regs.rip = CODE;
    cpu.regs.rdi = 0x7FFF00001000ull;
    assert_int_equal(run("f3 48 0f ae df"), EMU_DONE); /* wrgsbase rdi */
    assert_int_equal(cpu.sregs.gs.base, 0x7FFF00001000ull);
    cpu.regs.rip = CODE;
    cpu.regs.rdi = 0x0000800000000000ull;
    assert_int_equal(run("f3 48 0f ae df"), EMU_FAULT);
    assert_exception(13, true, 0);
    cpu.sregs.cr4 &= ~(1ull << 16);
    assert_int_equal(run("f3 48 0f ae c0"), EMU_FAULT);
    assert_exception(6, false, 0);
}

static void test_ldmxcsr_stmxcsr(void **state)
{
    put_le32(ram + DATA, 0x9FC0);
    cpu.regs.rsp = DATA;
    assert_int_equal(run("0f ae 14 24"), EMU_DONE); /* ldmxcsr [rsp] */
    assert_int_equal(get_le32(cpu.xsave + 24), 0x9FC0);
    assert_true(cpu.xsave[512] & 2);
    cpu.regs.rip = CODE;
    assert_int_equal(run("0f ae 5c 24 08"), EMU_DONE); /* stmxcsr [rsp+8] */
    assert_int_equal(get_le32(ram + DATA + 8), 0x9FC0);
    cpu.regs.rip = CODE;
    put_le32(ram + DATA, 0x10000);
    assert_int_equal(run("0f ae 14 24"), EMU_FAULT);
    assert_exception(13, true, 0);
}

static void test_fwait(void **state)
{
    put_le16(cpu.xsave + 2, 0x3800); /* FSW: TOP = 7, no exception */
    assert_int_equal(run("9b"), EMU_DONE);
    assert_no_exception();
    cpu.regs.rip = CODE;
    put_le16(cpu.xsave + 2, 0x80); /* FSW.ES */
    assert_int_equal(run("9b"), EMU_FAULT);
    assert_exception(16, false, 0);
    cpu.sregs.cr0 |= 8; /* TS with MP */
    assert_int_equal(run("9b"), EMU_FAULT);
    assert_exception(7, false, 0);
}

/* ---- vector instructions run on the host ---------------------------------- */

static void fill_bytes(uint64_t gpa, uint8_t first, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        ram[gpa + i] = (uint8_t)(first + i);
}

static void test_native_vector_load_store(void **state)
{
    fill_bytes(DATA, 0x40, 32);
    cpu.regs.rdi = DATA;
    assert_int_equal(run("c5 fa 6f 07"), EMU_DONE); /* vmovdqu xmm0, [rdi] */
    assert_int_equal(cpu.regs.rip, CODE + 4);
    assert_memory_equal(cpu.xsave + 160, ram + DATA, 16);
    for (unsigned i = 576; i < 592; i++)
        assert_int_equal(cpu.xsave[i], 0); /* VEX.128 clears YMM0[255:128] */
    assert_int_equal(stats.completed[X86_OP_NATIVE], 1);
    /* vmovdqu [rsi+0x20], xmm1 (XMM1 is all 0x11) */
    cpu.regs.rsi = DATA;
    cpu.regs.rip = CODE;
    assert_int_equal(run("c5 fa 7f 4e 20"), EMU_DONE);
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(ram[DATA + 0x20 + i], 0x11);
    assert_int_equal(ram[DATA + 0x30], 0);
    assert_int_equal(ram[DATA + 0x1F], 0x40 + 0x1F);
    /* Guest registers other than the borrowed base are unchanged. */
    assert_int_equal(cpu.regs.rsi, DATA);
    assert_int_equal(cpu.regs.rbx, 0);
}

static void test_native_legacy_sse(void **state)
{
    for (unsigned i = 0; i < 4; i++)
        put_le32(ram + DATA + 16 + 4 * i, i + 1);
    cpu.regs.rdi = DATA;
    cpu.regs.rbx = 0x1234; /* the base the re-encoding would prefer */
    assert_int_equal(run("66 0f ef c0"), EMU_DONE); /* pxor xmm0, xmm0 */
    for (unsigned i = 160; i < 176; i++)
        assert_int_equal(cpu.xsave[i], 0);
    cpu.regs.rip = CODE;
    assert_int_equal(run("66 0f fe 47 10"), EMU_DONE); /* paddd xmm0, [rdi+16] */
    assert_int_equal(get_le32(cpu.xsave + 160), 1);
    assert_int_equal(get_le32(cpu.xsave + 172), 4);
    assert_int_equal(cpu.regs.rbx, 0x1234);
    assert_int_equal(cpu.regs.rip, CODE + 5);
}

/* CRC32 as the instruction computes it: CRC-32C, no inversion. */
static uint32_t crc32c_u64(uint32_t crc, uint64_t v)
{
    for (unsigned i = 0; i < 64; i++) {
        uint32_t bit = (crc ^ (uint32_t)(v >> i)) & 1;
        crc = (crc >> 1) ^ (bit ? 0x82F63B78u : 0);
    }
    return crc;
}

static void test_native_gpr_and_flags(void **state)
{
    /* KVM with KVM_CAP_EXIT_ON_EMULATION_FAILURE queues no #UD. */
    cpu.events.exception.pending = 0;
    cpu.regs.rax = 0;
    cpu.regs.rdi = 0x0123456789ABCDEFull;
    assert_int_equal(run("f2 48 0f 38 f1 c7"), EMU_DONE); /* crc32 rax, rdi */
    assert_int_equal(cpu.regs.rax, crc32c_u64(0, 0x0123456789ABCDEFull));
    /* On general registers only: no XCR0, no XSAVE state fetched; no
     * event to drop or raise, so none written either. */
    assert_int_equal(cpu.get_xsave + cpu.get_xcrs + cpu.set_events, 0);
    /* shrx rax, rbx, rcx then bzhi rdx, rbx, rcx: one batch */
    cpu.regs.rip = CODE;
    cpu.regs.rbx = 0xF000000000000F0Full;
    cpu.regs.rcx = 8;
    assert_int_equal(run("c4 e2 f3 f7 c3 c4 e2 f0 f5 d3"), EMU_DONE);
    assert_int_equal(cpu.regs.rax, 0x00F000000000000Full);
    assert_int_equal(cpu.regs.rdx, 0x0Full);
    assert_int_equal(cpu.regs.rip, CODE + 10);
    assert_int_equal(cpu.get_xsave + cpu.get_xcrs, 0);
    /* ptest xmm2, xmm2 with xmm2 = 0 sets ZF and CF */
    memset(cpu.xsave + 160 + 32, 0, 16);
    cpu.regs.rip = CODE;
    cpu.regs.rflags = 0x2;
    assert_int_equal(run("66 0f 38 17 d2"), EMU_DONE);
    assert_int_equal(cpu.regs.rflags & 0x8D5, 0x41);
    /* vmovq xmm3, rsp: the guest's RSP is live in the instruction */
    cpu.regs.rip = CODE;
    cpu.regs.rsp = 0xFFFFC90000012345ull;
    assert_int_equal(run("c4 e1 f9 6e dc"), EMU_DONE);
    assert_int_equal(get_le64(cpu.xsave + 160 + 48), 0xFFFFC90000012345ull);
    assert_int_equal(cpu.regs.rsp, 0xFFFFC90000012345ull);
}

static void test_native_faults(void **state)
{
    cpu.regs.rdi = DATA + 8;
    assert_int_equal(run("0f 28 07"), EMU_FAULT); /* movaps, misaligned */
    assert_exception(13, true, 0);
    assert_int_equal(cpu.regs.rip, CODE);
    /* A load from a page that is not present. */
    set_pte(DATA, 0);
    cpu.regs.rdi = DATA + 0x40;
    assert_int_equal(run("c5 fa 6f 07"), EMU_FAULT);
    assert_exception(14, true, 0x0);
    assert_int_equal(cpu.sregs.cr2, DATA + 0x40);
    /* A store to a read-only page. */
    set_pte(DATA, PTE_P);
    assert_int_equal(run("c5 fa 7f 0f"), EMU_FAULT);
    assert_exception(14, true, 0x3);
    assert_int_equal(ram[DATA + 0x40], 0);
    /* 32 bytes from 16 before the end of a page: the next page faults. */
    set_pte(DATA, PTE_P | PTE_RW);
    set_pte(DATA + 0x1000, 0);
    cpu.regs.rdi = DATA + 0xFF0;
    assert_int_equal(run("c5 fe 6f 07"), EMU_FAULT); /* vmovdqu ymm0 */
    assert_exception(14, true, 0x0);
    assert_int_equal(cpu.sregs.cr2, DATA + 0x1000);
    /* ... while 16 bytes there are fine. */
    assert_int_equal(run("c5 fa 6f 07"), EMU_DONE);
    /* A store across the boundary into a writable page. */
    set_pte(DATA + 0x1000, PTE_P | PTE_RW);
    cpu.regs.rip = CODE;
    assert_int_equal(run("c5 fe 7f 0f"), EMU_DONE); /* vmovdqu [rdi], ymm1 */
    assert_int_equal(ram[DATA + 0xFF0], 0x11);
    assert_int_equal(ram[DATA + 0x100F], 0x22); /* YMM1 upper half */
    assert_int_equal(ram[DATA + 0x1010], 0);
}

static void test_native_checks(void **state)
{
    cpu.regs.rdi = DATA;
    cpu.sregs.cr4 &= ~(1ull << 18);
    assert_int_equal(run("c5 fa 6f 07"), EMU_FAULT);
    assert_exception(6, false, 0);
    cpu.sregs.cr4 |= 1ull << 18;
    cpu.sregs.cr0 |= 8;
    assert_int_equal(run("66 0f ef c0"), EMU_FAULT);
    assert_exception(7, false, 0);
    cpu.sregs.cr0 &= ~8ull;
    cpu.xcr0 = 0x3; /* AVX not enabled */
    assert_int_equal(run("c5 fa 6f 07"), EMU_FAULT);
    assert_exception(6, false, 0);
    /* Vector-indexed and AMX forms are not run. */
    cpu.xcr0 = 0x7;
    assert_int_equal(run("c4 e2 79 90 04 87"), EMU_UNSUPPORTED);
    /* An SSE floating-point exception unmasked in MXCSR: #XM. */
    put_le32(cpu.xsave + 24, 0x1F80 & ~0x200); /* unmask divide-by-zero */
    memset(cpu.xsave + 160, 0, 32);            /* xmm0 = xmm1 = 0 */
    put_le32(cpu.xsave + 160, 0x3F800000);     /* xmm0[0] = 1.0f */
    assert_int_equal(run("f3 0f 5e c1"), EMU_FAULT); /* divss xmm0, xmm1 */
    assert_exception(19, false, 0);
}

/* Vector instructions in a row complete in one exit; one that faults
 * ends the batch without raising anything. */
static void test_native_batch(void **state)
{
    fill_bytes(DATA, 1, 16);
    cpu.regs.rdi = DATA;
    /* vmovdqu xmm0, [rdi]; vpaddd xmm0, xmm0, xmm0; vmovdqu [rdi+16], xmm0 */
    assert_int_equal(run("c5 fa 6f 07 c5 f9 fe c0 c5 fa 7f 47 10"), EMU_DONE);
    assert_int_equal(cpu.regs.rip, CODE + 13);
    for (unsigned i = 0; i < 16; i += 4)
        assert_int_equal(get_le32(ram + DATA + 16 + i),
                         2 * get_le32(ram + DATA + i));
    assert_int_equal(stats.completed[X86_OP_NATIVE], 3);
    /* the second one loads from a page that is not present */
    set_pte(DATA + 0x1000, 0);
    cpu.regs.rip = CODE;
    cpu.regs.rsi = DATA + 0x1000;
    assert_int_equal(run("c5 fa 6f 07 c5 fa 6f 0e c5 fa 7f 47 10"), EMU_DONE);
    assert_int_equal(cpu.regs.rip, CODE + 4);
    assert_no_exception();
    /* run again from there, it faults as the guest expects */
    assert_int_equal(run_at(CODE + 4, "c5 fa 6f 0e"), EMU_FAULT);
    assert_exception(14, true, 0);
    assert_int_equal(cpu.sregs.cr2, DATA + 0x1000);
}

/* A store whose operand reaches into the next page, then one that does
 * not: the second page is no longer the instruction's, and its bounce
 * copy is inaccessible again; only the first page goes back. */
static void test_native_batch_page_cross_then_not(void **state)
{
    memset(ram + DATA, 0x55, 0x2000);
    cpu.regs.rdi = DATA;
    /* vmovdqu [rdi+0xff8], xmm0; vmovdqu [rdi+0x10], xmm0 */
    assert_int_equal(run("c5 fa 7f 87 f8 0f 00 00 c5 fa 7f 47 10"), EMU_DONE);
    assert_int_equal(cpu.regs.rip, CODE + 13);
    assert_no_exception();
    assert_int_equal(stats.completed[X86_OP_NATIVE], 2);
    assert_memory_equal(ram + DATA + 0xff8, ram + DATA + 0x10, 16);
    assert_int_equal(ram[DATA + 0x1008], 0x55);
}

/* A job for the executor with the fake vCPU's XSAVE image copied into img
 * (4096 bytes), components mask of it restored, and a plain stack pointer. */
static void native_job_init(struct emu_native_job *job, uint8_t *img,
                            uint64_t mask)
{
    memcpy(img, cpu.xsave, 4096);
    memset(job, 0, sizeof(*job));
    job->xsave = img;
    job->xsave_len = 4096;
    job->xsave_mask = emu_native_xsave_mask() & mask;
    job->gpr[X86_RSP] = 0x1000;
}

/* If the CPU decodes the slot differently from our decoder, the
 * single-step trap comes from the wrong place: nothing is kept. */
static void test_native_length_guard(void **state)
{
    struct emu_native_job job;
    uint8_t img[4096];
    native_job_init(&job, img, 0x7);
    /* pxor xmm0, xmm0 cut short: the CPU takes a padding byte as ModRM */
    memcpy(job.code, "\x66\x0f\xef\xc0", 4);
    job.code_len = 3;
    assert_int_equal(emu_native_exec(executor, &job), 0);
    assert_int_equal(job.signo, SIGTRAP);
    /* xorps xmm0, xmm0 said to be one byte longer than it is */
    memcpy(job.code, "\x0f\x57\xc0\x90", 4);
    job.code_len = 4;
    assert_int_equal(emu_native_exec(executor, &job), 0);
    assert_int_equal(job.signo, SIGTRAP);
    /* the right length completes */
    job.code_len = 3;
    assert_int_equal(emu_native_exec(executor, &job), 0);
    assert_int_equal(job.signo, 0);
    assert_int_equal(job.gpr[X86_RSP], 0x1000);
}

/* The slot keeps an instruction between executions: one of the same
 * length but other bytes must still replace it. */
static void test_native_slot_reuse(void **state)
{
    struct emu_native_job job;
    uint8_t img[4096];
    memcpy(img, cpu.xsave, sizeof(img));
    static const struct {
        const char *code;
        uint64_t want;
    } seq[] = {
        {"\xc4\xe2\xf3\xf7\xc3", 0x0F00000000000000ull}, /* shrx */
        {"\xc4\xe2\xf3\xf7\xc3", 0x0F00000000000000ull},
        {"\xc4\xe2\xf2\xf7\xc3", 0xFFF0000000000000ull}, /* sarx */
        {"\xc4\xe2\xf3\xf7\xc3", 0x0F00000000000000ull},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(seq); i++) {
        memset(&job, 0, sizeof(job));
        job.xsave = img;
        job.xsave_len = sizeof(img);
        job.xsave_mask = emu_native_xsave_mask() & 0x3;
        job.gpr[X86_RSP] = 0x1000;
        job.gpr[X86_RBX] = i == 2 ? 0xFF00000000000000ull
                                  : 0xF000000000000000ull;
        job.gpr[X86_RCX] = 4;
        memcpy(job.code, seq[i].code, 5);
        job.code_len = 5;
        assert_int_equal(emu_native_exec(executor, &job), 0);
        assert_int_equal(job.signo, 0);
        assert_int_equal(job.gpr[X86_RAX], seq[i].want);
    }
}

/* A fault of kvmpc's own, outside the executor, still kills it (the
 * default action), after one line on stderr that says where. */
static void test_native_fatal_report(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    volatile int *unmapped = mmap(NULL, 4096, PROT_NONE,
                                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(unmapped != MAP_FAILED);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        /* As in kvmpc: no handler of anyone else's behind ours. */
        signal(SIGSEGV, SIG_DFL);
        struct emu_native_job job;
        uint8_t img[4096];
        native_job_init(&job, img, 0x3);
        memcpy(job.code, "\x48\x01\xd8", 3); /* add rax, rbx */
        job.code_len = 3;
        if (emu_native_exec(executor, &job) != 0 || job.signo != 0)
            _exit(3);
        *unmapped = 1;
        _exit(4);
    }
    close(fds[1]);
    char out[256] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof(out) - 1 &&
           (r = read(fds[0], out + got, sizeof(out) - 1 - got)) > 0)
        got += (size_t)r;
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
    munmap((void *)unmapped, 4096);
    char where[48];
    snprintf(where, sizeof(where), ", address %p,", (void *)unmapped);
    assert_non_null(strstr(out, "kvmpc: fatal signal 0xb at ip 0x"));
    assert_non_null(strstr(out, where));
}

static bool host_has_avx512f(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return false;
    return (b >> 16) & 1;
}

static void test_native_avx512(void **state)
{
    cpu.xcr0 = 0xE7;
    put_le64(cpu.xsave + 512, 0x7);
    fill_bytes(DATA, 0, 64);
    cpu.regs.rdi = DATA;
    enum emu_result r = run("62 f1 7c 48 10 07"); /* vmovups zmm0, [rdi] */
    if (!host_has_avx512f()) {
        /* The host CPU decides, as the guest's hardware would. */
        assert_int_equal(r, EMU_FAULT);
        assert_exception(6, false, 0);
        return;
    }
    assert_int_equal(r, EMU_DONE);
    assert_memory_equal(cpu.xsave + 160, ram + DATA, 16);
    assert_memory_equal(cpu.xsave + 576, ram + DATA + 16, 16);
    assert_memory_equal(cpu.xsave + 1152, ram + DATA + 32, 32); /* ZMM_Hi256 */
    assert_true(get_le64(cpu.xsave + 512) & 0x40);
    /* vmovdqu64 [rdi+0x40], zmm0: disp8 1 scaled by 64 */
    cpu.regs.rip = CODE;
    assert_int_equal(run("62 f1 fe 48 7f 47 01"), EMU_DONE);
    assert_memory_equal(ram + DATA + 64, ram + DATA, 64);
    /* vmovd [rdi-8], xmm0 (EVEX, tuple1 scalar: disp8 -2 scaled by 4) */
    cpu.regs.rip = CODE;
    memset(ram + DATA + 0x100, 0xEE, 16);
    cpu.regs.rdi = DATA + 0x108;
    assert_int_equal(run("62 f1 7d 08 7e 47 fe"), EMU_DONE);
    assert_memory_equal(ram + DATA + 0x100, ram + DATA, 4);
    assert_int_equal(ram[DATA + 0x104], 0xEE);
    /* A masked load with all of k1 clear touches no memory: no fault. */
    set_pte(DATA + 0x3000, 0);
    cpu.regs.rip = CODE;
    cpu.regs.rdi = DATA + 0x3000;
    assert_int_equal(run("62 f1 7c 49 10 07"), EMU_DONE); /* {k1}, k1 = 0 */
}

/* ---- decoding, fetching, diagnostics -------------------------------------- */

static void test_unsupported_diagnostic(void **state)
{
    cpu.regs.rip = 0x10010;
    assert_int_equal(run_at(0x10010, "0f a2"), EMU_UNSUPPORTED);
    print_message("%s\n", diag);
    assert_non_null(strstr(diag, "mode long64"));
    assert_non_null(strstr(diag, "rip 0x10010"));
    assert_non_null(strstr(diag, "bytes [0f a2]"));
    assert_non_null(strstr(diag, "(cpuid)"));
    assert_null(strchr(diag, '\n'));
    assert_int_equal(stats.unsupported, 1);
    assert_int_equal(cpu.set_regs + cpu.set_events, 0);
}

static void test_exit_instruction_bytes(void **state)
{
    struct kvm_run r = failure_exit();
    memcpy(ram + CODE, "\x90\x90", 2); /* memory says something else */
    r.emulation_failure.ndata = 3;
    r.emulation_failure.flags =
        KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
    r.emulation_failure.insn_size = 15;
    memset(r.emulation_failure.insn_bytes, 0x90, 15);
    r.emulation_failure.insn_bytes[0] = 0xCC;
    assert_int_equal(emu_handle_failure(&fake_ops, &cpu, &mem, &r, &stats,
                                        diag, sizeof(diag)),
                     EMU_DONE);
    assert_exception(3, false, 0);
    /* Too few bytes in the exit: the rest comes from memory. */
    cpu.regs.rip = CODE;
    memcpy(ram + CODE, "\x0f\x01\xcb", 3);
    r.emulation_failure.insn_size = 1;
    r.emulation_failure.insn_bytes[0] = 0x0F;
    assert_int_equal(emu_handle_failure(&fake_ops, &cpu, &mem, &r, &stats,
                                        diag, sizeof(diag)),
                     EMU_DONE);
    assert_true(cpu.regs.rflags & (1u << 18));
}

static void test_fetch_faults(void **state)
{
    /* The instruction straddles into a page that is not present. */
    cpu.regs.rip = CODE + 0xFFE;
    set_pte(CODE + 0x1000, 0);
    assert_int_equal(run_at(CODE + 0xFFE, "0f 01"), EMU_FAULT);
    assert_exception(14, true, 0x10); /* instruction fetch, not present */
    assert_int_equal(cpu.sregs.cr2, CODE + 0x1000);
    /* A one-byte instruction at the end of the page needs no more. */
    cpu.regs.rip = CODE + 0xFFF;
    assert_int_equal(run_at(CODE + 0xFFF, "cc"), EMU_DONE);
    /* Non-executable code page. */
    set_pte(CODE, PTE_P | PTE_RW | (1ull << 63));
    cpu.regs.rip = CODE;
    assert_int_equal(run("cc"), EMU_FAULT);
    assert_exception(14, true, 0x11);
    /* Undefined and over-long instructions. */
    set_pte(CODE, PTE_P | PTE_RW);
    set_pte(CODE + 0x1000, PTE_P | PTE_RW);
    assert_int_equal(run("0f 04"), EMU_FAULT);
    assert_exception(6, false, 0);
    assert_int_equal(run("66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 90"),
                     EMU_FAULT);
    assert_exception(13, true, 0);
}

static void test_shadow_cleared_and_other_exits(void **state)
{
    cpu.events.interrupt.shadow = 1;
    assert_int_equal(run("0f 01 ca"), EMU_DONE);
    assert_int_equal(cpu.events.interrupt.shadow, 0);
    struct kvm_run r = failure_exit();
    r.exit_reason = KVM_EXIT_IO;
    assert_int_equal(emu_handle_failure(&fake_ops, &cpu, &mem, &r, NULL, diag,
                                        sizeof(diag)),
                     EMU_UNSUPPORTED);
    assert_non_null(strstr(diag, "not an emulation failure"));
}

static void test_stats_print(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(run("cc"), EMU_DONE);
    cpu.regs.rip = CODE;
    assert_int_equal(run("cc"), EMU_DONE);
    cpu.regs.rdi = DATA + 8;
    cpu.regs.rip = CODE;
    assert_int_equal(run("f0 48 0f c7 0f"), EMU_FAULT);
    assert_int_equal(run("0f 05"), EMU_UNSUPPORTED);
    emu_stats_print(&stats, f);
    fclose(f);
    print_message("%s", buf);
    assert_non_null(strstr(buf, "in userspace:\n  int3             2\n"));
    assert_non_null(strstr(buf, "  cmpxchg16b       0 (+1 raised an exception)\n"));
    assert_non_null(strstr(buf, "not completed: 1\n"));
    free(buf);
}


/* ---- iret (protected mode) ---------------------------------------------- */

#define GDT 0x8000ull
#define STACK 0x9000ull

/* GDT: 0x08 ring-0 code, 0x10 ring-0 data, 0x1B ring-3 code, 0x23 ring-3
 * data, 0x28 a ring-0 data segment used as a bad code selector. */
static void iret_gdt(void)
{
    uint64_t gdt[] = {0, 0x00CF9B000000FFFFull, 0x00CF93000000FFFFull,
                      0x00CFFB000000FFFFull, 0x00CFF3000000FFFFull,
                      0x00CF93000000FFFFull};
    memcpy(ram + GDT, gdt, sizeof(gdt));
    cpu.sregs.gdt.base = GDT;
    cpu.sregs.gdt.limit = sizeof(gdt) - 1;
}

static void push_frame(const uint32_t *words, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        put_le32(ram + STACK + 4 * i, words[i]);
    cpu.regs.rsp = STACK;
}

/* With the run area synced, the KVM ops read the state KVM stored at the
 * exit and mark what they write for the next KVM_RUN, never touching the
 * vCPU file descriptor (here -1: an ioctl would fail). */
static void test_kvm_ops_synced(void **state)
{
    (void)state;
    static struct kvm_run run;
    memset(&run, 0, sizeof(run));
    run.s.regs.regs.rip = 0x1234;
    run.s.regs.sregs.cr3 = 0x5000;
    run.s.regs.events.interrupt.shadow = 1;
    struct emu_kvm_vcpu v = {.vcpu_fd = -1};
    struct kvm_regs r;
    struct kvm_sregs s;
    struct kvm_vcpu_events ev;
    assert_int_equal(emu_kvm_ops.get_regs(&v, &r), -1);  /* not synced */
    v.sync = &run;
    assert_int_equal(emu_kvm_ops.get_regs(&v, &r), 0);
    assert_int_equal(emu_kvm_ops.get_sregs(&v, &s), 0);
    assert_int_equal(emu_kvm_ops.get_events(&v, &ev), 0);
    assert_int_equal(r.rip, 0x1234);
    assert_int_equal(s.cr3, 0x5000);
    assert_int_equal(ev.interrupt.shadow, 1);
    assert_int_equal(run.kvm_dirty_regs, 0);
    r.rip += 3;
    assert_int_equal(emu_kvm_ops.set_regs(&v, &r), 0);
    assert_int_equal(run.kvm_dirty_regs, KVM_SYNC_X86_REGS);
    assert_int_equal(run.s.regs.regs.rip, 0x1237);
    s.cr2 = 0xdead000;
    ev.interrupt.shadow = 0;
    assert_int_equal(emu_kvm_ops.set_sregs(&v, &s), 0);
    assert_int_equal(emu_kvm_ops.set_events(&v, &ev), 0);
    assert_int_equal(run.kvm_dirty_regs, KVM_SYNC_X86_REGS |
                     KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS);
    assert_int_equal(run.s.regs.sregs.cr2, 0xdead000);
    assert_int_equal(run.s.regs.events.interrupt.shadow, 0);
}

static void test_iret_same_privilege(void **state)
{
    prot32_mode();
    iret_gdt();
    cpu.regs.rip = CODE;
    cpu.regs.rflags = 0x2;
    uint32_t frame[] = {0x1234, 0x08, 0x246};
    push_frame(frame, 3);
    assert_int_equal(run("cf"), EMU_DONE);
    assert_no_exception();
    assert_int_equal(cpu.regs.rip, 0x1234);
    assert_int_equal(cpu.regs.rsp, STACK + 12);
    assert_int_equal(cpu.regs.rflags, 0x246);
    assert_int_equal(cpu.sregs.cs.selector, 0x08);
    assert_int_equal(cpu.sregs.cs.db, 1);
    assert_int_equal(cpu.sregs.cs.limit, 0xFFFFFFFF);
    assert_int_equal(stats.completed[X86_OP_IRET], 1);
}

static void test_iret_to_ring3(void **state)
{
    prot32_mode();
    iret_gdt();
    cpu.regs.rip = CODE;
    cpu.regs.rflags = 0x2;
    uint32_t frame[] = {0x400000, 0x1B, 0x3202, 0x7FF0, 0x23};
    push_frame(frame, 5);
    assert_int_equal(run("cf"), EMU_DONE);
    assert_no_exception();
    assert_int_equal(cpu.regs.rip, 0x400000);
    assert_int_equal(cpu.regs.rsp, 0x7FF0);
    assert_int_equal(cpu.sregs.cs.dpl, 3);
    assert_int_equal(cpu.sregs.ss.selector, 0x23);
    assert_int_equal(cpu.sregs.ss.dpl, 3);
    /* IOPL 3 and IF loaded at CPL 0 */
    assert_int_equal(cpu.regs.rflags, 0x3202);
    /* ring-0 data segments are not usable at CPL 3 */
    assert_int_equal(cpu.sregs.ds.selector, 0);
}

static void test_iret_bad_selectors_fault(void **state)
{
    prot32_mode();
    iret_gdt();
    cpu.regs.rip = CODE;
    uint32_t frame[] = {0x1234, 0x28, 0x2}; /* a data segment as CS */
    push_frame(frame, 3);
    assert_int_equal(run("cf"), EMU_FAULT);
    assert_exception(13, true, 0x28);
    assert_int_equal(cpu.regs.rip, CODE);
    cpu.events.exception.injected = 0;
    frame[1] = 0x40; /* beyond the GDT limit */
    push_frame(frame, 3);
    assert_int_equal(run("cf"), EMU_FAULT);
    assert_exception(13, true, 0x40);
    cpu.events.exception.injected = 0;
    uint32_t to_ring3[] = {0x1234, 0x1B, 0x2, 0x7FF0, 0x10}; /* SS DPL 0 */
    push_frame(to_ring3, 5);
    assert_int_equal(run("cf"), EMU_FAULT);
    assert_exception(13, true, 0x10);
    cpu.events.exception.injected = 0;
    /* nested-task returns are left to a diagnostic */
    cpu.regs.rflags |= 1u << 14;
    push_frame(frame, 3);
    assert_int_equal(run("cf"), EMU_UNSUPPORTED);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup(name, setup)
    const struct CMUnitTest tests[] = {
        T(test_int3),
        T(test_int3_real_mode),
        T(test_int1_and_into),
        T(test_cmpxchg16b_success),
        T(test_cmpxchg16b_failure),
        T(test_cmpxchg16b_alignment),
        T(test_cmpxchg16b_page_faults),
        T(test_cmpxchg8b_prot32),
        T(test_cmpxchg_mod3_is_not_completed),
        T(test_cmpxchg16b_is_atomic),
        T(test_xsave_xrstor_standard),
        T(test_xsavec_and_xrstor_compacted),
        T(test_xsaves_xrstors),
        T(test_xrstor_init_components),
        T(test_xsave_faults),
        T(test_xsave_page_fault_writes_nothing),
        T(test_xgetbv_xsetbv),
        T(test_rdpid_rdtscp),
        T(test_stac_clac),
        T(test_popcnt),
        T(test_lsl_lar),
        T(test_fsgsbase),
        T(test_ldmxcsr_stmxcsr),
        T(test_fwait),
        T(test_iret_same_privilege),
        T(test_iret_to_ring3),
        T(test_iret_bad_selectors_fault),
        T(test_native_vector_load_store),
        T(test_native_legacy_sse),
        T(test_native_gpr_and_flags),
        T(test_native_faults),
        T(test_native_checks),
        T(test_native_avx512),
        T(test_native_length_guard),
        T(test_native_slot_reuse),
        T(test_native_fatal_report),
        T(test_native_batch),
        T(test_native_batch_page_cross_then_not),
        T(test_unsupported_diagnostic),
        T(test_exit_instruction_bytes),
        T(test_fetch_faults),
        T(test_shadow_cleared_and_other_exits),
        T(test_stats_print),
        T(test_kvm_ops_synced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

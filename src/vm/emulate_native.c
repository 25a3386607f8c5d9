#include "vm/emulate_native.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "util.h"

/* Layout of the executor mapping: a code page, then data pages that the
 * code reaches RIP-relative, then the bounce pages, then the alternate
 * signal stack. */
enum {
    CODE_OFF = 0,
    DATA_OFF = EMU_NATIVE_PAGE,
    GUEST_XSAVE_OFF = 2 * EMU_NATIVE_PAGE,
    HOST_XSAVE_OFF = 3 * EMU_NATIVE_PAGE,
    BOUNCE_OFF = 4 * EMU_NATIVE_PAGE,
    ALTSTACK_OFF = 6 * EMU_NATIVE_PAGE,
    ALTSTACK_SIZE = 16 * EMU_NATIVE_PAGE,
    /* Inaccessible pages around the probe address: disp8 * 64 reaches
     * 8 KiB either way, plus a 64-byte access. */
    PROBE_OFF = ALTSTACK_OFF + ALTSTACK_SIZE,
    PROBE_SIZE = 6 * EMU_NATIVE_PAGE,
    MAP_SIZE = PROBE_OFF + PROBE_SIZE,
};

/* The data page, as the generated code sees it. */
struct frame {
    uint64_t gpr[16];
    uint64_t rflags;
    uint64_t host_rsp;
    uint64_t mask;
    /* IRETQ frame entering the instruction: RIP, CS, RFLAGS (with TF),
     * RSP (the guest's), SS. */
    uint64_t iret[5];
};

#define RFLAGS_TF 0x100ull

#define SLOT_LEN EMU_NATIVE_MAX_CODE

struct emu_native {
    uint8_t *map;
    unsigned slot_off, exit_off, recover_off, code_end;
    uint64_t slot_end; /* where the single-step trap must come from */
    unsigned slot_len; /* bytes of the instruction in the slot, 0: none */
    pthread_t altstack_thread; /* where the alternate stack is known set */
    bool altstack_known;
    /* Filled by the signal handler. */
    volatile int signo, trapno, in_slot;
    volatile uint64_t error_code, fault_addr;
};

/* ---- code generation ------------------------------------------------ */

struct emitter {
    uint8_t *buf;
    unsigned n;
};

static void put(struct emitter *a, const uint8_t *b, unsigned len)
{
    memcpy(a->buf + a->n, b, len);
    a->n += len;
}

static void put1(struct emitter *a, uint8_t b) { put(a, &b, 1); }

/* A 32-bit RIP-relative displacement to target (an offset in the map);
 * the displacement is the last field of every instruction emitted here. */
static void rip32(struct emitter *a, unsigned target)
{
    int32_t d = (int32_t)target - (int32_t)(a->n + 4);
    put(a, (const uint8_t *)&d, 4);
}

/* op r64 <-> [rip + target]: opcode 0x8B loads, 0x89 stores. */
static void mov_rip(struct emitter *a, uint8_t opcode, unsigned reg,
                    unsigned target)
{
    put1(a, (uint8_t)(0x48 | (reg >= 8 ? 4 : 0)));
    put1(a, opcode);
    put1(a, (uint8_t)(((reg & 7) << 3) | 5));
    rip32(a, target);
}

static void push_pop(struct emitter *a, uint8_t base, unsigned reg)
{
    if (reg >= 8)
        put1(a, 0x41);
    put1(a, (uint8_t)(base + (reg & 7)));
}

/* eax/edx = the XSAVE mask; then xsave64/xrstor64 [rip + target]. */
static void xstate_op(struct emitter *a, uint8_t modrm_reg, unsigned target)
{
    static const uint8_t load_eax[] = {0x8B, 0x05}, load_edx[] = {0x8B, 0x15};
    unsigned mask = DATA_OFF + offsetof(struct frame, mask);
    put(a, load_eax, 2);
    rip32(a, mask);
    put(a, load_edx, 2);
    rip32(a, mask + 4);
    put(a, (const uint8_t[]){0x48, 0x0F, 0xAE}, 3);
    put1(a, (uint8_t)((modrm_reg << 3) | 5));
    rip32(a, target);
}

static const unsigned callee_saved[] = {3, 5, 12, 13, 14, 15};

static void pop_callee_saved_and_return(struct emitter *a)
{
    for (int i = 5; i >= 0; i--)
        push_pop(a, 0x58, callee_saved[i]);
    put1(a, 0xFC); /* cld: the ABI wants DF clear */
    put1(a, 0xC3);
}

/* Saves the host's state, loads the guest's and enters the instruction
 * with IRETQ, which sets RSP and RFLAGS together: TF makes the CPU trap
 * right after that one instruction, wherever the CPU thinks it ends. */
static void gen_entry(struct emitter *a)
{
    unsigned gpr = DATA_OFF + offsetof(struct frame, gpr);
    unsigned host_rsp = DATA_OFF + offsetof(struct frame, host_rsp);
    for (unsigned i = 0; i < 6; i++)
        push_pop(a, 0x50, callee_saved[i]);
    mov_rip(a, 0x89, 4, host_rsp);
    xstate_op(a, 4, HOST_XSAVE_OFF);  /* xsave64 host */
    xstate_op(a, 5, GUEST_XSAVE_OFF); /* xrstor64 guest */
    put(a, (const uint8_t[]){0x48, 0x8D, 0x25}, 3); /* lea rsp, [rip+iret] */
    rip32(a, DATA_OFF + offsetof(struct frame, iret));
    for (unsigned r = 0; r < 16; r++)
        if (r != 4)
            mov_rip(a, 0x8B, r, gpr + 8 * r);
    put(a, (const uint8_t[]){0x48, 0xCF}, 2); /* iretq */
}

static void gen_exit(struct emitter *a)
{
    unsigned gpr = DATA_OFF + offsetof(struct frame, gpr);
    unsigned host_rsp = DATA_OFF + offsetof(struct frame, host_rsp);
    mov_rip(a, 0x89, 4, gpr + 8 * 4);
    mov_rip(a, 0x8B, 4, host_rsp);
    for (unsigned r = 0; r < 16; r++)
        if (r != 4)
            mov_rip(a, 0x89, r, gpr + 8 * r);
    put1(a, 0x9C); /* pushfq; pop [rip + rflags] */
    put(a, (const uint8_t[]){0x8F, 0x05}, 2);
    rip32(a, DATA_OFF + offsetof(struct frame, rflags));
    xstate_op(a, 4, GUEST_XSAVE_OFF); /* xsave64 guest */
    xstate_op(a, 5, HOST_XSAVE_OFF);  /* xrstor64 host */
    pop_callee_saved_and_return(a);
}

/* After a fault in the slot: back to the host state, guest state as it
 * was before the instruction. */
static void gen_recover(struct emitter *a)
{
    mov_rip(a, 0x8B, 4, DATA_OFF + offsetof(struct frame, host_rsp));
    xstate_op(a, 5, HOST_XSAVE_OFF);
    pop_callee_saved_and_return(a);
}

static void generate(struct emu_native *n)
{
    struct emitter a = {.buf = n->map + CODE_OFF};
    gen_entry(&a);
    n->slot_off = a.n;
    memset(a.buf + a.n, 0xCC, SLOT_LEN);
    a.n += SLOT_LEN;
    n->exit_off = a.n;
    gen_exit(&a);
    n->recover_off = a.n;
    gen_recover(&a);
    n->code_end = a.n;
}

/* ---- signals -------------------------------------------------------- */

static __thread struct emu_native *running;
/* Handlers found in place when ours went in, for faults not ours. */
static struct sigaction previous[NSIG];
static pthread_mutex_t handlers_lock = PTHREAD_MUTEX_INITIALIZER;
static const int fault_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL,
                                    SIGTRAP};

/* Appends v in hex to buf at *at: async-signal-safe. */
static void put_hex(char *buf, size_t *at, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    buf[(*at)++] = '0';
    buf[(*at)++] = 'x';
    for (int shift = 60; shift >= 0; shift -= 4)
        if (v >> shift || shift == 0)
            buf[(*at)++] = digits[(v >> shift) & 0xF];
}

static void put_str(char *buf, size_t *at, const char *s)
{
    while (*s)
        buf[(*at)++] = *s++;
}

/* A fault of kvmpc's own, about to kill it: one line to say where, for
 * whoever reads the report (a core dump has the rest). */
static void report_fatal(int sig, const siginfo_t *si, const ucontext_t *uc)
{
    char buf[160];
    size_t at = 0;
    put_str(buf, &at, "kvmpc: fatal signal ");
    put_hex(buf, &at, (uint64_t)sig);
    put_str(buf, &at, " at ip ");
    put_hex(buf, &at, (uint64_t)uc->uc_mcontext.gregs[REG_RIP]);
    put_str(buf, &at, ", address ");
    put_hex(buf, &at, (uint64_t)si->si_addr);
    put_str(buf, &at, ", code ");
    put_hex(buf, &at, (uint64_t)si->si_code);
    buf[at++] = '\n';
    ssize_t r = write(STDERR_FILENO, buf, at);
    (void)r;
}

static void chain(int sig, siginfo_t *si, void *uc)
{
    const struct sigaction *old = &previous[sig];
    if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
        old->sa_sigaction(sig, si, uc);
    } else if (old->sa_handler != SIG_IGN && old->sa_handler != SIG_DFL) {
        old->sa_handler(sig);
    } else {
        /* Default action: the fault repeats on return and kills. */
        report_fatal(sig, si, uc);
        signal(sig, SIG_DFL);
    }
}

static void on_fault(int sig, siginfo_t *si, void *ucv)
{
    ucontext_t *uc = ucv;
    struct emu_native *n = running;
    uint64_t rip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
    uint64_t code = (uint64_t)(n ? n->map + CODE_OFF : NULL);
    if (!n || rip < code || rip >= code + n->code_end) {
        chain(sig, si, ucv);
        return;
    }
    /* The single-step trap after the instruction, where our decoding says
     * it ends: carry on with the exit path. */
    if (sig == SIGTRAP && rip == n->slot_end) {
        uc->uc_mcontext.gregs[REG_EFL] &= ~(greg_t)RFLAGS_TF;
        uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(code + n->exit_off);
        return;
    }
    n->signo = sig;
    n->trapno = (int)uc->uc_mcontext.gregs[REG_TRAPNO];
    n->error_code = (uint64_t)uc->uc_mcontext.gregs[REG_ERR];
    n->fault_addr = (uint64_t)si->si_addr;
    n->in_slot = rip >= code + n->slot_off && rip < code + n->slot_off +
                                                        SLOT_LEN;
    uc->uc_mcontext.gregs[REG_EFL] &= ~(greg_t)RFLAGS_TF;
    uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(code + n->recover_off);
}

/* Puts our handlers in place unless they are; something installed after
 * them (a test harness, a crash reporter) becomes the one we chain to. */
static void ensure_handlers(void)
{
    struct sigaction sa, cur;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    pthread_mutex_lock(&handlers_lock);
    for (size_t i = 0; i < ARRAY_SIZE(fault_signals); i++) {
        int sig = fault_signals[i];
        if (sigaction(sig, NULL, &cur) != 0 ||
            ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_fault))
            continue;
        previous[sig] = cur;
        sigaction(sig, &sa, NULL);
    }
    pthread_mutex_unlock(&handlers_lock);
}

/* The guest's RSP is live while the instruction runs: signals must be
 * taken on an alternate stack. */
static int ensure_altstack(struct emu_native *n)
{
    stack_t cur;
    if (n->altstack_known && pthread_equal(n->altstack_thread, pthread_self()))
        return 0;
    n->altstack_thread = pthread_self();
    n->altstack_known = true;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return 0;
    stack_t ss = {.ss_sp = n->map + ALTSTACK_OFF, .ss_size = ALTSTACK_SIZE};
    if (sigaltstack(&ss, NULL) != 0) {
        n->altstack_known = false;
        report_error("sigaltstack: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* One system call per execution: whoever replaces these handlers (a
 * test harness, a crash reporter) replaces SIGSEGV's too. */
static void check_handlers(void)
{
    struct sigaction cur;
    if (sigaction(SIGSEGV, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        cur.sa_sigaction == on_fault)
        return;
    ensure_handlers();
}

/* ---- public --------------------------------------------------------- */

uint64_t emu_native_xsave_mask(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    uint64_t xcr0 = lo | (uint64_t)hi << 32;
    return xcr0 & ~((1ull << 9) | (1ull << 17) | (1ull << 18));
}

struct emu_native *emu_native_create(void)
{
    struct emu_native *n = calloc(1, sizeof(*n));
    if (!n) {
        report_error("out of memory");
        return NULL;
    }
    n->map = mmap(NULL, MAP_SIZE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (n->map == MAP_FAILED) {
        report_error("mmap: %s", strerror(errno));
        free(n);
        return NULL;
    }
    generate(n);
    if (mprotect(n->map + PROBE_OFF, PROBE_SIZE, PROT_NONE) ||
        mprotect(n->map + CODE_OFF, EMU_NATIVE_PAGE, PROT_READ | PROT_EXEC)) {
        report_error("mprotect: %s", strerror(errno));
        emu_native_destroy(n);
        return NULL;
    }
    return n;
}

void emu_native_destroy(struct emu_native *n)
{
    if (!n)
        return;
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == n->map + ALTSTACK_OFF) {
        stack_t off = {.ss_flags = SS_DISABLE};
        sigaltstack(&off, NULL);
    }
    munmap(n->map, MAP_SIZE);
    free(n);
}

uint8_t *emu_native_bounce(struct emu_native *n)
{
    return n->map + BOUNCE_OFF;
}

int emu_native_protect(struct emu_native *n, unsigned page, int prot)
{
    if (page > 1 ||
        mprotect(n->map + BOUNCE_OFF + page * EMU_NATIVE_PAGE,
                 EMU_NATIVE_PAGE, prot) != 0) {
        report_error("mprotect: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int load_slot(struct emu_native *n, const struct emu_native_job *job)
{
    uint8_t *code = n->map + CODE_OFF;
    if (job->code_len == 0 || job->code_len > SLOT_LEN)
        return -1;
    /* A guest loop runs the same instruction again and again: keep the
     * slot (and its two mprotect calls) when it already holds it. */
    if (n->slot_len == job->code_len &&
        memcmp(code + n->slot_off, job->code, job->code_len) == 0)
        return 0;
    n->slot_len = 0;
    if (mprotect(code, EMU_NATIVE_PAGE, PROT_READ | PROT_WRITE) != 0)
        return -1;
    /* Bytes the CPU might take as part of a longer instruction than ours
     * are 0xCC: as ModRM a register form, as an opcode a trap. */
    memset(code + n->slot_off, 0xCC, SLOT_LEN);
    memcpy(code + n->slot_off, job->code, job->code_len);
    if (mprotect(code, EMU_NATIVE_PAGE, PROT_READ | PROT_EXEC) != 0)
        return -1;
    n->slot_len = job->code_len;
    return 0;
}

/* Only the arithmetic flags and DF travel; TF, AC, IF stay the host's. */
#define PASSED_FLAGS 0xCD5ull

static void run_stub(struct emu_native *n)
{
    sigset_t all, old;
    sigfillset(&all);
    for (size_t i = 0; i < ARRAY_SIZE(fault_signals); i++)
        sigdelset(&all, fault_signals[i]);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    running = n;
    ((void (*)(void))(void *)(n->map + CODE_OFF))();
    running = NULL;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int emu_native_exec(struct emu_native *n, struct emu_native_job *job)
{
    struct frame *f = (struct frame *)(void *)(n->map + DATA_OFF);
    size_t len = job->xsave_len < EMU_NATIVE_XSAVE_MAX ? job->xsave_len
                                                        : EMU_NATIVE_XSAVE_MAX;
    if (load_slot(n, job) != 0) {
        report_error("cannot load the native instruction slot");
        return -1;
    }
    if (ensure_altstack(n) != 0)
        return -1;
    check_handlers();
    memcpy(f->gpr, job->gpr, sizeof(f->gpr));
    f->mask = job->xsave_mask;
    uint16_t cs, ss;
    __asm__("mov %%cs, %0; mov %%ss, %1" : "=r"(cs), "=r"(ss));
    f->iret[0] = (uint64_t)(n->map + CODE_OFF + n->slot_off);
    f->iret[1] = cs;
    f->iret[2] = (job->rflags & PASSED_FLAGS) | 0x202 | RFLAGS_TF;
    f->iret[3] = job->gpr[4];
    f->iret[4] = ss;
    n->slot_end = f->iret[0] + job->code_len;
    memset(n->map + HOST_XSAVE_OFF, 0, EMU_NATIVE_PAGE);
    memcpy(n->map + GUEST_XSAVE_OFF, job->xsave, len);
    n->signo = 0;
    run_stub(n);
    job->signo = n->signo;
    job->trapno = n->trapno;
    job->error_code = n->error_code;
    job->fault_addr = n->fault_addr;
    job->in_slot = n->in_slot;
    if (job->signo)
        return 0;
    memcpy(job->gpr, f->gpr, sizeof(f->gpr));
    job->rflags = (job->rflags & ~PASSED_FLAGS) | (f->rflags & PASSED_FLAGS);
    memcpy(job->xsave, n->map + GUEST_XSAVE_OFF, len);
    return 0;
}

/* ---- re-encoding ---------------------------------------------------- */

/* A base register the instruction names nowhere: not ModRM.reg, not
 * VEX.vvvv, none of the implicit ones (RAX, RCX, RDX, RSI, RDI), and not
 * RSP/RBP/R12/R13 whose encodings need SIB or a displacement. */
static int pick_base(const struct x86_insn *in)
{
    static const int candidates[] = {X86_RBX, X86_R8,  X86_R9, X86_R10,
                                     X86_R11, X86_R14, X86_R15};
    unsigned vvvv = in->enc == X86_ENC_LEGACY ? 99 : in->vvvv;
    for (size_t i = 0; i < ARRAY_SIZE(candidates); i++) {
        int r = candidates[i];
        if (r != (in->reg & 15) && (unsigned)r != vvvv)
            return r;
    }
    return X86_REG_NONE;
}

static bool is_dropped_prefix(uint8_t b)
{
    /* segment overrides and the address-size prefix */
    return b == 0x26 || b == 0x2E || b == 0x36 || b == 0x3E || b == 0x64 ||
           b == 0x65 || b == 0x67;
}

static unsigned encode_legacy(const struct x86_insn *in, uint8_t *out,
                              int base)
{
    unsigned n = 0, p = in->opcode_pos;
    for (unsigned i = 0; i < p; i++) {
        uint8_t b = in->bytes[i];
        if (!is_dropped_prefix(b) && (b & 0xF0) != 0x40)
            out[n++] = b;
    }
    uint8_t rex = (uint8_t)(0x40 | (in->rex & 0x0C) | (base >= 8 ? 1 : 0));
    if (rex != 0x40 || in->rex)
        out[n++] = rex;
    out[n++] = 0x0F;
    if (in->map == X86_MAP_0F38 || in->map == X86_MAP_0F3A)
        out[n++] = in->map == X86_MAP_0F38 ? 0x38 : 0x3A;
    out[n++] = in->opcode;
    out[n++] = (uint8_t)((in->modrm & 0x38) | (base & 7));
    return n;
}

static unsigned encode_vex(const struct x86_insn *in, uint8_t *out, int base)
{
    unsigned n = 0;
    uint8_t b_bit = base >= 8 ? 0 : 0x20; /* inverted */
    if (in->enc == X86_ENC_EVEX) {
        out[n++] = 0x62;
        out[n++] = (uint8_t)((in->vex[1] & 0x90) | 0x40 | b_bit |
                             (in->vex[1] & 0x0F));
        out[n++] = in->vex[2];
        out[n++] = in->vex[3];
    } else {
        uint8_t r = in->vex[1] & 0x80;
        uint8_t map = in->vex[0] == 0xC5 ? 1 : in->vex[1] & 0x1F;
        uint8_t wvlp = in->vex[0] == 0xC5 ? (in->vex[1] & 0x7F)
                                          : in->vex[2];
        out[n++] = 0xC4;
        out[n++] = (uint8_t)(r | 0x40 | b_bit | map);
        out[n++] = wvlp;
    }
    out[n++] = in->opcode;
    out[n++] = (uint8_t)((in->modrm & 0x38) | (base & 7));
    return n;
}

int emu_native_disp8_scale(struct emu_native *n, const struct x86_insn *in,
                           struct emu_native_job *job, unsigned *scale)
{
    int base = pick_base(in);
    int8_t disp8 = (int8_t)in->mem.disp;
    if (in->enc != X86_ENC_EVEX || in->disp_size != 1 || disp8 == 0 ||
        base == X86_REG_NONE)
        return -1;
    unsigned len = encode_vex(in, job->code, base);
    job->code[2] = in->vex[2];
    job->code[3] = in->vex[3] & ~0x87; /* no masking, no zeroing */
    job->code[len - 1] |= 0x40;        /* mod = 01: [base + disp8] */
    job->code[len++] = (uint8_t)disp8;
    memcpy(job->code + len, in->bytes + in->len - in->imm_size, in->imm_size);
    job->code_len = len + in->imm_size;
    uint64_t probe = (uint64_t)(n->map + PROBE_OFF + PROBE_SIZE / 2);
    job->gpr[base] = probe;
    if (emu_native_exec(n, job) != 0 || job->signo != SIGSEGV ||
        !job->in_slot)
        return -1;
    int64_t delta = (int64_t)(job->fault_addr - probe);
    for (unsigned s = 1; s <= 64; s *= 2) {
        if (delta == (int64_t)disp8 * (int64_t)s) {
            *scale = s;
            return 0;
        }
    }
    return -1;
}

unsigned emu_native_encode(const struct x86_insn *in, uint8_t *out,
                           int *base)
{
    *base = X86_REG_NONE;
    if (!in->has_mem) {
        unsigned n = 0;
        for (unsigned i = 0; i < in->len; i++)
            if (i >= in->opcode_pos || !is_dropped_prefix(in->bytes[i]))
                out[n++] = in->bytes[i];
        return n;
    }
    *base = pick_base(in);
    if (*base == X86_REG_NONE)
        return 0;
    unsigned n = in->enc == X86_ENC_LEGACY ? encode_legacy(in, out, *base)
                                           : encode_vex(in, out, *base);
    memcpy(out + n, in->bytes + in->len - in->imm_size, in->imm_size);
    return n + in->imm_size;
}

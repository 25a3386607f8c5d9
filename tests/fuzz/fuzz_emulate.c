/* libFuzzer harness for the userspace completion of failed emulations:
 * the input chooses the CPU mode and registers, the instruction bytes
 * (in the exit or in memory) and the contents of guest memory, which
 * holds the page tables (CR3 = 0x1000) and whatever the instruction
 * touches. Vector instructions really run on the host through the native
 * executor, so this also checks that no guest instruction reaches host
 * memory outside guest RAM: guest RAM is two separately allocated
 * regions with a hole between them, for ASan to watch. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "vm/emulate.h"
#include "vm/emulate_native.h"

#define RAM0_SIZE 0x100000
#define RAM1 0x200000ULL
#define RAM1_SIZE 0x10000

struct input {
    const uint8_t *p;
    size_t left;
};

static uint64_t take(struct input *in, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes && in->left; i++, in->left--)
        v |= (uint64_t)*in->p++ << (8 * i);
    return v;
}

struct fake {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    uint8_t xsave[4096];
    uint64_t xcr0;
    struct kvm_vcpu_events events;
};

static struct emu_native *executor;

static int get_regs(void *v, struct kvm_regs *r)
{
    *r = ((struct fake *)v)->regs;
    return 0;
}
static int set_regs(void *v, const struct kvm_regs *r)
{
    ((struct fake *)v)->regs = *r;
    return 0;
}
static int get_sregs(void *v, struct kvm_sregs *s)
{
    *s = ((struct fake *)v)->sregs;
    return 0;
}
static int set_sregs(void *v, const struct kvm_sregs *s)
{
    ((struct fake *)v)->sregs = *s;
    return 0;
}
static size_t xsave_size(void *v) { return 4096; }
static int get_xsave(void *v, void *buf, size_t len)
{
    memcpy(buf, ((struct fake *)v)->xsave, len);
    return 0;
}
static int set_xsave(void *v, const void *buf, size_t len)
{
    memcpy(((struct fake *)v)->xsave, buf, len);
    return 0;
}
static int get_xcrs(void *v, struct kvm_xcrs *x)
{
    memset(x, 0, sizeof(*x));
    x->nr_xcrs = 1;
    x->xcrs[0].value = ((struct fake *)v)->xcr0;
    return 0;
}
static int set_xcrs(void *v, const struct kvm_xcrs *x)
{
    uint64_t val = x->xcrs[0].value;
    if (!(val & 1) || (val & ~emu_native_xsave_mask()))
        return -1;
    ((struct fake *)v)->xcr0 = val;
    return 0;
}
static int get_msr(void *v, uint32_t index, uint64_t *value)
{
    *value = index;
    return 0;
}
static int get_events(void *v, struct kvm_vcpu_events *e)
{
    *e = ((struct fake *)v)->events;
    return 0;
}
static int set_events(void *v, const struct kvm_vcpu_events *e)
{
    ((struct fake *)v)->events = *e;
    return 0;
}
static void cpuid(void *v, uint32_t leaf, uint32_t sub, uint32_t out[4])
{
    memset(out, 0, 4 * sizeof(uint32_t));
    __asm__("cpuid" : "=a"(out[0]), "=b"(out[1]), "=c"(out[2]), "=d"(out[3])
            : "a"(leaf), "c"(sub));
}
static struct emu_native *native(void *v) { return executor; }

static const struct emu_vcpu_ops ops = {
    .get_regs = get_regs, .set_regs = set_regs, .get_sregs = get_sregs,
    .set_sregs = set_sregs, .xsave_size = xsave_size,
    .get_xsave = get_xsave, .set_xsave = set_xsave, .get_xcrs = get_xcrs,
    .set_xcrs = set_xcrs, .get_msr = get_msr, .get_events = get_events,
    .set_events = set_events, .cpuid = cpuid, .native = native,
};

/* The CPU modes worth reaching, by their control registers. */
static void set_mode(struct fake *f, unsigned mode, uint64_t bits)
{
    static const struct {
        uint64_t cr0, cr4, efer;
        uint8_t l, db;
    } modes[] = {
        {0x10, 0, 0, 0, 0},                     /* real */
        {0x11, 0x40600, 0, 0, 1},               /* 32-bit, no paging */
        {0x80010011, 0x40610, 0, 0, 1},         /* 32-bit paging + PSE */
        {0x80010011, 0x40620, 0x800, 0, 1},     /* PAE */
        {0x80050033, 0x340620, 0xD01, 1, 0},    /* long mode */
        {0x80050033, 0x341620, 0xD01, 1, 0},    /* long mode, LA57 */
        {0x80050033, 0x340620, 0xD01, 0, 1},    /* compatibility */
    };
    unsigned m = mode % ARRAY_SIZE(modes);
    struct kvm_segment seg = {.limit = 0xFFFFFFFF, .type = 3, .present = 1,
                              .s = 1, .db = modes[m].db, .g = 1,
                              .dpl = (uint8_t)(bits & 3)};
    f->sregs.cr0 = modes[m].cr0 ^ (bits & 0x8); /* maybe CR0.TS */
    f->sregs.cr3 = 0x1000;
    f->sregs.cr4 = modes[m].cr4 ^ (bits & 0x210000); /* SMAP, FSGSBASE */
    f->sregs.efer = modes[m].efer;
    f->sregs.ds = f->sregs.es = f->sregs.ss = f->sregs.fs = f->sregs.gs = seg;
    seg.type = 0xB;
    seg.l = modes[m].l;
    seg.db = modes[m].l ? 0 : modes[m].db;
    f->sregs.cs = seg;
    f->sregs.fs.base = bits & 0xFFFF0000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t *ram0, *ram1;
    static struct fake f;
    struct input in = {data, size};
    if (!executor)
        executor = emu_native_create();
    if (!ram0) {
        ram0 = aligned_alloc(4096, RAM0_SIZE);
        ram1 = aligned_alloc(4096, RAM1_SIZE);
    }
    if (!executor || !ram0 || !ram1)
        abort();
    memset(&f, 0, sizeof(f));
    memset(ram0, 0, RAM0_SIZE);
    memset(ram1, 0, RAM1_SIZE);
    struct guest_mem mem = {0};
    gmem_add(&mem, 0, RAM0_SIZE, ram0, false);
    gmem_add(&mem, RAM1, RAM1_SIZE, ram1, false);

    unsigned mode = (unsigned)take(&in, 1);
    set_mode(&f, mode, take(&in, 4));
    uint64_t gprs[16]; /* struct kvm_regs begins with the 16 GPRs */
    for (unsigned i = 0; i < 16; i++)
        gprs[i] = take(&in, 1) & 1 ? take(&in, 8) : take(&in, 2) * 16;
    memcpy(&f.regs, gprs, sizeof(gprs));
    f.regs.rip = take(&in, 3);
    f.regs.rflags = 2 | (take(&in, 2) & 0xCD5);
    f.xcr0 = 1 | (emu_native_xsave_mask() & (take(&in, 1) | 2));
    put_le16(f.xsave, 0x37F);                 /* FCW */
    put_le32(f.xsave + 24, 0x1F80);           /* MXCSR */
    put_le32(f.xsave + 28, 0xFFFF);           /* MXCSR_MASK */
    put_le64(f.xsave + 512, take(&in, 1) & 7); /* XSTATE_BV */

    struct kvm_run run;
    memset(&run, 0, sizeof(run));
    run.exit_reason = KVM_EXIT_INTERNAL_ERROR;
    run.emulation_failure.suberror = KVM_INTERNAL_ERROR_EMULATION;
    unsigned n = (unsigned)take(&in, 1) % 16;
    if (n) {
        run.emulation_failure.ndata = 3;
        run.emulation_failure.flags =
            KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
        run.emulation_failure.insn_size = (uint8_t)n;
        for (unsigned i = 0; i < n; i++)
            run.emulation_failure.insn_bytes[i] = (uint8_t)take(&in, 1);
    }
    /* The rest is guest memory from 0: page tables at 0x1000 and up. */
    memcpy(ram0, in.p, in.left < RAM0_SIZE ? in.left : RAM0_SIZE);

    char diag[320];
    emu_handle_failure(&ops, &f, &mem, &run, NULL, diag, sizeof(diag));
    return 0;
}

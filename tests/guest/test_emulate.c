/* test=emulate: instructions the host's KVM emulator cannot execute for
 * ring-0 code on some hosts (PVM) and kvmpc completes in userspace
 * (src/vm/emulate.c). Each is executed here, in ring 0, and its
 * architectural result checked: values, flags, memory, and the exception
 * it must raise. On a host whose KVM runs them itself the same checks
 * hold. */
#include "kit.h"

#define CR4_OSFXSR (1ULL << 9)
#define CR4_OSXMMEXCPT (1ULL << 10)
#define CR4_FSGSBASE (1ULL << 16)
#define CR4_OSXSAVE (1ULL << 18)
#define RFLAGS_ZF (1ULL << 6)
#define RFLAGS_AC (1ULL << 18)
#define MSR_FS_BASE 0xC0000100
#define MSR_TSC_AUX 0xC0000103
#define XCOMP_BV_COMPACTED (1ULL << 63)

/* ---- CPU helpers ------------------------------------------------------ */

static void cpuid_count(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ volatile("cpuid"
                     : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(sub));
}

static uint64_t read_cr4(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr4, %0" : "=r"(v));
    return v;
}

static void write_cr4(uint64_t v)
{
    __asm__ volatile("mov %0, %%cr4" : : "r"(v) : "memory");
}

static uint64_t xgetbv(uint32_t xcr)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(xcr));
    return lo | (uint64_t)hi << 32;
}

static void xsetbv(uint32_t xcr, uint64_t v)
{
    __asm__ volatile("xsetbv"
                     : : "c"(xcr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static uint64_t rflags(void)
{
    uint64_t f;
    __asm__ volatile("pushfq; popq %0" : "=r"(f));
    return f;
}

static uint64_t get64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* ---- expected exceptions ---------------------------------------------- */

static volatile uint64_t fault_vector, fault_error, fault_count;
static volatile uint64_t resume_rip; /* set by TRY right before the insn */
static volatile unsigned bp_hits;
static volatile uint64_t bp_rip;

/* An exception TRY expects: note it and continue after the instruction.
 * Any other one is fatal, as everywhere in the kit. */
static void on_fault(struct irq_frame *f)
{
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    if (!resume_rip)
        kit_fatal("exception %lu error 0x%lx rip 0x%lx cr2 0x%lx", f->vector,
                  f->error, f->rip, cr2);
    fault_vector = f->vector;
    fault_error = f->error;
    fault_count++;
    f->rip = resume_rip;
    resume_rip = 0;
}

static void on_breakpoint(struct irq_frame *f)
{
    bp_hits++;
    bp_rip = f->rip;
}

static void catch_faults(bool on)
{
    static const unsigned vectors[] = {6, 7, 13, 14, 19};
    for (size_t i = 0; i < ARRAY_SIZE(vectors); i++)
        idt_set_handler(vectors[i], on ? on_fault : NULL);
    idt_set_handler(3, on ? on_breakpoint : NULL);
}

static void expect_reset(void)
{
    fault_count = 0;
    fault_vector = fault_error = ~0ULL;
}

/* After a TRY that did not fault: no exception is expected any more. */
static void expect_done(void)
{
    resume_rip = 0;
}

/* Runs one instruction that may fault; execution resumes after it. */
#define TRY(insn, ...)                                                        \
    __asm__ volatile("lea 1f(%%rip), %%r11\n\t"                              \
                     "mov %%r11, %[resume]\n\t" insn "\n1:"                  \
                     : [resume] "=m"(resume_rip), ##__VA_ARGS__)

/* ---- int3 ---------------------------------------------------------------- */

static void check_int3(void)
{
    uint64_t after;
    bp_hits = 0;
    __asm__ volatile("lea 1f(%%rip), %0\n\tint3\n1:" : "=r"(after));
    kit_check(bp_hits == 1 && bp_rip == after, "emu-int3",
              "hits %u rip 0x%lx expected 0x%lx", bp_hits, bp_rip, after);
}

/* ---- cmpxchg8b / cmpxchg16b -------------------------------------------- */

static uint64_t cas_area[4] __attribute__((aligned(64)));

static bool cmpxchg16b(uint64_t *p, uint64_t *lo, uint64_t *hi, uint64_t nlo,
                       uint64_t nhi)
{
    bool ok;
    __asm__ volatile("lock cmpxchg16b %1"
                     : "=@ccz"(ok), "+m"(*(uint64_t(*)[2])p), "+a"(*lo),
                       "+d"(*hi)
                     : "b"(nlo), "c"(nhi)
                     : "memory");
    return ok;
}

static void check_cmpxchg16b(void)
{
    uint64_t lo = 1, hi = 2;
    cas_area[0] = 1, cas_area[1] = 2;
    bool ok1 = cmpxchg16b(cas_area, &lo, &hi, 3, 4);
    bool good1 = ok1 && cas_area[0] == 3 && cas_area[1] == 4;
    lo = 7, hi = 8;
    bool ok2 = cmpxchg16b(cas_area, &lo, &hi, 5, 6);
    bool good2 = !ok2 && lo == 3 && hi == 4 && cas_area[0] == 3 &&
                 cas_area[1] == 4;
    kit_check(good1 && good2, "emu-cmpxchg16b",
              "success %d [%lx %lx], failure %d rdx:rax %lx:%lx", ok1,
              cas_area[0], cas_area[1], ok2, hi, lo);

    /* A 16-byte operand that is not 16-byte aligned: #GP(0). */
    expect_reset();
    uint64_t *odd = &cas_area[1];
    TRY("lock cmpxchg16b (%%rdi)", "+a"(lo), "+d"(hi)
        : "D"(odd), "b"(0), "c"(0)
        : "r11", "memory", "cc");
    expect_done();
    kit_check(fault_count == 1 && fault_vector == 13 && fault_error == 0,
              "emu-cmpxchg16b-align", "faults %lu vector %lu error 0x%lx",
              fault_count, fault_vector, fault_error);
}

static void check_cmpxchg8b(void)
{
    uint32_t lo = 0x11111111, hi = 0x22222222;
    bool ok;
    cas_area[2] = 0x2222222211111111ULL;
    __asm__ volatile("lock cmpxchg8b %1"
                     : "=@ccz"(ok), "+m"(cas_area[2]), "+a"(lo), "+d"(hi)
                     : "b"(0x33333333), "c"(0x44444444)
                     : "memory");
    bool good = ok && cas_area[2] == 0x4444444433333333ULL;
    __asm__ volatile("lock cmpxchg8b %1"
                     : "=@ccz"(ok), "+m"(cas_area[2]), "+a"(lo), "+d"(hi)
                     : "b"(0), "c"(0)
                     : "memory");
    good = good && !ok && lo == 0x33333333 && hi == 0x44444444;
    kit_check(good, "emu-cmpxchg8b", "memory 0x%lx edx:eax %x:%x",
              cas_area[2], hi, lo);
}

/* ---- the XSAVE family ---------------------------------------------------- */

static uint64_t xcr0;
static bool has_avx, has_avx512;
static uint8_t area[4096] __attribute__((aligned(64)));
static const uint8_t pattern[64] __attribute__((aligned(64))) = {
    0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0x10, 0x32, 0x54,
    0x76, 0x98, 0xBA, 0xDC, 0xFE, 0x0F, 0x1E, 0x2D, 0x3C, 0x4B, 0x5A,
    0x69, 0x78, 0x87, 0x96, 0xA5, 0xB4, 0xC3, 0xD2, 0xE1, 0xF0, 0x11,
    0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC,
    0xDD, 0xEE, 0xFF, 0x00, 0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE,
    0xF0, 0x13, 0x57, 0x9B, 0xDF, 0x24, 0x68, 0xAC, 0xE0,
};

/* XMM0 = pattern[0..15], YMM1 = pattern[16..47] (AVX) */
static void load_vectors(void)
{
    __asm__ volatile("movdqu (%0), %%xmm0" : : "r"(pattern) : "memory");
    if (has_avx)
        __asm__ volatile("vmovdqu 16(%0), %%ymm1" : : "r"(pattern)
                         : "memory");
}

static void clobber_vectors(void)
{
    __asm__ volatile("pxor %%xmm0, %%xmm0" : : );
    if (has_avx)
        __asm__ volatile("vpcmpeqd %%ymm1, %%ymm1, %%ymm1" : : );
}

/* True when XMM0 and YMM1 hold the pattern again. */
static bool vectors_match(void)
{
    uint8_t out[48];
    __asm__ volatile("movdqu %%xmm0, (%0)" : : "r"(out) : "memory");
    if (!has_avx)
        return !memcmp(out, pattern, 16);
    __asm__ volatile("vmovdqu %%ymm1, 16(%0)" : : "r"(out) : "memory");
    return !memcmp(out, pattern, 48);
}

/* Bytes of YMM1's upper half inside an XSAVE area whose AVX component
 * starts at avx_off. */
static bool area_has_pattern(unsigned avx_off)
{
    if (memcmp(area + 160, pattern, 16))
        return false;
    return !has_avx || (!memcmp(area + 176, pattern + 16, 16) &&
                        !memcmp(area + avx_off + 16, pattern + 32, 16));
}

static bool setup_xsave(void)
{
    uint32_t r[4];
    cpuid_count(1, 0, r);
    if (!(r[2] & (1u << 26))) {
        kit_check(false, "emu-xgetbv", "the CPU has no XSAVE");
        return false;
    }
    has_avx = r[2] & (1u << 28);
    write_cr4(read_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE);
    cpuid_count(0xD, 0, r);
    xcr0 = r[0] & (has_avx ? 0x7 : 0x3);
    cpuid_count(7, 0, r);
    uint32_t d0[4];
    cpuid_count(0xD, 0, d0);
    has_avx512 = has_avx && (r[1] & (1u << 16)) && (d0[0] & 0xE0) == 0xE0;
    if (has_avx512)
        xcr0 |= 0xE0;
    xsetbv(0, xcr0);
    uint64_t got = xgetbv(0);
    kit_check(got == xcr0, "emu-xgetbv", "XCR0 0x%lx, wrote 0x%lx", got,
              xcr0);
    return got == xcr0;
}

static void check_xsave_standard(void)
{
    memset(area, 0, sizeof(area));
    load_vectors();
    __asm__ volatile("xsave64 (%0)" : : "r"(area), "a"(-1), "d"(-1)
                     : "memory");
    uint64_t bv = get64(area + 512);
    bool stored = area_has_pattern(576) && (bv & 2) &&
                  (!has_avx || (bv & 4)) && !(bv & ~xcr0) &&
                  get64(area + 520) == 0;
    clobber_vectors();
    __asm__ volatile("xrstor64 (%0)" : : "r"(area), "a"(-1), "d"(-1)
                     : "memory");
    kit_check(stored && vectors_match(), "emu-xsave",
              "stored %d XSTATE_BV 0x%lx restored %d", stored, bv,
              vectors_match());
}

static void check_xsaveopt(void)
{
    memset(area, 0, sizeof(area));
    load_vectors();
    __asm__ volatile("xsaveopt64 (%0)" : : "r"(area), "a"(-1), "d"(-1)
                     : "memory");
    bool stored = area_has_pattern(576);
    clobber_vectors();
    __asm__ volatile("xrstor64 (%0)" : : "r"(area), "a"(-1), "d"(-1)
                     : "memory");
    kit_check(stored && vectors_match(), "emu-xsaveopt", "stored %d", stored);
}

/* Compacted: x87, SSE, AVX in that order, AVX right after the header. */
static void check_xsavec(bool supervisor)
{
    const char *name = supervisor ? "emu-xsaves" : "emu-xsavec";
    uint32_t r[4];
    cpuid_count(0xD, 1, r);
    if (!(r[0] & (supervisor ? 8u : 2u))) {
        kit_check(true, name, "not offered by the CPU (CPUID 0xD.1 0x%x)",
                  r[0]);
        return;
    }
    memset(area, 0, sizeof(area));
    load_vectors();
    uint64_t mask = xcr0 & 0x7;
    if (supervisor)
        __asm__ volatile("xsaves64 (%0)" : : "r"(area), "a"((uint32_t)mask),
                         "d"(0) : "memory");
    else
        __asm__ volatile("xsavec64 (%0)" : : "r"(area), "a"((uint32_t)mask),
                         "d"(0) : "memory");
    uint64_t bv = get64(area + 512), comp = get64(area + 520);
    bool stored = area_has_pattern(576) && comp == (mask | XCOMP_BV_COMPACTED)
                  && !(bv & ~mask) && (bv & 2);
    clobber_vectors();
    if (supervisor)
        __asm__ volatile("xrstors64 (%0)" : : "r"(area), "a"(-1), "d"(-1)
                         : "memory");
    else
        __asm__ volatile("xrstor64 (%0)" : : "r"(area), "a"(-1), "d"(-1)
                         : "memory");
    kit_check(stored && vectors_match(), name,
              "XSTATE_BV 0x%lx XCOMP_BV 0x%lx restored %d", bv, comp,
              vectors_match());
}

static void check_xrstor_init_and_gp(void)
{
    /* XSTATE_BV 0: the requested components go to their initial state. */
    memset(area, 0, sizeof(area));
    area[24] = 0x80, area[25] = 0x1F; /* MXCSR 0x1F80 */
    load_vectors();
    __asm__ volatile("xrstor64 (%0)" : : "r"(area), "a"(6), "d"(0)
                     : "memory");
    uint8_t out[48], zero[48] = {0};
    __asm__ volatile("movdqu %%xmm0, (%0)" : : "r"(out) : "memory");
    if (has_avx)
        __asm__ volatile("vmovdqu %%ymm1, 16(%0)" : : "r"(out) : "memory");
    kit_check(!memcmp(out, zero, has_avx ? 48 : 16), "emu-xrstor-init",
              "xmm0 %02x.. ymm1 %02x..", out[0], out[16]);

    /* A component beyond XCR0 in XSTATE_BV: #GP(0), state untouched. */
    load_vectors();
    area[512 + 7] = 0x40; /* bit 62 */
    expect_reset();
    TRY("xrstor64 (%%rdi)", "+D"((uint8_t *){area})
        : "a"(-1), "d"(-1)
        : "r11", "memory");
    expect_done();
    kit_check(fault_count == 1 && fault_vector == 13 && fault_error == 0 &&
                  vectors_match(),
              "emu-xrstor-gp", "faults %lu vector %lu", fault_count,
              fault_vector);
    /* Not 64-byte aligned: #GP(0). */
    expect_reset();
    TRY("xsave64 (%%rdi)", "+D"((uint8_t *){area + 16})
        : "a"(-1), "d"(-1)
        : "r11", "memory");
    expect_done();
    kit_check(fault_count == 1 && fault_vector == 13, "emu-xsave-align",
              "faults %lu vector %lu", fault_count, fault_vector);
}

/* ---- small ones ---------------------------------------------------------- */

static void check_popcnt(void)
{
    uint64_t v = 0xF0F0F0F0F0F0F0F0ULL, n, zero = 0, nz;
    uint64_t f;
    __asm__ volatile("popcnt %1, %0" : "=r"(n) : "r"(v) : "cc");
    __asm__ volatile("popcnt %2, %0\n\tpushfq\n\tpopq %1"
                     : "=r"(nz), "=r"(f) : "r"(zero) : "cc");
    kit_check(n == 32 && nz == 0 && (f & RFLAGS_ZF), "emu-popcnt",
              "popcnt %lu, of 0: %lu ZF %lu", n, nz, (f >> 6) & 1);
}

static void check_stac_clac(void)
{
    uint32_t r[4];
    cpuid_count(7, 0, r);
    if (!(r[1] & (1u << 20))) {
        kit_check(true, "emu-stac-clac", "not offered by the CPU");
        return;
    }
    __asm__ volatile("stac" ::: "cc");
    uint64_t set = rflags();
    __asm__ volatile("clac" ::: "cc");
    uint64_t clear = rflags();
    kit_check((set & RFLAGS_AC) && !(clear & RFLAGS_AC), "emu-stac-clac",
              "after stac 0x%lx, after clac 0x%lx", set, clear);
}

static void check_tsc_aux(void)
{
    uint32_t r[4];
    cpuid_count(0x80000001, 0, r);
    bool rdtscp = r[3] & (1u << 27);
    cpuid_count(7, 0, r);
    bool rdpid = r[2] & (1u << 22);
    uint64_t pid = 0;
    uint32_t aux = 0, lo = 0, hi = 0;
    if (!rdpid && !rdtscp) {
        kit_check(true, "emu-tsc-aux", "not offered by the CPU");
        return;
    }
    wrmsr(MSR_TSC_AUX, 0x1234);
    if (rdpid)
        __asm__ volatile("rdpid %0" : "=r"(pid));
    if (rdtscp)
        __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(aux));
    kit_check((!rdpid || pid == 0x1234) && (!rdtscp || aux == 0x1234),
              "emu-tsc-aux", "rdpid %d 0x%lx rdtscp %d 0x%x tsc 0x%x%08x",
              rdpid, pid, rdtscp, aux, hi, lo);
}

static void check_fsgsbase(void)
{
    uint32_t r[4];
    cpuid_count(7, 0, r);
    if (!(r[1] & 1)) {
        kit_check(true, "emu-fsgsbase", "not offered by the CPU");
        return;
    }
    uint64_t cr4 = read_cr4();
    write_cr4(cr4 | CR4_FSGSBASE);
    uint64_t want = 0x12345000, got, msr;
    __asm__ volatile("wrfsbase %0" : : "r"(want));
    __asm__ volatile("rdfsbase %0" : "=r"(got));
    msr = rdmsr(MSR_FS_BASE);
    __asm__ volatile("wrfsbase %0" : : "r"(0ULL));
    write_cr4(cr4);
    kit_check(got == want && msr == want, "emu-fsgsbase",
              "rdfsbase 0x%lx IA32_FS_BASE 0x%lx", got, msr);
}

static void check_mxcsr(void)
{
    uint32_t want = 0x1F80 | 0x6000, got = 0, dflt = 0x1F80;
    __asm__ volatile("ldmxcsr %0" : : "m"(want));
    __asm__ volatile("stmxcsr %0" : "=m"(got));
    __asm__ volatile("ldmxcsr %0" : : "m"(dflt));
    kit_check(got == want, "emu-mxcsr", "0x%x", got);
}

static uint32_t crc32c_u64(uint32_t crc, uint64_t v)
{
    for (unsigned i = 0; i < 64; i++) {
        uint32_t bit = (crc ^ (uint32_t)(v >> i)) & 1;
        crc = (crc >> 1) ^ (bit ? 0x82F63B78u : 0);
    }
    return crc;
}

static void check_crc32(void)
{
    uint64_t crc = 0xFFFFFFFF, v = 0x0123456789ABCDEFULL;
    __asm__ volatile("crc32q %1, %0" : "+r"(crc) : "r"(v));
    uint32_t want = crc32c_u64(0xFFFFFFFF, v);
    kit_check(crc == want, "emu-crc32", "0x%lx expected 0x%x", crc, want);
}

/* BMI1/BMI2 in ring 0: on PVM hosts, whose emulator lacks them, kvmpc
 * completes each one (Linux's zstd decoders use them). */
static void check_bmi(void)
{
    uint64_t v = 0xF00DFACE12345678ULL, cnt = 20, sh = 0, lo = 0, an = 0;
    uint64_t mask = 0xFFFF0000FFFF0000ULL;
    __asm__ volatile("shrx %2, %1, %0" : "=r"(sh) : "r"(v), "r"(cnt));
    __asm__ volatile("bzhi %2, %1, %0" : "=r"(lo) : "r"(v), "r"(cnt) : "cc");
    __asm__ volatile("andn %2, %1, %0" : "=r"(an) : "r"(mask), "r"(v) : "cc");
    bool ok = sh == v >> 20 && lo == (v & 0xFFFFF) && an == (v & ~mask);
    /* What one such instruction costs where it is completed by the VMM,
     * against a plain shift. */
    uint64_t t0 = rdtsc(), x = v;
    for (unsigned i = 0; i < 100; i++)
        __asm__ volatile("shrx %2, %1, %0" : "=r"(x) : "r"(v), "r"(cnt));
    uint64_t t1 = rdtsc();
    for (unsigned i = 0; i < 100; i++)
        __asm__ volatile("shr %%cl, %0" : "+r"(x) : "c"(cnt) : "cc");
    uint64_t t2 = rdtsc();
    uint32_t id[4];
    cpuid_count(7, 0, id);
    kit_check(ok, "emu-bmi",
              "shrx 0x%lx bzhi 0x%lx andn 0x%lx; TSC ticks per shrx %lu, "
              "per shr %lu; CPUID.7.EBX 0x%x", sh, lo, an, (t1 - t0) / 100,
              (t2 - t1) / 100, id[1]);
}

/* ---- vector instructions --------------------------------------------- */

static uint32_t vec_a[16] __attribute__((aligned(64)));
static uint32_t vec_b[16] __attribute__((aligned(64)));
static uint32_t vec_out[32] __attribute__((aligned(64)));

static void check_avx(void)
{
    if (!has_avx) {
        kit_check(true, "emu-avx", "not offered by the CPU");
        return;
    }
    for (unsigned i = 0; i < 8; i++)
        vec_a[i] = 0x01010101u * i, vec_b[i] = 0x10000000u + i;
    __asm__ volatile("vmovdqu (%0), %%ymm2\n\t"
                     "vpaddd (%1), %%ymm2, %%ymm2\n\t"
                     "vmovdqu %%ymm2, (%2)"
                     : : "r"(vec_a), "r"(vec_b), "r"(vec_out) : "memory");
    bool ok = true;
    for (unsigned i = 0; i < 8; i++)
        ok = ok && vec_out[i] == vec_a[i] + vec_b[i];
    kit_check(ok, "emu-avx", "out[7] 0x%x", vec_out[7]);
}

static void check_avx512(void)
{
    if (!has_avx512) {
        kit_check(true, "emu-avx512", "not offered by the CPU");
        return;
    }
    for (unsigned i = 0; i < 16; i++)
        vec_a[i] = 0xA0000000u + i;
    memset(vec_out, 0, sizeof(vec_out));
    uint32_t mask = 0x5555;
    /* vmovdqu32 64(%rdi) uses a compressed displacement (disp8 1 x 64). */
    __asm__ volatile("vmovdqu32 (%0), %%zmm3\n\t"
                     "kmovw %2, %%k1\n\t"
                     "vmovdqu32 %%zmm3, 64(%1)%{%%k1%}"
                     : : "r"(vec_a), "r"(vec_out), "r"(mask) : "memory");
    bool ok = true;
    for (unsigned i = 0; i < 16; i++)
        ok = ok && vec_out[i] == 0 &&
             vec_out[16 + i] == ((mask >> i) & 1 ? vec_a[i] : 0);
    kit_check(ok, "emu-avx512", "out[16] 0x%x out[17] 0x%x", vec_out[16],
              vec_out[17]);
}

/* Faults of vector instructions: misaligned movaps, a page not present. */
static void check_vector_faults(void)
{
    expect_reset();
    TRY("movaps (%%rdi), %%xmm4", "+D"((uint8_t *){area + 8})
        : : "r11", "memory");
    expect_done();
    bool align = fault_count == 1 && fault_vector == 13;

    /* Take the 2 MiB page at 2 GiB away from our identity map. */
    uint64_t va = 2ULL << 30, cr3, cr2 = 0;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    uint64_t *pml4 = (uint64_t *)(uintptr_t)(cr3 & ~0xFFFULL);
    uint64_t *pdpt = (uint64_t *)(uintptr_t)(pml4[0] & 0x000FFFFFFFFFF000ULL);
    uint64_t *pd = (uint64_t *)(uintptr_t)(pdpt[2] & 0x000FFFFFFFFFF000ULL);
    uint64_t saved = pd[0];
    pd[0] = 0;
    __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory");
    expect_reset();
    TRY("movdqu (%%rdi), %%xmm4", "+D"((uint8_t *){(uint8_t *)va + 0x40})
        : : "r11", "memory");
    expect_done();
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    pd[0] = saved;
    __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory");
    bool pf = fault_count == 1 && fault_vector == 14 && fault_error == 0 &&
              cr2 == va + 0x40;
    kit_check(align && pf, "emu-vector-faults",
              "movaps vector %lu; load vector %lu error 0x%lx cr2 0x%lx",
              align ? 13 : fault_vector, fault_vector, fault_error, cr2);
}

void test_emulate(const struct acpi_info *ai)
{
    (void)ai;
    catch_faults(true);
    check_int3();
    check_cmpxchg16b();
    check_cmpxchg8b();
    if (setup_xsave()) {
        check_xsave_standard();
        check_xsaveopt();
        check_xsavec(false);
        check_xsavec(true);
        check_xrstor_init_and_gp();
        check_mxcsr();
        check_avx();
        check_avx512();
        check_vector_faults();
    }
    check_popcnt();
    check_stac_clac();
    check_tsc_aux();
    check_fsgsbase();
    check_crc32();
    check_bmi();
    catch_faults(false);
}

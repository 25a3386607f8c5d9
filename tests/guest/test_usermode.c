/* test=usermode: the transitions between ring 0 and ring 3 that every
 * operating system relies on. IRETQ into ring 3 and INT 0x80 (a DPL 3
 * gate) out of it; #GP and #PF raised in ring 3, handled in ring 0 and
 * returned from with IRETQ; SYSCALL (CPL 0 at MSR_LSTAR with CS/SS from
 * STAR, RCX = next RIP, R11 = RFLAGS, RFLAGS masked by SFMASK, stack
 * unchanged) and SYSRETQ back; SYSENTER (CS/SS, RIP and RSP from the
 * SYSENTER MSRs). The user code is one page of usermode.S mapped for
 * ring 3 at UM_USER_VA; the kernel stays supervisor-only. */
#include "kit.h"
#include "usermode_defs.h"

#define MSR_SYSENTER_CS 0x174
#define MSR_SYSENTER_ESP 0x175
#define MSR_SYSENTER_EIP 0x176
#define MSR_EFER 0xC0000080
#define MSR_STAR 0xC0000081
#define MSR_LSTAR 0xC0000082
#define MSR_CSTAR 0xC0000083
#define MSR_SFMASK 0xC0000084
#define EFER_SCE 1ULL

#define RF_CF 0x1ULL
#define RF_FIXED 0x2ULL
#define RF_TF 0x100ULL
#define RF_IF 0x200ULL
#define RF_DF 0x400ULL
#define RF_AC 0x40000ULL

/* The flags ring 3 starts with, and what SYSCALL clears of them. */
#define UM_USER_RFLAGS (RF_FIXED | RF_IF | RF_DF | RF_CF)
#define UM_SFMASK (RF_TF | RF_IF | RF_DF | RF_AC)

#define PTE_P 0x1ULL
#define PTE_RW 0x2ULL
#define PTE_US 0x4ULL
#define PTE_NX (1ULL << 63)

/* PML4 slot 1: far from the kit's identity map in slot 0. */
#define UM_USER_VA 0x8000000000ULL
#define UM_STACK_VA (UM_USER_VA + 0x1000)

struct um_syscall_record {
    uint64_t rcx, r11, rsp, rax, cs, ss, rflags, count, sysret;
};
_Static_assert(sizeof(struct um_syscall_record) == UM_SC_SIZE,
               "usermode_defs.h offsets");

/* ---- usermode.S --------------------------------------------------------- */

uint64_t um_enter(uint64_t rip, uint64_t rsp, uint64_t rflags, uint64_t arg);
void um_resume(void);
void um_load_gdt(const void *desc, uint16_t tss_sel);
extern char um_syscall_entry[], um_sysenter_entry[];
extern char um_user_start[], um_user_end[], um_user_report[],
    um_user_report_ud2[], um_user_int[], um_user_after_int[], um_user_hlt[],
    um_user_read[], um_user_syscall[], um_user_after_syscall[],
    um_user_sysenter[];
extern volatile struct um_syscall_record um_sc;
extern uint64_t um_kernel_rsp;

/* ---- descriptor tables ------------------------------------------------- */

struct __attribute__((packed)) tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
};

static uint64_t um_gdt[UM_GDT_ENTRIES] __attribute__((aligned(16)));
static struct tss64 um_tss __attribute__((aligned(16)));
static uint8_t ring0_stack[8192] __attribute__((aligned(16)));
static uint8_t user_stack[4096] __attribute__((aligned(4096)));
static uint64_t um_pdpt[512] __attribute__((aligned(4096)));
static uint64_t um_pd[512] __attribute__((aligned(4096)));
static uint64_t um_pt[512] __attribute__((aligned(4096)));
static volatile uint64_t kernel_secret = 0x5EC12E7;

struct __attribute__((packed)) gdt_desc {
    uint16_t limit;
    uint64_t base;
};

static void load_test_gdt(void)
{
    uint64_t tss = (uint64_t)(uintptr_t)&um_tss;
    um_gdt[0] = 0;
    um_gdt[1] = 0;
    um_gdt[2] = 0x00af9a000000ffffULL; /* 0x10 kernel code, 64-bit */
    um_gdt[3] = 0x00cf92000000ffffULL; /* 0x18 kernel data */
    um_gdt[4] = 0x00cffa000000ffffULL; /* 0x20 user code, 32-bit */
    um_gdt[5] = 0x00cff2000000ffffULL; /* 0x28 user data */
    um_gdt[6] = 0x00affa000000ffffULL; /* 0x30 user code, 64-bit */
    /* 0x38: available 64-bit TSS, 16 bytes */
    um_gdt[7] = (sizeof(um_tss) - 1) | (tss & 0xFFFFFF) << 16 |
                0x89ULL << 40 | ((tss >> 24) & 0xFF) << 56;
    um_gdt[8] = tss >> 32;
    memset(&um_tss, 0, sizeof(um_tss));
    um_tss.rsp[0] = (uint64_t)(uintptr_t)(ring0_stack + sizeof(ring0_stack));
    um_tss.iomap_base = sizeof(um_tss); /* no I/O bitmap */
    struct gdt_desc d = {sizeof(um_gdt) - 1, (uint64_t)(uintptr_t)um_gdt};
    um_load_gdt(&d, UM_TSS_SEL);
}

/* ---- the user mapping --------------------------------------------------- */

static uint64_t read_cr3(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr3, %0" : "=r"(v));
    return v;
}

static void write_cr3(uint64_t v)
{
    __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory");
}

static uint64_t *kit_pml4(void)
{
    return (uint64_t *)(uintptr_t)(read_cr3() & ~0xFFFULL);
}

/* The user code page (read-only) and a stack page, both for ring 3. */
static void map_user(bool on)
{
    uint64_t code = (uint64_t)(uintptr_t)um_user_start;
    if (um_user_end - um_user_start != 4096 || (code & 0xFFF))
        kit_fatal("the user code is not one page");
    memset(um_pt, 0, sizeof(um_pt));
    um_pt[0] = code | PTE_P | PTE_US;
    um_pt[1] = (uint64_t)(uintptr_t)user_stack | PTE_P | PTE_RW | PTE_US;
    memset(um_pd, 0, sizeof(um_pd));
    um_pd[0] = (uint64_t)(uintptr_t)um_pt | PTE_P | PTE_RW | PTE_US;
    memset(um_pdpt, 0, sizeof(um_pdpt));
    um_pdpt[0] = (uint64_t)(uintptr_t)um_pd | PTE_P | PTE_RW | PTE_US;
    kit_pml4()[1] =
        on ? (uint64_t)(uintptr_t)um_pdpt | PTE_P | PTE_RW | PTE_US : 0;
    write_cr3(read_cr3());
}

/* Where a label of the user page is seen from ring 3. */
static uint64_t user_va(const char *label)
{
    return UM_USER_VA + (uint64_t)(label - um_user_start);
}

/* ---- MSRs --------------------------------------------------------------- */

static void set_syscall_msrs(void)
{
    wrmsr(MSR_STAR, (uint64_t)(UM_USER_CS32 & ~3) << 48 | (uint64_t)KIT_CS << 32);
    wrmsr(MSR_LSTAR, (uint64_t)(uintptr_t)um_syscall_entry);
    wrmsr(MSR_CSTAR, 0);
    wrmsr(MSR_SFMASK, UM_SFMASK);
    wrmsr(MSR_SYSENTER_CS, KIT_CS);
    wrmsr(MSR_SYSENTER_ESP, (uint64_t)(uintptr_t)(ring0_stack + 4096));
    wrmsr(MSR_SYSENTER_EIP, (uint64_t)(uintptr_t)um_sysenter_entry);
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SCE);
}

/* ---- ring-0 handlers ---------------------------------------------------- */

struct event {
    uint64_t vector, error, rip, cs, ss, rsp, rflags, cr2;
    uint64_t rax, rcx, rdx, rsi, rdi, r8, r9, r11;
};
/* The last event that came from ring 3, and the last exception a fixup
 * returned from. */
static struct event ev, fixed;
/* A ring-3 exception resumes the user here when set, else the kernel. */
static uint64_t user_fixup_rip;

static void record(struct irq_frame *f)
{
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    ev = (struct event){
        .vector = f->vector, .error = f->error, .rip = f->rip, .cs = f->cs,
        .ss = f->ss, .rsp = f->rsp, .rflags = f->rflags, .cr2 = cr2,
        .rax = f->rax, .rcx = f->rcx, .rdx = f->rdx, .rsi = f->rsi,
        .rdi = f->rdi, .r8 = f->r8, .r9 = f->r9, .r11 = f->r11};
}

/* Leaves the handler into um_resume (ring 0) with RAX = result. */
static void resume_kernel(struct irq_frame *f, uint64_t result)
{
    f->rip = (uint64_t)(uintptr_t)um_resume;
    f->cs = KIT_CS;
    f->ss = KIT_DS;
    f->rsp = um_kernel_rsp;
    f->rflags = RF_FIXED;
    f->rax = result;
}

/* What the INT 0x80 handler saw of its own state. */
static uint64_t int_handler_rflags, int_frame_end;

static void on_int80(struct irq_frame *f)
{
    __asm__ volatile("pushfq; popq %0" : "=r"(int_handler_rflags));
    int_frame_end = (uint64_t)(uintptr_t)(&f->ss + 1);
    record(f);
    resume_kernel(f, UM_RES_INT);
}

static void on_user_fault(struct irq_frame *f)
{
    if ((f->cs & 3) != 3) {
        uint64_t cr2;
        __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
        kit_fatal("ring-0 exception %lu error 0x%lx rip 0x%lx cr2 0x%lx",
                  f->vector, f->error, f->rip, cr2);
    }
    record(f);
    if (f->vector == 6 && f->rip == user_va(um_user_report_ud2)) {
        resume_kernel(f, UM_RES_REPORT);
        return;
    }
    if (user_fixup_rip) {
        fixed = ev;
        f->rip = user_fixup_rip;
        user_fixup_rip = 0;
        return;
    }
    resume_kernel(f, UM_RES_FAULT);
}

static void handlers(bool on)
{
    static const unsigned vectors[] = {0, 6, 13, 14};
    for (size_t i = 0; i < ARRAY_SIZE(vectors); i++)
        idt_set_handler(vectors[i], on ? on_user_fault : NULL);
    idt_set_handler(UM_INT_VECTOR, on ? on_int80 : NULL);
    idt_set_gate_dpl(UM_INT_VECTOR, on ? 3 : 0);
}

static uint64_t run_user(const char *label, uint64_t arg)
{
    memset(&ev, 0, sizeof(ev));
    ev.vector = ~0ULL;
    return um_enter(user_va(label), UM_STACK_VA + 4096 - 64, UM_USER_RFLAGS,
                    arg);
}

static const char *result_name(uint64_t r)
{
    switch (r) {
    case UM_RES_SYSCALL: return "syscall entry";
    case UM_RES_SYSENTER: return "sysenter entry";
    case UM_RES_INT: return "int 0x80";
    case UM_RES_REPORT: return "report";
    case UM_RES_FAULT: return "exception";
    default: return "?";
    }
}

/* The event as one line of detail. */
#define EV_FMT "%s: vector %lu error 0x%lx rip 0x%lx cs 0x%lx ss 0x%lx " \
               "rflags 0x%lx rsp 0x%lx cr2 0x%lx rcx 0x%lx r11 0x%lx"
#define EV_ARGS(r) result_name(r), ev.vector, ev.error, ev.rip, ev.cs, \
                   ev.ss, ev.rflags, ev.rsp, ev.cr2, ev.rcx, ev.r11

/* ---- the checks --------------------------------------------------------- */

/* IRETQ into ring 3, #UD back: the report carries ring 3's view. */
static void check_iret(void)
{
    uint64_t r = run_user(um_user_report, 0);
    bool ok = r == UM_RES_REPORT && ev.cs == UM_USER_CS &&
              ev.ss == UM_USER_DS && ev.rdi == UM_USER_CS &&
              ev.rsi == UM_USER_DS && ev.rdx == UM_USER_RFLAGS &&
              ev.rsp == UM_STACK_VA + 4096 - 64;
    kit_check(ok, "user-iret", EV_FMT " rdi 0x%lx rsi 0x%lx rdx 0x%lx",
              EV_ARGS(r), ev.rdi, ev.rsi, ev.rdx);
}

/* INT 0x80 from ring 3 through a DPL 3 interrupt gate: the handler runs
 * in ring 0 with ring 3's CS, SS, RSP, RFLAGS and the next RIP. */
static void check_int(void)
{
    uint64_t r = run_user(um_user_int, 0);
    bool ok = r == UM_RES_INT && ev.vector == UM_INT_VECTOR &&
              ev.cs == UM_USER_CS && ev.ss == UM_USER_DS &&
              ev.rip == user_va(um_user_after_int) &&
              ev.rflags == UM_USER_RFLAGS &&
              ev.rsp == UM_STACK_VA + 4096 - 64 &&
              !(int_handler_rflags & RF_IF) &&
              int_frame_end == um_tss.rsp[0];
    kit_check(ok, "user-int80", EV_FMT " handler rflags 0x%lx, frame end "
              "0x%lx (rsp0 0x%lx)", EV_ARGS(r), int_handler_rflags,
              int_frame_end, um_tss.rsp[0]);
}

/* HLT in ring 3: #GP(0) at the HLT, then IRETQ back into ring 3. */
static void check_user_gp(void)
{
    memset(&fixed, 0, sizeof(fixed));
    user_fixup_rip = user_va(um_user_report);
    uint64_t r = run_user(um_user_hlt, 0);
    bool ok = r == UM_RES_REPORT && !user_fixup_rip && fixed.vector == 13 &&
              fixed.error == 0 && fixed.rip == user_va(um_user_hlt) &&
              fixed.cs == UM_USER_CS && ev.rdi == UM_USER_CS;
    user_fixup_rip = 0;
    kit_check(ok, "user-gp", "#GP vector %lu error 0x%lx rip 0x%lx cs 0x%lx, "
              "then " EV_FMT, fixed.vector, fixed.error, fixed.rip, fixed.cs,
              EV_ARGS(r));
}

/* A ring-3 read of a supervisor page: #PF, error P|U (0x5), CR2. */
static void check_user_pf(void)
{
    uint64_t addr = (uint64_t)(uintptr_t)&kernel_secret;
    uint64_t r = run_user(um_user_read, addr);
    bool ok = r == UM_RES_FAULT && ev.vector == 14 && ev.error == 0x5 &&
              ev.cr2 == addr && ev.rip == user_va(um_user_read) &&
              ev.cs == UM_USER_CS && ev.ss == UM_USER_DS;
    kit_check(ok, "user-pf", EV_FMT, EV_ARGS(r));
}

static void print_syscall_record(const char *name, uint64_t r)
{
    kit_printf("INFO %s result %s count %lu cs 0x%lx ss 0x%lx rcx 0x%lx "
               "r11 0x%lx rflags 0x%lx rsp 0x%lx rax 0x%lx\n",
               name, result_name(r), um_sc.count, um_sc.cs, um_sc.ss,
               um_sc.rcx, um_sc.r11, um_sc.rflags, um_sc.rsp, um_sc.rax);
}

/* SYSCALL from ring 3: the entry runs in ring 0 with the state the
 * architecture defines; it returns straight to the kernel. */
static void check_syscall(void)
{
    memset((void *)&um_sc, 0, sizeof(um_sc));
    uint64_t r = run_user(um_user_syscall, 0);
    print_syscall_record("usermode.syscall", r);
    uint64_t want_flags = UM_USER_RFLAGS & ~UM_SFMASK;
    bool ok = r == UM_RES_SYSCALL && um_sc.count == 1 &&
              um_sc.cs == KIT_CS && um_sc.ss == KIT_DS &&
              um_sc.rcx == user_va(um_user_after_syscall) &&
              um_sc.r11 == UM_USER_RFLAGS && um_sc.rflags == want_flags &&
              um_sc.rsp == UM_STACK_VA + 4096 - 64 &&
              um_sc.rax == UM_SYSCALL_RAX;
    kit_check(ok, "user-syscall",
              "%s, count %lu cs 0x%lx ss 0x%lx rcx 0x%lx r11 0x%lx rflags "
              "0x%lx (want 0x%lx) rsp 0x%lx; last ring-3 event " EV_FMT,
              result_name(r), um_sc.count, um_sc.cs, um_sc.ss, um_sc.rcx,
              um_sc.r11, um_sc.rflags, want_flags, um_sc.rsp, EV_ARGS(r));
}

/* SYSCALL, then SYSRETQ from the entry: ring 3 again at RCX with
 * RFLAGS = R11, CS/SS from STAR[63:48]. */
static void check_sysret(void)
{
    memset((void *)&um_sc, 0, sizeof(um_sc));
    um_sc.sysret = 1;
    uint64_t r = run_user(um_user_syscall, 0);
    um_sc.sysret = 0;
    print_syscall_record("usermode.sysret", r);
    bool ok = r == UM_RES_REPORT && um_sc.count == 1 &&
              ev.cs == UM_USER_CS && ev.ss == UM_USER_DS &&
              ev.rdi == UM_USER_CS && ev.rsi == UM_USER_DS &&
              ev.rdx == UM_USER_RFLAGS &&
              ev.rax == UM_SYSRET_RAX &&
              ev.r8 == user_va(um_user_after_syscall) &&
              ev.r9 == UM_USER_RFLAGS;
    kit_check(ok, "user-sysret", EV_FMT " rdi 0x%lx rsi 0x%lx rdx 0x%lx "
              "rax 0x%lx r8 0x%lx r9 0x%lx", EV_ARGS(r), ev.rdi, ev.rsi,
              ev.rdx, ev.rax, ev.r8, ev.r9);
}

/* SYSENTER from 64-bit ring 3 (Intel): CS = SYSENTER_CS, SS = +8, RSP
 * and RIP from the MSRs, IF cleared. */
static void check_sysenter(void)
{
    memset((void *)&um_sc, 0, sizeof(um_sc));
    uint64_t r = run_user(um_user_sysenter, 0);
    print_syscall_record("usermode.sysenter", r);
    bool ok = r == UM_RES_SYSENTER && um_sc.count == 1 &&
              um_sc.cs == KIT_CS && um_sc.ss == KIT_DS &&
              um_sc.rsp == (uint64_t)(uintptr_t)(ring0_stack + 4096) &&
              um_sc.rflags == (UM_USER_RFLAGS & ~RF_IF);
    kit_check(ok, "user-sysenter", "%s, count %lu cs 0x%lx ss 0x%lx "
              "rflags 0x%lx rsp 0x%lx; last ring-3 event " EV_FMT,
              result_name(r), um_sc.count, um_sc.cs, um_sc.ss, um_sc.rflags,
              um_sc.rsp, EV_ARGS(r));
}

void test_usermode(const struct acpi_info *ai)
{
    (void)ai;
    pic_disable();
    irq_disable();
    load_test_gdt();
    map_user(true);
    set_syscall_msrs();
    handlers(true);
    kit_info("usermode.lstar", "0x%lx", (uint64_t)(uintptr_t)um_syscall_entry);
    kit_info("usermode.user_va", "0x%llx", UM_USER_VA);
    check_iret();
    check_user_gp();
    check_user_pf();
    check_syscall();
    check_sysret();
    check_int();
    check_sysenter();
    handlers(false);
    map_user(false);
    cpu_load_gdt();
}

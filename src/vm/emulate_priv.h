/* Internals shared by the files of the userspace completion
 * (emulate.c: state, decoding, exceptions; emulate_ops.c: the small
 * instructions; emulate_xsave.c: the XSAVE family; emulate_vector.c:
 * vector instructions run on the host). Not for use elsewhere. */
#ifndef KVMPC_EMULATE_PRIV_H
#define KVMPC_EMULATE_PRIV_H

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "util.h"
#include "vm/emulate.h"
#include "vm/guest_paging.h"
#include "vm/xstate.h"

#define CR0_MP (1ull << 1)
#define CR0_TS (1ull << 3)
#define CR0_EM (1ull << 2)
#define CR0_NE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define CR4_TSD (1ull << 2)
#define CR4_FSGSBASE (1ull << 16)
#define CR4_OSXSAVE (1ull << 18)
#define CR4_PKE (1ull << 22)
#define RFLAGS_CF (1ull << 0)
#define RFLAGS_PF (1ull << 2)
#define RFLAGS_AF (1ull << 4)
#define RFLAGS_ZF (1ull << 6)
#define RFLAGS_SF (1ull << 7)
#define RFLAGS_OF (1ull << 11)
#define RFLAGS_RF (1ull << 16)
#define RFLAGS_AC (1ull << 18)

#define MSR_IA32_TSC 0x10u
#define MSR_IA32_XSS 0xDA0u
#define MSR_TSC_AUX 0xC0000103u

#define PKRU_COMPONENT 9

enum {
    VEC_DB = 1,
    VEC_BP = 3,
    VEC_OF = 4,
    VEC_UD = 6,
    VEC_NM = 7,
    VEC_MF = 16,
    VEC_XM = 19,
};

struct exception {
    bool set;
    uint8_t vector;
    bool has_error;
    uint32_t error;
    bool has_cr2;
    uint64_t cr2;
};

/* Everything one completion works on. */
struct emu {
    const struct emu_vcpu_ops *ops;
    void *vcpu;
    const struct guest_mem *mem;
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct gp_mmu mmu;
    struct x86_insn insn;
    bool decoded;
    uint8_t raw[X86_MAX_INSN_LEN];
    unsigned raw_len;
    bool regs_changed;
    bool sregs_changed; /* segment state written back too (iret) */
    enum x86_op stat_op; /* the counter this exit goes to */
    unsigned extra_done; /* more instructions completed in the same exit */
    struct exception exc;
    char *diag;
    size_t diag_len;
};

/* Ends the completion with r (EMU_UNSUPPORTED or EMU_ERROR) and the
 * one-line diagnostic "where: why". */
enum emu_result emu_stop(struct emu *e, enum emu_result r, const char *fmt,
                         ...) PRINTF_LIKE(3, 4);
#define unsupported(e, ...) emu_stop(e, EMU_UNSUPPORTED, __VA_ARGS__)
#define vcpu_error(e, what) \
    emu_stop(e, EMU_ERROR, "%s failed: %s", what, strerror(errno))

/* Registers: the 16 GPRs by encoding number; writes of 4 bytes
 * zero-extend in 64-bit mode, of 2 bytes merge. */
uint64_t *emu_gpr(struct kvm_regs *r, unsigned i);
bool emu_long64(const struct emu *e);
void emu_set_gpr32(struct emu *e, unsigned i, uint32_t v);
void emu_set_gpr64(struct emu *e, unsigned i, uint64_t v);
void emu_set_gpr_sized(struct emu *e, unsigned i, unsigned size, uint64_t v);
uint64_t emu_truncate(uint64_t v, unsigned size);
uint64_t emu_edx_eax(const struct emu *e);
void emu_set_flag(struct emu *e, uint64_t flag, bool on);
/* RIP past the instruction: it completed. Returns EMU_DONE. */
enum emu_result emu_advance(struct emu *e);

/* Exceptions: injected instead of completing (RIP unchanged). */
enum emu_result emu_raise(struct emu *e, uint8_t vector, bool has_error,
                          uint32_t error);
enum emu_result emu_raise_gp0(struct emu *e);
enum emu_result emu_raise_ud(struct emu *e);
/* A trap after the instruction completed (int3, into, int1). */
enum emu_result emu_complete_and_raise(struct emu *e, uint8_t vector);
/* EMU_DONE for GP_OK; injects the fault, or stops for non-RAM. */
enum emu_result emu_paging_result(struct emu *e, enum gp_status st,
                                  const struct gp_fault *f, uint64_t la);

/* Memory and state. */
struct gp_segment emu_segment(const struct emu *e, enum x86_seg n);
size_t emu_xsave_len(const struct emu *e);
void emu_layout(struct emu *e, struct xstate_layout *l);
/* Linear address of the ModRM memory operand, checked for size bytes. */
enum emu_result emu_mem_operand(struct emu *e, uint64_t size,
                                enum gp_access acc, uint64_t *la);
enum emu_result emu_read_linear(struct emu *e, uint64_t la, void *buf,
                                size_t len, enum gp_access acc);
/* The descriptor a selector names in the GDT or LDT, read as the CPU
 * reads it (supervisor access). found is false, with nothing raised, for
 * a null selector or one beyond its table; a paging fault is raised. */
enum emu_result emu_read_descriptor(struct emu *e, uint16_t sel,
                                    uint64_t *desc, bool *found);
/* The r/m source operand of size bytes, register or memory. */
enum emu_result emu_read_rm(struct emu *e, unsigned size, uint64_t *v);
enum emu_result emu_get_xcr0(struct emu *e, uint64_t *xcr0);
/* Decodes the instruction at the current RIP into e->insn without raising
 * anything; false when it cannot be fetched or decoded. */
bool emu_peek_next(struct emu *e);

/* The completions. */
enum emu_result emu_complete(struct emu *e);
enum emu_result emu_xsave_family(struct emu *e);
enum emu_result emu_iret(struct emu *e);
enum emu_result emu_vector(struct emu *e);

#endif

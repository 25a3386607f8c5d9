/* Executes one guest vector instruction (SSE, AVX, AVX-512, BMI, ...)
 * on the host CPU, with the guest's general registers, flags and XSAVE
 * state loaded, for the instructions the host's emulator lacks. Nothing
 * in the instruction reaches host memory: the decoder admits only pure
 * register/memory computations (x86_native_ok()), the memory operand is
 * re-encoded to point into a two-page bounce area that holds copies of
 * the guest pages (protected as the guest may access them), and faults
 * in the instruction come back as signal information to be turned into
 * guest exceptions.
 *
 * One executor per vCPU thread. It installs SIGSEGV/SIGBUS/SIGFPE/SIGILL
 * handlers once per process (chaining to earlier handlers for faults that
 * are not its own) and an alternate signal stack in the executing thread
 * when the thread has none. */
#ifndef KVMPC_EMULATE_NATIVE_H
#define KVMPC_EMULATE_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#include "vm/x86_decode.h"

#define EMU_NATIVE_PAGE 4096u
#define EMU_NATIVE_XSAVE_MAX 4096u
#define EMU_NATIVE_MAX_CODE 16u

struct emu_native;

/* Returns a new executor, or NULL after reporting why. */
struct emu_native *emu_native_create(void);
void emu_native_destroy(struct emu_native *n);

/* The bounce area: 2 pages, page aligned. */
uint8_t *emu_native_bounce(struct emu_native *n);
/* Access the instruction may make to bounce page i (0 or 1):
 * PROT_NONE, PROT_READ or PROT_READ | PROT_WRITE. Returns 0 or -1. */
int emu_native_protect(struct emu_native *n, unsigned page, int prot);

/* One execution. code: the (re-encoded) instruction; gpr/rflags: guest
 * registers in and out (only arithmetic flags and DF are used);
 * xsave: standard-format image, in and out, restored and saved with the
 * components in xsave_mask (which must exclude PKRU and AMX). */
struct emu_native_job {
    uint8_t code[EMU_NATIVE_MAX_CODE];
    unsigned code_len;
    uint64_t gpr[16];
    uint64_t rflags;
    uint8_t *xsave;
    size_t xsave_len;
    uint64_t xsave_mask;
    /* Out: signal 0 when the instruction completed; otherwise the signal,
     * the CPU's trap number and error code, and si_addr. in_slot is 1 when
     * the instruction itself faulted (0: the executor's own code did). */
    int signo;
    int trapno;
    uint64_t error_code;
    uint64_t fault_addr;
    int in_slot;
};

/* Returns 0 (see job->signo), or -1 after reporting a host failure. */
int emu_native_exec(struct emu_native *n, struct emu_native_job *job);

/* Components the host can load for a guest (host XCR0 without PKRU and
 * AMX tiles). */
uint64_t emu_native_xsave_mask(void);

/* Re-encodes insn (a memory form) with its memory operand replaced by
 * [base], base being a register the instruction does not otherwise use;
 * register forms are copied. Writes at most EMU_NATIVE_MAX_CODE bytes and
 * returns the length, 0 when impossible. *base is X86_REG_NONE for
 * register forms. */
unsigned emu_native_encode(const struct x86_insn *insn, uint8_t *out,
                           int *base);

/* The scale of an EVEX compressed 8-bit displacement (disp8 * N, N set
 * by the instruction's tuple type): found by running the instruction,
 * unmasked, against inaccessible pages and reading the faulting address.
 * job supplies the guest registers and XSAVE image. Returns 0 and *scale,
 * or -1 when the form has no such displacement or the probe fails. */
int emu_native_disp8_scale(struct emu_native *n, const struct x86_insn *insn,
                           struct emu_native_job *job, unsigned *scale);

#endif

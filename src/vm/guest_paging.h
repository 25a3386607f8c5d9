/* Guest linear-address translation the way the CPU does it: segmentation
 * (base, limit, type) outside 64-bit mode, then the guest's page tables
 * (none, 32-bit with PSE, PAE, 4- and 5-level) walked through the checked
 * guest-memory accessor, with present/write/user/NX/SMEP/SMAP/PKU checks
 * and accessed/dirty updates. Faults come back as the exception the CPU
 * would raise, for the caller to inject. */
#ifndef KVMPC_GUEST_PAGING_H
#define KVMPC_GUEST_PAGING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vm/memory.h"
#include "vm/x86_decode.h"

enum gp_access {
    GP_READ,
    GP_WRITE, /* also checks read: every write here is read-modify-write */
    GP_FETCH,
};

/* Control state the walk depends on. */
struct gp_mmu {
    uint64_t cr0, cr3, cr4, efer, rflags;
    uint8_t cpl;
    uint32_t pkru;      /* used when CR4.PKE is set */
    uint8_t maxphyaddr; /* CPUID 0x80000008 EAX[7:0]; 0 means 52 */
    enum x86_mode mode;
};

/* A segment register as KVM describes it (limit already in bytes). */
struct gp_segment {
    uint64_t base;
    uint32_t limit;
    uint8_t type, s, dpl, present, db, g, l, unusable;
};

/* Exception vectors and page-fault error-code bits. */
enum {
    GP_VEC_SS = 12,
    GP_VEC_GP = 13,
    GP_VEC_PF = 14,
};
enum {
    GP_PFEC_P = 1 << 0,
    GP_PFEC_W = 1 << 1,
    GP_PFEC_U = 1 << 2,
    GP_PFEC_RSVD = 1 << 3,
    GP_PFEC_I = 1 << 4,
    GP_PFEC_PK = 1 << 5,
};

struct gp_fault {
    uint8_t vector;      /* GP_VEC_PF, GP_VEC_GP or GP_VEC_SS */
    uint32_t error_code;
    uint64_t cr2;        /* faulting linear address for #PF */
};

enum gp_status {
    GP_OK,
    GP_FAULT,     /* *fault says which exception to raise */
    GP_NO_MEMORY, /* a page table or the data is not guest RAM (MMIO, ROM
                   * write, outside memory): cannot be completed here */
};

/* Linear → guest-physical for one byte. Sets accessed bits on the
 * entries used and the dirty bit for writes (only when the translation
 * succeeds). */
enum gp_status gp_translate(const struct guest_mem *mem,
                            const struct gp_mmu *mmu, uint64_t la,
                            enum gp_access acc, uint64_t *gpa,
                            struct gp_fault *fault);

/* The same check without touching accessed/dirty bits. */
enum gp_status gp_lookup(const struct guest_mem *mem, const struct gp_mmu *mmu,
                         uint64_t la, enum gp_access acc, uint64_t *gpa,
                         struct gp_fault *fault);

/* Segment:offset → linear for an access of size bytes: canonical check
 * in 64-bit mode (#GP, or #SS for SS), limit/type/present checks
 * elsewhere, address wrap at 4 GiB outside 64-bit mode. */
enum gp_status gp_linear(const struct gp_mmu *mmu,
                         const struct gp_segment *seg, enum x86_seg segno,
                         uint64_t offset, uint64_t size, enum gp_access acc,
                         uint64_t *la, struct gp_fault *fault);

/* Copies between a linear range (possibly spanning pages) and a host
 * buffer. A write checks every page before writing any byte. */
enum gp_status gp_read(const struct guest_mem *mem, const struct gp_mmu *mmu,
                       uint64_t la, void *buf, size_t len, enum gp_access acc,
                       struct gp_fault *fault);
enum gp_status gp_write(const struct guest_mem *mem, const struct gp_mmu *mmu,
                        uint64_t la, const void *buf, size_t len,
                        struct gp_fault *fault);

/* Checks that [la, la + len) is writable without writing anything (sets
 * accessed and dirty bits as a write would). */
enum gp_status gp_probe_write(const struct guest_mem *mem,
                              const struct gp_mmu *mmu, uint64_t la,
                              size_t len, struct gp_fault *fault);

/* Host pointer for a writable linear range inside one page, for atomic
 * read-modify-write. */
enum gp_status gp_host_ptr(const struct guest_mem *mem,
                           const struct gp_mmu *mmu, uint64_t la, size_t len,
                           void **host, struct gp_fault *fault);

#endif

/* XSAVE-area conversion between the vCPU state as KVM hands it out
 * (struct kvm_xsave: standard format, XSTATE_BV = the components in use)
 * and a guest XSAVE area in standard or compacted format, following the
 * architectural rules of XSAVE/XSAVEOPT/XSAVEC/XSAVES and
 * XRSTOR/XRSTORS. Pure functions over byte buffers. */
#ifndef KVMPC_XSTATE_H
#define KVMPC_XSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XSTATE_LEGACY_SIZE 512
#define XSTATE_HEADER_OFF 512
#define XSTATE_HEADER_SIZE 64
#define XSTATE_EXT_OFF 576
#define XSTATE_MXCSR_DEFAULT 0x1F80u
#define XCOMP_BV_COMPACTED (1ull << 63)

/* State-component layout, from CPUID leaf 0xD. */
struct xstate_layout {
    uint64_t user_mask;       /* components XCR0 may enable */
    uint64_t supervisor_mask; /* components IA32_XSS may enable */
    uint64_t align64;         /* 64-byte aligned in the compacted format */
    uint32_t offset[64];      /* standard-format offset (components >= 2) */
    uint32_t size[64];
};

typedef void (*xstate_cpuid_fn)(void *opaque, uint32_t leaf, uint32_t subleaf,
                                uint32_t out[4]);

/* Fills *l from CPUID leaf 0xD as cpuid() reports it. */
void xstate_layout_from_cpuid(struct xstate_layout *l, xstate_cpuid_fn cpuid,
                              void *opaque);

/* Byte ranges of an XSAVE area an instruction reads or writes. */
#define XSTATE_MAX_RANGES 72
struct xstate_ranges {
    unsigned n;
    struct {
        uint32_t off, len;
    } r[XSTATE_MAX_RANGES];
};

enum xstate_result {
    XSTATE_OK = 0,
    XSTATE_GP = -1,          /* the instruction raises #GP(0) */
    XSTATE_UNSUPPORTED = -2, /* a component the KVM image lacks */
};

/* Offset of component i (>= 2) in a compacted area whose XCOMP_BV is bv. */
uint32_t xstate_compacted_offset(const struct xstate_layout *l, uint64_t bv,
                                 unsigned i);
/* Bytes an area of the given format spans for the components in rfbm. */
uint32_t xstate_area_size(const struct xstate_layout *l, bool compacted,
                          uint64_t rfbm);

/* XSAVE/XSAVEOPT (standard) or XSAVEC/XSAVES (compacted): stores the
 * state components in rfbm from kvm (kvm_len bytes) into area (area_len
 * bytes, at least xstate_area_size()). For the standard format the
 * guest's current XSTATE_BV must already be at area[512..519]. fmt64 is
 * REX.W (64-bit x87 instruction/data pointers). *written lists the bytes
 * the instruction stores. */
enum xstate_result xstate_save(const struct xstate_layout *l,
                               const uint8_t *kvm, size_t kvm_len,
                               bool compacted, bool fmt64, uint64_t rfbm,
                               uint8_t *area, size_t area_len,
                               struct xstate_ranges *written);

/* XRSTOR/XRSTORS, first step: checks the 64-byte header against rfbm and
 * allowed (XCR0, or XCR0 | IA32_XSS for XRSTORS; compacted_only for
 * XRSTORS) and lists the bytes of the area the restore reads. */
enum xstate_result xstate_restore_plan(const struct xstate_layout *l,
                                       const uint8_t header[64],
                                       uint64_t rfbm, uint64_t allowed,
                                       bool compacted_only,
                                       struct xstate_ranges *to_read);

/* Second step: loads the components in rfbm from area (holding the bytes
 * listed by the plan, including the header) into kvm, or puts them in
 * their initial configuration, and updates kvm's XSTATE_BV. */
enum xstate_result xstate_restore(const struct xstate_layout *l, uint8_t *kvm,
                                  size_t kvm_len, const uint8_t *area,
                                  size_t area_len, bool fmt64, uint64_t rfbm);

/* XINUSE as the KVM image reports it (bit 1 also when MXCSR differs from
 * its initial value, as the compacted save instructions treat it). */
uint64_t xstate_inuse(const uint8_t *kvm, bool for_compacted);

#endif

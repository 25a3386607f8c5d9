#include "vm/xstate.h"

#include <string.h>

#include "util.h"

/* Legacy-region layout (the FXSAVE image). */
#define X87_HEAD_END 24  /* FCW, FSW, FTW, FOP, FIP, FDP */
#define MXCSR_OFF 24
#define MXCSR_MASK_OFF 28
#define ST_OFF 32
#define ST_END 160
#define XMM_OFF 160
#define XMM_END 416

#define BIT(i) (1ull << (i))

#define get64 get_le64
#define get32 get_le32
#define put64 put_le64
#define put32 put_le32

void xstate_layout_from_cpuid(struct xstate_layout *l, xstate_cpuid_fn cpuid,
                              void *opaque)
{
    uint32_t r[4];
    memset(l, 0, sizeof(*l));
    cpuid(opaque, 0xD, 0, r);
    l->user_mask = r[0] | (uint64_t)r[3] << 32;
    cpuid(opaque, 0xD, 1, r);
    l->supervisor_mask = r[2] | (uint64_t)r[3] << 32;
    l->offset[0] = 0;
    l->size[0] = ST_END;
    l->offset[1] = XMM_OFF;
    l->size[1] = XMM_END - XMM_OFF;
    for (unsigned i = 2; i < 63; i++) {
        if (!((l->user_mask | l->supervisor_mask) & BIT(i)))
            continue;
        cpuid(opaque, 0xD, i, r);
        l->size[i] = r[0];
        l->offset[i] = r[1];
        if (r[2] & 2)
            l->align64 |= BIT(i);
    }
}

uint32_t xstate_compacted_offset(const struct xstate_layout *l, uint64_t bv,
                                 unsigned i)
{
    uint32_t off = XSTATE_EXT_OFF;
    for (unsigned j = 2; j < 63; j++) {
        if (!(bv & BIT(j)))
            continue;
        if (l->align64 & BIT(j))
            off = (off + 63) & ~63u;
        if (j == i)
            return off;
        off += l->size[j];
    }
    return off;
}

uint32_t xstate_area_size(const struct xstate_layout *l, bool compacted,
                          uint64_t rfbm)
{
    if (compacted)
        return xstate_compacted_offset(l, rfbm & ~XCOMP_BV_COMPACTED, 63);
    uint32_t end = XSTATE_EXT_OFF;
    for (unsigned i = 2; i < 63; i++)
        if ((rfbm & BIT(i)) && l->offset[i] + l->size[i] > end)
            end = l->offset[i] + l->size[i];
    return end;
}

static void add_range(struct xstate_ranges *rs, uint32_t off, uint32_t len)
{
    if (len == 0)
        return;
    if (rs->n && rs->r[rs->n - 1].off + rs->r[rs->n - 1].len == off) {
        rs->r[rs->n - 1].len += len;
        return;
    }
    if (rs->n < XSTATE_MAX_RANGES) {
        rs->r[rs->n].off = off;
        rs->r[rs->n].len = len;
        rs->n++;
    }
}

static bool fits(uint64_t off, uint64_t len, size_t total)
{
    return off + len <= total;
}

/* Every extended component in mask has a known place in the KVM image. */
static bool kvm_has(const struct xstate_layout *l, uint64_t mask,
                    size_t kvm_len)
{
    if (mask & ~l->user_mask & ~3ull)
        return false;
    for (unsigned i = 2; i < 63; i++)
        if ((mask & BIT(i)) &&
            (l->size[i] == 0 || !fits(l->offset[i], l->size[i], kvm_len)))
            return false;
    return (mask >> 63) == 0;
}

/* x87 state between the 64-bit image and the requested format. Without
 * REX.W the pointers are 32-bit offsets followed by selectors, which a
 * 64-bit image does not keep: they are stored as zero. */
static void x87_out(const uint8_t *kvm, uint8_t *area, bool fmt64)
{
    memcpy(area, kvm, 8);
    if (fmt64) {
        memcpy(area + 8, kvm + 8, 16);
    } else {
        memset(area + 8, 0, 16);
        memcpy(area + 8, kvm + 8, 4);
        memcpy(area + 16, kvm + 16, 4);
    }
    memcpy(area + ST_OFF, kvm + ST_OFF, ST_END - ST_OFF);
}

static void x87_in(uint8_t *kvm, const uint8_t *area, bool fmt64)
{
    memcpy(kvm, area, 8);
    if (fmt64) {
        memcpy(kvm + 8, area + 8, 16);
    } else {
        put64(kvm + 8, get32(area + 8));
        put64(kvm + 16, get32(area + 16));
    }
    memcpy(kvm + ST_OFF, area + ST_OFF, ST_END - ST_OFF);
}

static void x87_init(uint8_t *kvm)
{
    memset(kvm, 0, X87_HEAD_END);
    kvm[0] = 0x7F; /* FCW = 037FH; FTW (abridged) = 0: all empty */
    kvm[1] = 0x03;
    memset(kvm + ST_OFF, 0, ST_END - ST_OFF);
}

uint64_t xstate_inuse(const uint8_t *kvm, bool for_compacted)
{
    uint64_t bv = get64(kvm + XSTATE_HEADER_OFF);
    if (for_compacted && get32(kvm + MXCSR_OFF) != XSTATE_MXCSR_DEFAULT)
        bv |= BIT(1);
    return bv;
}

static void save_legacy(const uint8_t *kvm, uint8_t *area, bool fmt64,
                        uint64_t save, bool mxcsr,
                        struct xstate_ranges *w)
{
    if (save & BIT(0)) {
        x87_out(kvm, area, fmt64);
        add_range(w, 0, X87_HEAD_END);
    }
    if (mxcsr) {
        memcpy(area + MXCSR_OFF, kvm + MXCSR_OFF, 8);
        add_range(w, MXCSR_OFF, 8);
    }
    if (save & BIT(0))
        add_range(w, ST_OFF, ST_END - ST_OFF);
    if (save & BIT(1)) {
        memcpy(area + XMM_OFF, kvm + XMM_OFF, XMM_END - XMM_OFF);
        add_range(w, XMM_OFF, XMM_END - XMM_OFF);
    }
}

enum xstate_result xstate_save(const struct xstate_layout *l,
                               const uint8_t *kvm, size_t kvm_len,
                               bool compacted, bool fmt64, uint64_t rfbm,
                               uint8_t *area, size_t area_len,
                               struct xstate_ranges *w)
{
    w->n = 0;
    if (kvm_len < XSTATE_EXT_OFF || !kvm_has(l, rfbm, kvm_len) ||
        area_len < xstate_area_size(l, compacted, rfbm))
        return XSTATE_UNSUPPORTED;
    uint64_t inuse = xstate_inuse(kvm, compacted);
    /* The standard form stores every requested component (init values
     * for those not in use); the compacted form only those in use. */
    uint64_t save = compacted ? rfbm & inuse : rfbm;
    bool mxcsr = compacted ? (save & BIT(1)) : (rfbm & (BIT(1) | BIT(2)));
    save_legacy(kvm, area, fmt64, save, mxcsr, w);
    uint8_t *hdr = area + XSTATE_HEADER_OFF;
    if (compacted) {
        put64(hdr, save);
        put64(hdr + 8, rfbm | XCOMP_BV_COMPACTED);
        add_range(w, XSTATE_HEADER_OFF, 16);
    } else {
        put64(hdr, (get64(hdr) & ~rfbm) | (inuse & rfbm));
        add_range(w, XSTATE_HEADER_OFF, 8);
    }
    for (unsigned i = 2; i < 63; i++) {
        if (!(save & BIT(i)))
            continue;
        uint32_t dst = compacted ? xstate_compacted_offset(l, rfbm, i)
                                 : l->offset[i];
        memcpy(area + dst, kvm + l->offset[i], l->size[i]);
        add_range(w, dst, l->size[i]);
    }
    return XSTATE_OK;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Header checks of XRSTOR/XRSTORS: #GP when they fail. */
static bool header_valid(const uint8_t *hdr, uint64_t allowed,
                         bool compacted_only)
{
    uint64_t xstate_bv = get64(hdr), xcomp_bv = get64(hdr + 8);
    if (!(xcomp_bv & XCOMP_BV_COMPACTED))
        return !compacted_only && !(xstate_bv & ~allowed) &&
               all_zero(hdr + 8, 16);
    uint64_t comp = xcomp_bv & ~XCOMP_BV_COMPACTED;
    return !(comp & ~allowed) && !(xstate_bv & ~comp) &&
           all_zero(hdr + 16, XSTATE_HEADER_SIZE - 16);
}

/* Where component i lies in the guest area described by hdr. */
static uint32_t area_offset(const struct xstate_layout *l, const uint8_t *hdr,
                            unsigned i)
{
    uint64_t xcomp_bv = get64(hdr + 8);
    if (xcomp_bv & XCOMP_BV_COMPACTED)
        return xstate_compacted_offset(l, xcomp_bv & ~XCOMP_BV_COMPACTED, i);
    return l->offset[i];
}

enum xstate_result xstate_restore_plan(const struct xstate_layout *l,
                                       const uint8_t hdr[64], uint64_t rfbm,
                                       uint64_t allowed, bool compacted_only,
                                       struct xstate_ranges *rd)
{
    rd->n = 0;
    if (!header_valid(hdr, allowed, compacted_only))
        return XSTATE_GP;
    bool compacted = get64(hdr + 8) & XCOMP_BV_COMPACTED;
    uint64_t load = rfbm & get64(hdr);
    if (load & ~(l->user_mask | 3ull))
        return XSTATE_UNSUPPORTED;
    bool mxcsr = compacted ? (load & BIT(1)) : (rfbm & (BIT(1) | BIT(2)));
    if (load & BIT(0))
        add_range(rd, 0, X87_HEAD_END);
    if (mxcsr)
        add_range(rd, MXCSR_OFF, 8);
    if (load & BIT(0))
        add_range(rd, ST_OFF, ST_END - ST_OFF);
    if (load & BIT(1))
        add_range(rd, XMM_OFF, XMM_END - XMM_OFF);
    add_range(rd, XSTATE_HEADER_OFF, XSTATE_HEADER_SIZE);
    for (unsigned i = 2; i < 63; i++) {
        if (!(load & BIT(i)))
            continue;
        if (l->size[i] == 0)
            return XSTATE_UNSUPPORTED;
        add_range(rd, area_offset(l, hdr, i), l->size[i]);
    }
    return XSTATE_OK;
}

/* The MXCSR value the restore leaves, or -1 for #GP (reserved bits). */
static int64_t restored_mxcsr(const uint8_t *kvm, const uint8_t *area,
                              bool compacted, uint64_t rfbm, uint64_t load)
{
    uint32_t mask = get32(kvm + MXCSR_MASK_OFF);
    uint32_t v = get32(kvm + MXCSR_OFF);
    if (mask == 0)
        mask = 0xFFBF; /* the architectural default MXCSR_MASK */
    if (compacted) {
        if (rfbm & BIT(1))
            v = (load & BIT(1)) ? get32(area + MXCSR_OFF)
                                : XSTATE_MXCSR_DEFAULT;
    } else if (rfbm & (BIT(1) | BIT(2))) {
        v = get32(area + MXCSR_OFF);
    }
    return (v & ~mask) ? -1 : (int64_t)v;
}

enum xstate_result xstate_restore(const struct xstate_layout *l, uint8_t *kvm,
                                  size_t kvm_len, const uint8_t *area,
                                  size_t area_len, bool fmt64, uint64_t rfbm)
{
    const uint8_t *hdr = area + XSTATE_HEADER_OFF;
    if (area_len < XSTATE_EXT_OFF || kvm_len < XSTATE_EXT_OFF)
        return XSTATE_UNSUPPORTED;
    bool compacted = get64(hdr + 8) & XCOMP_BV_COMPACTED;
    uint64_t load = rfbm & get64(hdr);
    if (!kvm_has(l, rfbm, kvm_len) ||
        area_len < xstate_area_size(l, compacted,
                                    compacted ? get64(hdr + 8) : load))
        return XSTATE_UNSUPPORTED;
    int64_t mxcsr = restored_mxcsr(kvm, area, compacted, rfbm, load);
    if (mxcsr < 0)
        return XSTATE_GP;
    if (rfbm & BIT(0)) {
        if (load & BIT(0))
            x87_in(kvm, area, fmt64);
        else
            x87_init(kvm);
    }
    put32(kvm + MXCSR_OFF, (uint32_t)mxcsr);
    if (rfbm & BIT(1)) {
        if (load & BIT(1))
            memcpy(kvm + XMM_OFF, area + XMM_OFF, XMM_END - XMM_OFF);
        else
            memset(kvm + XMM_OFF, 0, XMM_END - XMM_OFF);
    }
    for (unsigned i = 2; i < 63; i++) {
        if (!(rfbm & BIT(i)))
            continue;
        if (load & BIT(i))
            memcpy(kvm + l->offset[i], area + area_offset(l, hdr, i),
                   l->size[i]);
        else
            memset(kvm + l->offset[i], 0, l->size[i]);
    }
    uint64_t bv = (get64(kvm + XSTATE_HEADER_OFF) & ~rfbm) | load;
    /* KVM applies MXCSR only along with an in-use SSE (or x87/AVX)
     * component; keep SSE marked in use while MXCSR is not initial. */
    if (mxcsr != XSTATE_MXCSR_DEFAULT)
        bv |= BIT(1);
    put64(kvm + XSTATE_HEADER_OFF, bv);
    return XSTATE_OK;
}

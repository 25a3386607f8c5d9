#include "vm/guest_paging.h"

#include <string.h>

#define CR0_PE (1ull << 0)
#define CR0_WP (1ull << 16)
#define CR0_PG (1ull << 31)
#define CR4_PSE (1ull << 4)
#define CR4_PAE (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define CR4_SMEP (1ull << 20)
#define CR4_SMAP (1ull << 21)
#define CR4_PKE (1ull << 22)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)
#define RFLAGS_AC (1ull << 18)

#define PTE_P (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_US (1ull << 2)
#define PTE_A (1ull << 5)
#define PTE_D (1ull << 6)
#define PTE_PS (1ull << 7)
#define PTE_XD (1ull << 63)
#define PTE_FRAME 0x000FFFFFFFFFF000ull

#define PAGE_SIZE 4096ull

/* What a walk found before the permission checks. */
struct walk {
    uint64_t gpa;
    uint64_t leaf;
    bool rw, us, nx;
    bool ia32e; /* 4- or 5-level paging: protection keys apply */
    unsigned n;
    uint64_t entry_gpa[5];
    bool entry_has_a[5];
};

struct walk_level {
    unsigned shift;
    unsigned bits;
    bool may_be_large;
};

static enum gp_status fault(struct gp_fault *f, uint8_t vector,
                            uint32_t error_code, uint64_t cr2)
{
    f->vector = vector;
    f->error_code = error_code;
    f->cr2 = cr2;
    return GP_FAULT;
}

static uint64_t phys_limit_mask(const struct gp_mmu *mmu)
{
    unsigned bits = mmu->maxphyaddr ? mmu->maxphyaddr : 52;
    if (bits > 52)
        bits = 52;
    return bits == 64 ? ~0ull : (1ull << bits) - 1;
}

static uint32_t access_error_code(const struct gp_mmu *mmu, enum gp_access acc)
{
    uint32_t ec = 0;
    if (acc == GP_WRITE)
        ec |= GP_PFEC_W;
    if (mmu->cpl == 3)
        ec |= GP_PFEC_U;
    if (acc == GP_FETCH && ((mmu->cr4 & CR4_SMEP) ||
                            ((mmu->cr4 & CR4_PAE) && (mmu->efer & EFER_NXE))))
        ec |= GP_PFEC_I;
    return ec;
}

/* Reads one paging-structure entry (4 or 8 bytes). */
static enum gp_status read_entry(const struct guest_mem *mem, uint64_t gpa,
                                 unsigned size, uint64_t *e)
{
    uint64_t v = 0;
    if (gmem_read(mem, gpa, &v, size) != 0)
        return GP_NO_MEMORY;
    *e = v; /* x86 hosts are little-endian like the guest */
    return GP_OK;
}

/* Reserved-bit check for a present 64-bit entry at a level. */
static bool reserved_64(const struct gp_mmu *mmu, uint64_t e, unsigned shift,
                        bool large, bool may_be_large)
{
    uint64_t rsvd = PTE_FRAME & ~phys_limit_mask(mmu);
    if (!(mmu->efer & EFER_NXE))
        rsvd |= PTE_XD;
    if ((e & PTE_PS) && !may_be_large && shift > 12)
        return true;
    if (large) /* bits 12 (PAT) .. shift-1 above it must be clear */
        rsvd |= ((1ull << shift) - 1) & ~((1ull << 13) - 1);
    return (e & rsvd) != 0;
}

/* 4-level, 5-level and PAE paging. */
static enum gp_status walk_64(const struct guest_mem *mem,
                              const struct gp_mmu *mmu, uint64_t la,
                              uint32_t ec, struct walk *w, struct gp_fault *f)
{
    static const struct walk_level lm5[] = {
        {48, 9, false}, {39, 9, false}, {30, 9, true}, {21, 9, true},
        {12, 9, false}};
    static const struct walk_level pae[] = {{30, 2, false}, {21, 9, true},
                                            {12, 9, false}};
    bool lm = (mmu->efer & EFER_LMA) != 0;
    const struct walk_level *lv = lm ? lm5 : pae;
    unsigned count = lm ? 5 : 3;
    if (lm && !(mmu->cr4 & CR4_LA57)) {
        lv++;
        count--;
    }
    uint64_t table = lm ? mmu->cr3 & PTE_FRAME : mmu->cr3 & 0xFFFFFFE0ull;
    w->ia32e = lm;
    for (unsigned i = 0; i < count; i++) {
        uint64_t idx = (la >> lv[i].shift) & ((1ull << lv[i].bits) - 1);
        uint64_t egpa = table + idx * 8, e;
        if (read_entry(mem, egpa, 8, &e) != GP_OK)
            return GP_NO_MEMORY;
        bool pdpte = !lm && i == 0;
        if (!(e & PTE_P))
            return fault(f, GP_VEC_PF, ec, la);
        bool large = lv[i].may_be_large && (e & PTE_PS);
        bool bad = pdpte ? (e & (0x1E6ull | ~(phys_limit_mask(mmu) |
                                               0xFFFull))) != 0
                         : reserved_64(mmu, e, lv[i].shift, large,
                                       lv[i].may_be_large);
        if (bad)
            return fault(f, GP_VEC_PF, ec | GP_PFEC_P | GP_PFEC_RSVD, la);
        w->entry_gpa[w->n] = egpa;
        w->entry_has_a[w->n++] = !pdpte;
        if (!pdpte) {
            w->rw &= (e & PTE_RW) != 0;
            w->us &= (e & PTE_US) != 0;
            w->nx |= (mmu->efer & EFER_NXE) && (e & PTE_XD);
        }
        if (large || i == count - 1) {
            uint64_t mask = (1ull << lv[i].shift) - 1;
            w->leaf = e;
            w->gpa = ((e & PTE_FRAME & ~mask) | (la & mask)) &
                     phys_limit_mask(mmu);
            return GP_OK;
        }
        table = e & PTE_FRAME & phys_limit_mask(mmu);
    }
    return GP_NO_MEMORY; /* not reached */
}

/* 32-bit paging, with 4 MiB pages when CR4.PSE is set (PSE-36). */
static enum gp_status walk_32(const struct guest_mem *mem,
                              const struct gp_mmu *mmu, uint64_t la,
                              uint32_t ec, struct walk *w, struct gp_fault *f)
{
    uint64_t pde, pte;
    uint64_t pde_gpa = (mmu->cr3 & 0xFFFFF000ull) + ((la >> 22) & 1023) * 4;
    if (read_entry(mem, pde_gpa, 4, &pde) != GP_OK)
        return GP_NO_MEMORY;
    if (!(pde & PTE_P))
        return fault(f, GP_VEC_PF, ec, la);
    w->entry_gpa[w->n] = pde_gpa;
    w->entry_has_a[w->n++] = true;
    w->rw = (pde & PTE_RW) != 0;
    w->us = (pde & PTE_US) != 0;
    if ((pde & PTE_PS) && (mmu->cr4 & CR4_PSE)) {
        uint64_t high = ((pde >> 13) & 0xFF) << 32;
        if ((pde & (1ull << 21)) || (high & ~phys_limit_mask(mmu)))
            return fault(f, GP_VEC_PF, ec | GP_PFEC_P | GP_PFEC_RSVD, la);
        w->leaf = pde;
        w->gpa = (pde & 0xFFC00000ull) | high | (la & 0x3FFFFF);
        return GP_OK;
    }
    uint64_t pte_gpa = (pde & 0xFFFFF000ull) + ((la >> 12) & 1023) * 4;
    if (read_entry(mem, pte_gpa, 4, &pte) != GP_OK)
        return GP_NO_MEMORY;
    if (!(pte & PTE_P))
        return fault(f, GP_VEC_PF, ec, la);
    w->entry_gpa[w->n] = pte_gpa;
    w->entry_has_a[w->n++] = true;
    w->rw &= (pte & PTE_RW) != 0;
    w->us &= (pte & PTE_US) != 0;
    w->leaf = pte;
    w->gpa = (pte & 0xFFFFF000ull) | (la & 0xFFF);
    return GP_OK;
}

/* Protection-key check for a data access to a user page. */
static bool pkey_denies(const struct gp_mmu *mmu, const struct walk *w,
                        enum gp_access acc)
{
    if (!(mmu->cr4 & CR4_PKE) || !w->ia32e || !w->us || acc == GP_FETCH)
        return false;
    unsigned key = (unsigned)((w->leaf >> 59) & 15);
    bool ad = (mmu->pkru >> (2 * key)) & 1;
    bool wd = (mmu->pkru >> (2 * key + 1)) & 1;
    if (ad)
        return true;
    return acc == GP_WRITE && wd && (mmu->cpl == 3 || (mmu->cr0 & CR0_WP));
}

/* Page-level permission check; returns the extra error-code bits or -1
 * when the access is allowed. */
static int32_t check_rights(const struct gp_mmu *mmu, const struct walk *w,
                            enum gp_access acc)
{
    bool user = mmu->cpl == 3;
    if (acc == GP_FETCH) {
        if (w->nx || (user && !w->us) ||
            (!user && w->us && (mmu->cr4 & CR4_SMEP)))
            return GP_PFEC_P;
        return -1;
    }
    if (user && !w->us)
        return GP_PFEC_P;
    if (!user && w->us && (mmu->cr4 & CR4_SMAP) && !(mmu->rflags & RFLAGS_AC))
        return GP_PFEC_P;
    if (acc == GP_WRITE && !w->rw && (user || (mmu->cr0 & CR0_WP)))
        return GP_PFEC_P;
    if (pkey_denies(mmu, w, acc))
        return GP_PFEC_P | GP_PFEC_PK;
    return -1;
}

static void set_bits(const struct guest_mem *mem, uint64_t gpa, uint8_t bits)
{
    uint8_t *p = gpa_ptr(mem, gpa, 1, GMEM_WRITE);
    if (p && (*p & bits) != bits)
        __atomic_fetch_or(p, bits, __ATOMIC_SEQ_CST);
}

static enum gp_status translate(const struct guest_mem *mem,
                                const struct gp_mmu *mmu, uint64_t la,
                                enum gp_access acc, uint64_t *gpa,
                                struct gp_fault *f, bool set_ad)
{
    if (!(mmu->cr0 & CR0_PG) || !(mmu->cr0 & CR0_PE)) {
        *gpa = la & 0xFFFFFFFFull;
        return GP_OK;
    }
    if (!(mmu->efer & EFER_LMA))
        la &= 0xFFFFFFFFull;
    struct walk w = {.rw = true, .us = true};
    uint32_t ec = access_error_code(mmu, acc);
    enum gp_status st = (mmu->cr4 & CR4_PAE) ? walk_64(mem, mmu, la, ec, &w, f)
                                             : walk_32(mem, mmu, la, ec, &w, f);
    if (st != GP_OK)
        return st;
    int32_t bad = check_rights(mmu, &w, acc);
    if (bad >= 0)
        return fault(f, GP_VEC_PF, ec | (uint32_t)bad, la);
    for (unsigned i = 0; i < w.n && set_ad; i++)
        if (w.entry_has_a[i])
            set_bits(mem, w.entry_gpa[i], PTE_A);
    if (acc == GP_WRITE && set_ad)
        set_bits(mem, w.entry_gpa[w.n - 1], PTE_D);
    *gpa = w.gpa;
    return GP_OK;
}

enum gp_status gp_translate(const struct guest_mem *mem,
                            const struct gp_mmu *mmu, uint64_t la,
                            enum gp_access acc, uint64_t *gpa,
                            struct gp_fault *f)
{
    return translate(mem, mmu, la, acc, gpa, f, true);
}

enum gp_status gp_lookup(const struct guest_mem *mem, const struct gp_mmu *mmu,
                         uint64_t la, enum gp_access acc, uint64_t *gpa,
                         struct gp_fault *f)
{
    return translate(mem, mmu, la, acc, gpa, f, false);
}

static bool canonical(const struct gp_mmu *mmu, uint64_t la)
{
    unsigned bits = (mmu->cr4 & CR4_LA57) ? 57 : 48;
    int64_t s = (int64_t)(la << (64 - bits)) >> (64 - bits);
    return (uint64_t)s == la;
}

static bool seg_type_allows(const struct gp_segment *seg, enum gp_access acc)
{
    bool code = seg->type & 8;
    if (acc == GP_FETCH)
        return code;
    if (code)
        return acc == GP_READ && (seg->type & 2);
    return acc == GP_READ || (seg->type & 2);
}

static bool within_limit(const struct gp_segment *seg, uint64_t offset,
                         uint64_t last)
{
    bool expand_down = !(seg->type & 8) && (seg->type & 4);
    if (!expand_down)
        return last <= seg->limit;
    uint64_t top = seg->db ? 0xFFFFFFFFull : 0xFFFFull;
    return offset > seg->limit && last <= top;
}

enum gp_status gp_linear(const struct gp_mmu *mmu,
                         const struct gp_segment *seg, enum x86_seg segno,
                         uint64_t offset, uint64_t size, enum gp_access acc,
                         uint64_t *la, struct gp_fault *f)
{
    uint8_t vec = segno == X86_SS ? GP_VEC_SS : GP_VEC_GP;
    uint64_t last;
    if (size == 0)
        size = 1;
    if (mmu->mode == X86_MODE_LONG64) {
        uint64_t base = (segno == X86_FS || segno == X86_GS) ? seg->base : 0;
        *la = base + offset;
        if (!canonical(mmu, *la) || !canonical(mmu, *la + size - 1))
            return fault(f, vec, 0, 0);
        return GP_OK;
    }
    if (__builtin_add_overflow(offset, size - 1, &last))
        return fault(f, vec, 0, 0);
    bool real = mmu->mode == X86_MODE_REAL || mmu->mode == X86_MODE_VM86;
    if (!real && (seg->unusable || !seg->present || !seg_type_allows(seg, acc)))
        return fault(f, vec, 0, 0);
    if (!within_limit(seg, offset, last))
        return fault(f, vec, 0, 0);
    *la = (seg->base + offset) & 0xFFFFFFFFull;
    return GP_OK;
}

/* Walks [la, la + len) page by page, calling fn on each piece. */
typedef enum gp_status (*piece_fn)(const struct guest_mem *mem, uint64_t gpa,
                                   uint8_t *buf, size_t n);

static enum gp_status for_each_piece(const struct guest_mem *mem,
                                     const struct gp_mmu *mmu, uint64_t la,
                                     uint8_t *buf, size_t len,
                                     enum gp_access acc, piece_fn fn,
                                     struct gp_fault *f)
{
    while (len > 0) {
        size_t n = (size_t)(PAGE_SIZE - (la & (PAGE_SIZE - 1)));
        if (n > len)
            n = len;
        uint64_t gpa;
        enum gp_status st = gp_translate(mem, mmu, la, acc, &gpa, f);
        if (st == GP_OK)
            st = fn(mem, gpa, buf, n);
        if (st != GP_OK)
            return st;
        la += n;
        if (mmu->mode != X86_MODE_LONG64)
            la &= 0xFFFFFFFFull;
        if (buf)
            buf += n;
        len -= n;
    }
    return GP_OK;
}

static enum gp_status piece_read(const struct guest_mem *mem, uint64_t gpa,
                                 uint8_t *buf, size_t n)
{
    return gmem_read(mem, gpa, buf, n) == 0 ? GP_OK : GP_NO_MEMORY;
}

static enum gp_status piece_write(const struct guest_mem *mem, uint64_t gpa,
                                  uint8_t *buf, size_t n)
{
    return gmem_write(mem, gpa, buf, n) == 0 ? GP_OK : GP_NO_MEMORY;
}

static enum gp_status piece_writable(const struct guest_mem *mem, uint64_t gpa,
                                     uint8_t *buf, size_t n)
{
    (void)buf;
    /* The piece may span adjacent regions, as gmem_write() allows. */
    while (n > 0) {
        const struct gmem_region *r = NULL;
        for (unsigned i = 0; i < mem->count && !r; i++)
            if (gpa >= mem->regions[i].gpa &&
                gpa - mem->regions[i].gpa < mem->regions[i].size)
                r = &mem->regions[i];
        if (!r || r->readonly)
            return GP_NO_MEMORY;
        uint64_t avail = r->size - (gpa - r->gpa);
        size_t chunk = n < avail ? n : (size_t)avail;
        gpa += chunk;
        n -= chunk;
    }
    return GP_OK;
}

enum gp_status gp_read(const struct guest_mem *mem, const struct gp_mmu *mmu,
                       uint64_t la, void *buf, size_t len, enum gp_access acc,
                       struct gp_fault *f)
{
    return for_each_piece(mem, mmu, la, buf, len, acc, piece_read, f);
}

enum gp_status gp_probe_write(const struct guest_mem *mem,
                              const struct gp_mmu *mmu, uint64_t la,
                              size_t len, struct gp_fault *f)
{
    return for_each_piece(mem, mmu, la, NULL, len, GP_WRITE, piece_writable,
                          f);
}

enum gp_status gp_write(const struct guest_mem *mem, const struct gp_mmu *mmu,
                        uint64_t la, const void *buf, size_t len,
                        struct gp_fault *f)
{
    enum gp_status st = gp_probe_write(mem, mmu, la, len, f);
    if (st != GP_OK)
        return st;
    return for_each_piece(mem, mmu, la, (uint8_t *)buf, len, GP_WRITE,
                          piece_write, f);
}

enum gp_status gp_host_ptr(const struct guest_mem *mem,
                           const struct gp_mmu *mmu, uint64_t la, size_t len,
                           void **host, struct gp_fault *f)
{
    uint64_t gpa;
    if ((la & (PAGE_SIZE - 1)) + len > PAGE_SIZE)
        return GP_NO_MEMORY;
    enum gp_status st = gp_translate(mem, mmu, la, GP_WRITE, &gpa, f);
    if (st != GP_OK)
        return st;
    *host = gpa_ptr(mem, gpa, len, GMEM_WRITE);
    return *host ? GP_OK : GP_NO_MEMORY;
}

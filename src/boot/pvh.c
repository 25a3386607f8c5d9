/* PVH entry: an ELF kernel with XEN_ELFNOTE_PHYS32_ENTRY, started in flat
 * 32-bit protected mode with EBX pointing at struct hvm_start_info. */
#include <elf.h>
#include <string.h>

#include "boot/boot_internal.h"
#include "platform/layout.h"
#include "util.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC 0x336ec578u
#define HVM_START_VERSION 1
/* struct hvm_start_info (version 1) field offsets */
#define SI_MAGIC 0
#define SI_VERSION 4
#define SI_FLAGS 8
#define SI_NR_MODULES 12
#define SI_MODLIST 16
#define SI_CMDLINE 24
#define SI_RSDP 32
#define SI_MEMMAP 40
#define SI_MEMMAP_ENTRIES 48
#define SI_SIZE 56
#define MODLIST_ENTRY_SIZE 32
#define MEMMAP_ENTRY_SIZE 24

bool pvh_detect(const uint8_t *d, size_t len)
{
    return len >= EI_NIDENT && !memcmp(d, ELFMAG, SELFMAG);
}

struct elf_view {
    const uint8_t *d;
    size_t len;
    bool is64;
};

/* Reads program header i into a common form; -1 if out of the file. */
static int read_phdr(const struct elf_view *e, unsigned i, uint32_t *type,
                     struct kernel_segment *s)
{
    uint64_t phoff = e->is64 ? get_le64(e->d + 32) : get_le32(e->d + 28);
    uint64_t entsz = e->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
    uint64_t off = phoff + i * entsz;
    if (phoff > e->len || off > e->len || entsz > e->len - off)
        return -1;
    const uint8_t *p = e->d + off;
    *type = get_le32(p);
    if (e->is64) {
        s->file_offset = get_le64(p + 8);
        s->paddr = get_le64(p + 24);
        s->file_size = get_le64(p + 32);
        s->mem_size = get_le64(p + 40);
    } else {
        s->file_offset = get_le32(p + 4);
        s->paddr = get_le32(p + 12);
        s->file_size = get_le32(p + 16);
        s->mem_size = get_le32(p + 20);
    }
    if (s->file_offset > e->len || s->file_size > e->len - s->file_offset)
        return -1;
    return 0;
}

/* Walks one PT_NOTE segment for the PVH entry note. */
static bool find_pvh_note(const struct elf_view *e,
                          const struct kernel_segment *s, uint64_t *entry)
{
    const uint8_t *p = e->d + s->file_offset;
    uint64_t left = s->file_size;
    while (left >= 12) {
        uint32_t namesz = get_le32(p), descsz = get_le32(p + 4);
        uint32_t type = get_le32(p + 8);
        uint64_t name_len = ALIGN_UP((uint64_t)namesz, 4);
        uint64_t desc_len = ALIGN_UP((uint64_t)descsz, 4);
        if (name_len > left - 12 || desc_len > left - 12 - name_len)
            return false;
        const uint8_t *desc = p + 12 + name_len;
        if (namesz == 4 && !memcmp(p + 12, "Xen", 4) &&
            type == XEN_ELFNOTE_PHYS32_ENTRY && (descsz == 4 || descsz == 8)) {
            *entry = descsz == 4 ? get_le32(desc) : get_le64(desc);
            return true;
        }
        p += 12 + name_len + desc_len;
        left -= 12 + name_len + desc_len;
    }
    return false;
}

int pvh_probe(const char *path, const uint8_t *d, size_t len,
              struct kernel_image *k)
{
    struct elf_view e = {d, len, false};
    if (len < sizeof(Elf32_Ehdr) || d[EI_DATA] != ELFDATA2LSB ||
        (d[EI_CLASS] != ELFCLASS32 && d[EI_CLASS] != ELFCLASS64) ||
        (d[EI_CLASS] == ELFCLASS64 && len < sizeof(Elf64_Ehdr))) {
        report_error("kernel '%s': unsupported or truncated ELF header", path);
        return -1;
    }
    e.is64 = d[EI_CLASS] == ELFCLASS64;
    uint16_t machine = get_le16(d + 18);
    if (machine != EM_X86_64 && machine != EM_386) {
        report_error("kernel '%s': ELF for another architecture", path);
        return -1;
    }
    unsigned phnum = get_le16(d + (e.is64 ? 56 : 44));
    k->kind = KERNEL_PVH;
    k->nseg = 0;
    bool have_entry = false;
    for (unsigned i = 0; i < phnum; i++) {
        uint32_t type;
        struct kernel_segment s;
        if (read_phdr(&e, i, &type, &s)) {
            report_error("kernel '%s': truncated ELF (program header %u)",
                         path, i);
            return -1;
        }
        if (type == PT_NOTE && !have_entry)
            have_entry = find_pvh_note(&e, &s, &k->entry);
        if (type != PT_LOAD || s.mem_size == 0)
            continue;
        if (k->nseg >= KERNEL_MAX_SEGMENTS || s.file_size > s.mem_size) {
            report_error("kernel '%s': unsupported ELF load segments", path);
            return -1;
        }
        k->seg[k->nseg++] = s;
    }
    if (!have_entry) {
        report_error("kernel '%s': ELF without a PVH entry note "
                     "(XEN_ELFNOTE_PHYS32_ENTRY)", path);
        return -1;
    }
    if (k->nseg == 0) {
        report_error("kernel '%s': ELF without loadable segments", path);
        return -1;
    }
    return 0;
}

int pvh_plan_kernel(const struct kernel_image *k, uint64_t lowmem,
                    struct kernel_plan *p)
{
    uint64_t end = 0;
    for (unsigned i = 0; i < k->nseg; i++) {
        const struct kernel_segment *s = &k->seg[i];
        uint64_t seg_end;
        if (s->paddr < LAYOUT_HIGH_MEM_START ||
            __builtin_add_overflow(s->paddr, s->mem_size, &seg_end) ||
            seg_end > lowmem) {
            p->kernel_end = s->paddr < LAYOUT_HIGH_MEM_START ? 0 : seg_end;
            return -1;
        }
        end = MAX(end, seg_end);
    }
    p->load_addr = k->seg[0].paddr;
    p->kernel_end = end;
    return 0;
}

static void put_start_info(uint8_t *si, const struct kernel_plan *p,
                           const struct kernel_boot_info *info)
{
    uint64_t modlist = LAYOUT_PVH_INFO + SI_SIZE;
    uint64_t memmap = modlist + MODLIST_ENTRY_SIZE;
    put_le32(si + SI_MAGIC, HVM_START_MAGIC);
    put_le32(si + SI_VERSION, HVM_START_VERSION);
    put_le32(si + SI_FLAGS, 0);
    put_le32(si + SI_NR_MODULES, p->initrd_len ? 1 : 0);
    put_le64(si + SI_MODLIST, p->initrd_len ? modlist : 0);
    put_le64(si + SI_CMDLINE, info->cmdline ? LAYOUT_CMDLINE : 0);
    put_le64(si + SI_RSDP, info->rsdp_addr);
    put_le64(si + SI_MEMMAP, memmap);
    put_le32(si + SI_MEMMAP_ENTRIES, info->e820_count);
    uint8_t *mod = si + SI_SIZE;
    put_le64(mod, p->initrd_addr);
    put_le64(mod + 8, p->initrd_len);
    uint8_t *mm = mod + MODLIST_ENTRY_SIZE;
    for (unsigned i = 0; i < info->e820_count; i++) {
        put_le64(mm + MEMMAP_ENTRY_SIZE * i, info->e820[i].addr);
        put_le64(mm + MEMMAP_ENTRY_SIZE * i + 8, info->e820[i].size);
        put_le32(mm + MEMMAP_ENTRY_SIZE * i + 16, info->e820[i].type);
    }
}

int pvh_load(const struct kernel_image *k, const struct kernel_plan *p,
             const struct kernel_boot_info *info, const struct guest_mem *mem,
             struct kernel_entry *entry)
{
    _Static_assert(SI_SIZE + MODLIST_ENTRY_SIZE +
                           E820_MAX_ENTRIES * MEMMAP_ENTRY_SIZE <=
                       LAYOUT_PVH_INFO_SIZE,
                   "start info fits its page");
    for (unsigned i = 0; i < k->nseg; i++) {
        const struct kernel_segment *s = &k->seg[i];
        uint8_t *dst = gpa_ptr(mem, s->paddr, s->mem_size, GMEM_WRITE);
        if (!dst)
            return -1;
        memcpy(dst, k->data + s->file_offset, s->file_size);
        memset(dst + s->file_size, 0, s->mem_size - s->file_size);
    }
    uint8_t si[LAYOUT_PVH_INFO_SIZE] = {0};
    put_start_info(si, p, info);
    if (gmem_write(mem, LAYOUT_PVH_INFO, si, sizeof(si)))
        return -1;
    entry->mode = ENTRY_PROT32;
    entry->rip = k->entry;
    entry->rbx = LAYOUT_PVH_INFO;
    entry->rsi = 0;
    return 0;
}

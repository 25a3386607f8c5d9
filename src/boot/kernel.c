#include "boot/kernel.h"

#include <string.h>

#include "boot/boot_internal.h"
#include "platform/layout.h"
#include "util.h"

int kernel_probe(const char *path, const uint8_t *data, size_t len,
                 struct kernel_image *k)
{
    memset(k, 0, sizeof(*k));
    k->data = data;
    k->len = len;
    if (bzimage_detect(data, len))
        return bzimage_probe(path, data, len, k);
    if (pvh_detect(data, len))
        return pvh_probe(path, data, len, k);
    report_error("kernel '%s': neither a bzImage nor an ELF vmlinux", path);
    return -1;
}

/* The initrd goes as high as allowed, page-aligned, above the kernel. */
static int plan_initrd(const struct kernel_image *k, uint64_t lowmem,
                       uint64_t len, struct kernel_plan *p)
{
    p->initrd_len = len;
    p->initrd_addr = 0;
    if (len == 0)
        return 0;
    uint64_t top = MIN(lowmem, LAYOUT_4G);
    if (k->kind == KERNEL_BZIMAGE)
        top = MIN(top, (uint64_t)k->initrd_addr_max + 1);
    if (len > top)
        return -1;
    uint64_t addr = (top - len) & ~0xFFFULL;
    if (addr < p->kernel_end)
        return -1;
    p->initrd_addr = addr;
    return 0;
}

int kernel_plan(const struct kernel_image *k, uint64_t lowmem,
                uint64_t initrd_len, size_t cmdline_len, struct kernel_plan *p)
{
    memset(p, 0, sizeof(*p));
    int r = k->kind == KERNEL_BZIMAGE ? bzimage_plan_kernel(k, lowmem, p)
                                      : pvh_plan_kernel(k, lowmem, p);
    if (r && p->kernel_end == 0) {
        report_error("kernel: an ELF segment lies below 1 MiB, where the "
                     "boot structures live");
        return -1;
    }
    if (r) {
        report_error("kernel does not fit in guest RAM (it needs %llu MiB "
                     "of low memory; raise --mem)",
                     (unsigned long long)((p->kernel_end + MiB - 1) / MiB));
        return -1;
    }
    if (k->kind == KERNEL_BZIMAGE && k->cmdline_max &&
        cmdline_len > k->cmdline_max) {
        report_error("--append: the kernel accepts at most %u bytes of "
                     "command line", k->cmdline_max);
        return -1;
    }
    if (plan_initrd(k, lowmem, initrd_len, p)) {
        report_error("initrd (%llu MiB) does not fit in guest RAM above the "
                     "kernel; raise --mem",
                     (unsigned long long)((initrd_len + MiB - 1) / MiB));
        return -1;
    }
    return 0;
}

int kernel_load(const struct kernel_image *k, const struct kernel_plan *p,
                const struct kernel_boot_info *info,
                const struct guest_mem *mem, struct kernel_entry *entry)
{
    if (info->cmdline &&
        gmem_write(mem, LAYOUT_CMDLINE, info->cmdline,
                   strlen(info->cmdline) + 1))
        return -1;
    if (p->initrd_len &&
        gmem_write(mem, p->initrd_addr, info->initrd, p->initrd_len))
        return -1;
    return k->kind == KERNEL_BZIMAGE ? bzimage_load(k, p, info, mem, entry)
                                     : pvh_load(k, p, info, mem, entry);
}

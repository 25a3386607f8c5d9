/* The x86 Linux boot protocol, 64-bit entry (Documentation/arch/x86/boot). */
#include <string.h>

#include "boot/boot_internal.h"
#include "platform/layout.h"
#include "util.h"

#define HDR_SETUP_SECTS 0x1F1
#define HDR_SYSSIZE 0x1F4
#define HDR_BOOT_FLAG 0x1FE
#define HDR_JUMP 0x200
#define HDR_MAGIC 0x202
#define HDR_VERSION 0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS 0x211
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21C
#define HDR_CMD_LINE_PTR 0x228
#define HDR_INITRD_ADDR_MAX 0x22C
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE 0x234
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260

#define BP_ACPI_RSDP_ADDR 0x070
#define BP_EXT_RAMDISK_IMAGE 0x0C0
#define BP_EXT_RAMDISK_SIZE 0x0C4
#define BP_EXT_CMD_LINE_PTR 0x0C8
#define BP_E820_ENTRIES 0x1E8
#define BP_E820_TABLE 0x2D0
#define BP_E820_MAX 128
#define BP_SIZE 0x1000

#define HDRS_MAGIC 0x53726448u /* "HdrS" */
#define XLF_KERNEL_64 0x1
#define LOADER_UNDEFINED 0xFF
#define BOOT_PROTOCOL_64BIT_ENTRY 0x020C
#define ENTRY_64_OFFSET 0x200

bool bzimage_detect(const uint8_t *d, size_t len)
{
    return len >= 0x400 && get_le16(d + HDR_BOOT_FLAG) == 0xAA55 &&
           get_le32(d + HDR_MAGIC) == HDRS_MAGIC;
}

int bzimage_probe(const char *path, const uint8_t *d, size_t len,
                  struct kernel_image *k)
{
    unsigned sects = d[HDR_SETUP_SECTS] ? d[HDR_SETUP_SECTS] : 4;
    k->kind = KERNEL_BZIMAGE;
    k->setup_len = (size_t)(sects + 1) * 512;
    k->version = get_le16(d + HDR_VERSION);
    if (k->version < BOOT_PROTOCOL_64BIT_ENTRY ||
        !(get_le16(d + HDR_XLOADFLAGS) & XLF_KERNEL_64)) {
        report_error("kernel '%s': bzImage without a 64-bit entry point "
                     "(boot protocol %u.%02u)", path, k->version >> 8,
                     k->version & 0xFF);
        return -1;
    }
    uint64_t syssize = (uint64_t)get_le32(d + HDR_SYSSIZE) * 16;
    if (k->setup_len >= len || syssize > len - k->setup_len) {
        report_error("kernel '%s': truncated bzImage (%zu bytes)", path, len);
        return -1;
    }
    k->initrd_addr_max = get_le32(d + HDR_INITRD_ADDR_MAX);
    k->cmdline_max = get_le32(d + HDR_CMDLINE_SIZE);
    k->alignment = get_le32(d + HDR_KERNEL_ALIGNMENT);
    k->relocatable = d[HDR_RELOCATABLE] != 0;
    k->pref_address = get_le64(d + HDR_PREF_ADDRESS);
    k->init_size = get_le32(d + HDR_INIT_SIZE);
    uint64_t payload = len - k->setup_len;
    if (k->init_size < payload)
        k->init_size = payload;
    if (!IS_POWER_OF_2(k->alignment) || k->alignment > 1 * GiB) {
        report_error("kernel '%s': bad kernel_alignment 0x%x", path,
                     k->alignment);
        return -1;
    }
    return 0;
}

/* Prefers pref_address; a relocatable kernel moves down (aligned) when
 * RAM is too small for it. */
int bzimage_plan_kernel(const struct kernel_image *k, uint64_t lowmem,
                        struct kernel_plan *p)
{
    uint64_t addr = LAYOUT_HIGH_MEM_START;
    if (k->relocatable && k->pref_address >= LAYOUT_HIGH_MEM_START &&
        k->pref_address + k->init_size <= lowmem)
        addr = k->pref_address;
    else if (k->relocatable)
        addr = ALIGN_UP(LAYOUT_HIGH_MEM_START, (uint64_t)k->alignment);
    p->load_addr = addr;
    p->kernel_end = addr + k->init_size;
    return p->kernel_end <= lowmem ? 0 : -1;
}

static void fill_e820(uint8_t *bp, const struct kernel_boot_info *info)
{
    unsigned n = MIN(info->e820_count, (unsigned)BP_E820_MAX);
    for (unsigned i = 0; i < n; i++) {
        uint8_t *e = bp + BP_E820_TABLE + 20 * i;
        put_le64(e, info->e820[i].addr);
        put_le64(e + 8, info->e820[i].size);
        put_le32(e + 16, info->e820[i].type);
    }
    bp[BP_E820_ENTRIES] = (uint8_t)n;
}

int bzimage_load(const struct kernel_image *k, const struct kernel_plan *p,
                 const struct kernel_boot_info *info,
                 const struct guest_mem *mem, struct kernel_entry *entry)
{
    uint8_t bp[BP_SIZE] = {0};
    /* The setup header runs from 0x1F1 to the end given by the jump. */
    size_t hdr_end = MIN((size_t)HDR_JUMP + 2 + k->data[HDR_JUMP + 1],
                         k->setup_len);
    memcpy(bp + HDR_SETUP_SECTS, k->data + HDR_SETUP_SECTS,
           hdr_end - HDR_SETUP_SECTS);
    bp[HDR_TYPE_OF_LOADER] = LOADER_UNDEFINED;
    put_le32(bp + HDR_CMD_LINE_PTR, (uint32_t)LAYOUT_CMDLINE);
    put_le32(bp + BP_EXT_CMD_LINE_PTR, 0);
    put_le32(bp + HDR_RAMDISK_IMAGE, (uint32_t)p->initrd_addr);
    put_le32(bp + HDR_RAMDISK_SIZE, (uint32_t)p->initrd_len);
    put_le32(bp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(p->initrd_addr >> 32));
    put_le32(bp + BP_EXT_RAMDISK_SIZE, (uint32_t)(p->initrd_len >> 32));
    put_le64(bp + BP_ACPI_RSDP_ADDR, info->rsdp_addr);
    fill_e820(bp, info);

    const uint8_t *payload = k->data + k->setup_len;
    size_t payload_len = k->len - k->setup_len;
    if (gmem_write(mem, p->load_addr, payload, payload_len) ||
        gmem_write(mem, LAYOUT_ZERO_PAGE, bp, sizeof(bp)))
        return -1;
    entry->mode = ENTRY_LONG64;
    entry->rip = p->load_addr + ENTRY_64_OFFSET;
    entry->rsi = LAYOUT_ZERO_PAGE;
    entry->rbx = 0;
    return 0;
}

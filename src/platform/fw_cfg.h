/* fw_cfg: the firmware configuration channel (items selected by a 16-bit
 * key, read as byte streams), with the traditional port interface and the
 * DMA interface, in one range of LAYOUT_PORT_FW_CFG_LEN ports at
 * LAYOUT_PORT_FW_CFG:
 *   +0   selector (16-bit write; selecting rewinds the item)
 *   +1   data (8-bit reads, string I/O; past the end reads 0)
 *   +4   DMA address, high 32 bits, big-endian
 *   +8   DMA address, low 32 bits, big-endian; the write that completes
 *        it runs the transfer synchronously. Reading +4..+11 gives
 *        "QEMU CFG".
 * The read offset is shared by both interfaces. Unknown keys are items of
 * length 0 (they read as zeros). Guest writes to items are refused (DMA
 * WRITE reports ERROR): nothing the machine offers is writable.
 *
 * DMA: the 16-byte descriptor {be32 control, be32 length, be64 address}
 * is copied out of guest memory once; it must lie in guest memory with a
 * writable control word, or the request is dropped (there is nowhere to
 * report to). SELECT, then one of READ, SKIP or WRITE; the control word is
 * written back as 0, or 0x01 (ERROR) if any byte of the buffer is not
 * writable guest RAM (ROM included). Every guest address goes through
 * gpa_ptr()/gmem_read()/gmem_write().
 *
 * Items: "QEMU" at 0x0000, ID 3 (traditional | DMA) at 0x0001, the file
 * directory at 0x0019 (big-endian count, then 64-byte entries {be32 size,
 * be16 select, u16 0, char name[56]} sorted by name), files at 0x0020 and
 * up in the order they were added, numeric items the machine adds.
 *
 * Locking: one mutex for items, selection and the DMA latch. */
#ifndef KVMPC_FW_CFG_H
#define KVMPC_FW_CFG_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "vm/bus.h"
#include "vm/memory.h"

#define FW_CFG_SIGNATURE 0x0000
#define FW_CFG_ID 0x0001
#define FW_CFG_UUID 0x0002
#define FW_CFG_RAM_SIZE 0x0003
#define FW_CFG_NOGRAPHIC 0x0004
#define FW_CFG_NB_CPUS 0x0005
#define FW_CFG_BOOT_MENU 0x000E
#define FW_CFG_MAX_CPUS 0x000F
#define FW_CFG_FILE_DIR 0x0019
#define FW_CFG_FILE_FIRST 0x0020
#define FW_CFG_FILE_END 0x4000 /* keys from here up to 0x7FFF: unused */
#define FW_CFG_ARCH_LOCAL 0x8000 /* x86 items such as IRQ0_OVERRIDE */
#define FW_CFG_IRQ0_OVERRIDE 0x8002
#define FW_CFG_FILE_NAME_SIZE 56 /* NUL included */

#define FW_CFG_DMA_ERROR 0x01
#define FW_CFG_DMA_READ 0x02
#define FW_CFG_DMA_SKIP 0x04
#define FW_CFG_DMA_SELECT 0x08
#define FW_CFG_DMA_WRITE 0x10

struct fw_cfg_item {
    uint16_t key;
    uint32_t len;
    uint8_t *data;
    char name[FW_CFG_FILE_NAME_SIZE]; /* files only */
};

struct fw_cfg {
    pthread_mutex_t lock;
    const struct guest_mem *mem;
    struct fw_cfg_item *items;
    unsigned count, cap, files;
    int cur;          /* index of the selected item, -1: unknown key */
    uint32_t offset;  /* read position in the selected item */
    uint8_t dma_latch[8];
};

extern const struct bus_ops fw_cfg_bus_ops;

/* mem: the guest memory DMA reaches (kept, not copied). Returns 0, or -1
 * (reported). */
int fw_cfg_init(struct fw_cfg *f, const struct guest_mem *mem);
void fw_cfg_destroy(struct fw_cfg *f);
/* System reset: selection, offset and DMA latch back to 0; items stay. */
void fw_cfg_reset(struct fw_cfg *f);

/* Numeric items: key below FW_CFG_FILE_FIRST (not the signature, ID or
 * directory) or at FW_CFG_ARCH_LOCAL and up. The data is copied; adding a
 * key again replaces it. Integers are stored little-endian. Return 0, or
 * -1 (reported). */
int fw_cfg_add_bytes(struct fw_cfg *f, uint16_t key, const void *data,
                     size_t len);
int fw_cfg_add_u16(struct fw_cfg *f, uint16_t key, uint16_t v);
int fw_cfg_add_u32(struct fw_cfg *f, uint16_t key, uint32_t v);
int fw_cfg_add_u64(struct fw_cfg *f, uint16_t key, uint64_t v);

/* A named file (at most 55 characters, unique), copied. Returns its key,
 * or -1 (reported). */
int fw_cfg_add_file(struct fw_cfg *f, const char *name, const void *data,
                    size_t len);

#endif

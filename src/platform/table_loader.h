/* Firmware tables as relocatable blobs plus link commands, in the shape of
 * the fw_cfg table-loader (ALLOCATE / ADD_POINTER / ADD_CHECKSUM).
 *
 * One generator builds the blobs once. Two consumers link them:
 *  - firmware boot serialises the commands into "etc/table-loader" and
 *    exports each blob as a fw_cfg file; the firmware allocates and links;
 *  - direct boot links them itself at fixed addresses from layout.h with
 *    loader_link(), executing exactly the same commands. */
#ifndef KVMPC_TABLE_LOADER_H
#define KVMPC_TABLE_LOADER_H

#include <stddef.h>
#include <stdint.h>

#define LOADER_NAME_LEN 56
#define LOADER_MAX_BLOBS 4
#define LOADER_RECORD_SIZE 128

enum loader_zone {
    LOADER_ZONE_HIGH = 1, /* anywhere in RAM below 4 GiB */
    LOADER_ZONE_FSEG = 2, /* the 0xF0000 segment (RSDP must live here) */
};

struct loader_blob {
    char name[LOADER_NAME_LEN]; /* fw_cfg file name, e.g. "etc/acpi/tables" */
    uint8_t *data;
    size_t len, cap;
    uint32_t align;
    enum loader_zone zone;
};

enum loader_cmd_type {
    LOADER_ALLOCATE = 1,
    LOADER_ADD_POINTER = 2,
    LOADER_ADD_CHECKSUM = 3,
};

struct loader_cmd {
    enum loader_cmd_type type;
    unsigned blob;     /* ALLOCATE: blob; POINTER: destination; CHECKSUM: blob */
    unsigned src_blob; /* POINTER: the blob pointed into */
    uint32_t offset;   /* POINTER: field offset; CHECKSUM: checksum byte */
    uint32_t start, length; /* CHECKSUM: summed range */
    uint8_t size;           /* POINTER: 1, 2, 4 or 8 bytes */
};

struct table_loader {
    struct loader_blob blobs[LOADER_MAX_BLOBS];
    unsigned blob_count;
    struct loader_cmd *cmds;
    unsigned cmd_count, cmd_cap;
};

void loader_init(struct table_loader *l);
void loader_free(struct table_loader *l);

/* Creates a blob and its ALLOCATE command. Returns the blob index or -1. */
int loader_new_blob(struct table_loader *l, const char *name, uint32_t align,
                    enum loader_zone zone);

/* Appends len zero bytes (aligned to align within the blob first) and
 * returns the offset of the new space, or -1 on allocation failure. The
 * returned offset stays valid; pointers into data do not. */
long loader_reserve(struct table_loader *l, unsigned blob, size_t len,
                    size_t align);
/* Appends a copy of data; same return convention. */
long loader_append(struct table_loader *l, unsigned blob, const void *data,
                   size_t len, size_t align);

/* dst[offset .. offset+size) holds an offset inside src_blob (LE); after
 * linking it holds src_blob's address plus that offset. */
int loader_add_pointer(struct table_loader *l, unsigned dst_blob,
                       uint32_t offset, uint8_t size, unsigned src_blob);
/* blob[cksum_offset] becomes the byte that makes [start, start+len) sum
 * to zero. Emit after all pointers that land inside the range. */
int loader_add_checksum(struct table_loader *l, unsigned blob,
                        uint32_t cksum_offset, uint32_t start, uint32_t len);

/* The "etc/table-loader" file: cmd_count records of 128 bytes. */
int loader_serialize(const struct table_loader *l, uint8_t **out,
                     size_t *out_len);

/* Links in host memory: images[i] receives a copy of blob i as it must
 * appear at guest address addr[i] (caller frees each). Returns 0 or -1
 * when a command is out of range or an address does not fit the field. */
int loader_link(const struct table_loader *l, const uint64_t *addr,
                uint8_t **images);

#endif

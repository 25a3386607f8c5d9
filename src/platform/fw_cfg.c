#include "platform/fw_cfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/layout.h"
#include "util.h"

#define PORT_SELECTOR 0
#define PORT_DATA 1
#define PORT_DMA (LAYOUT_PORT_FW_CFG_DMA - LAYOUT_PORT_FW_CFG)
#define DMA_LATCH_SIZE 8

#define ID_TRADITIONAL 0x01
#define ID_DMA 0x02

#define DIR_ENTRY_SIZE 64
#define DMA_DESC_SIZE 16
#define ZERO_CHUNK 4096

static const char dma_signature[DMA_LATCH_SIZE] = "QEMU CFG";

/* ---- Items ------------------------------------------------------------- */

static int find_item(const struct fw_cfg *f, uint16_t key)
{
    for (unsigned i = 0; i < f->count; i++)
        if (f->items[i].key == key)
            return (int)i;
    return -1;
}

/* Stores a copy of data under key (replacing what was there); name is
 * NULL for numeric items. Returns the item index or -1. */
static int put_item(struct fw_cfg *f, uint16_t key, const char *name,
                    const void *data, size_t len)
{
    if (len > UINT32_MAX) {
        report_error("fw_cfg item 0x%04x is too large", key);
        return -1;
    }
    uint8_t *copy = NULL;
    if (len && !(copy = malloc(len))) {
        report_error("out of memory for fw_cfg item 0x%04x", key);
        return -1;
    }
    if (len)
        memcpy(copy, data, len);
    int idx = find_item(f, key);
    if (idx < 0) {
        if (f->count == f->cap) {
            unsigned cap = f->cap ? f->cap * 2 : 32;
            struct fw_cfg_item *n = realloc(f->items, cap * sizeof(*n));
            if (!n) {
                free(copy);
                report_error("out of memory for fw_cfg items");
                return -1;
            }
            f->items = n;
            f->cap = cap;
        }
        idx = (int)f->count++;
        memset(&f->items[idx], 0, sizeof(f->items[idx]));
        f->items[idx].key = key;
    }
    struct fw_cfg_item *it = &f->items[idx];
    free(it->data);
    it->data = copy;
    it->len = (uint32_t)len;
    if (f->cur == idx && f->offset > it->len)
        f->offset = it->len; /* replaced while the guest reads it */
    if (name)
        snprintf(it->name, sizeof(it->name), "%s", name);
    return idx;
}

static int by_name(const void *a, const void *b)
{
    const struct fw_cfg_item *x = *(struct fw_cfg_item *const *)a;
    const struct fw_cfg_item *y = *(struct fw_cfg_item *const *)b;
    return strcmp(x->name, y->name);
}

/* Rebuilds the directory item from the files, sorted by name. */
static int build_directory(struct fw_cfg *f)
{
    size_t size = 4 + (size_t)f->files * DIR_ENTRY_SIZE;
    uint8_t *dir = calloc(1, size);
    struct fw_cfg_item **files = calloc(f->files ? f->files : 1,
                                        sizeof(*files));
    if (!dir || !files) {
        free(dir);
        free(files);
        report_error("out of memory for the fw_cfg directory");
        return -1;
    }
    unsigned n = 0;
    for (unsigned i = 0; i < f->count; i++)
        if (f->items[i].key >= FW_CFG_FILE_FIRST &&
            f->items[i].key < FW_CFG_FILE_END)
            files[n++] = &f->items[i];
    qsort(files, n, sizeof(*files), by_name);
    put_be32(dir, n);
    for (unsigned i = 0; i < n; i++) {
        uint8_t *e = dir + 4 + (size_t)i * DIR_ENTRY_SIZE;
        put_be32(e, files[i]->len);
        put_be16(e + 4, files[i]->key);
        memcpy(e + 8, files[i]->name, FW_CFG_FILE_NAME_SIZE);
    }
    free(files);
    int rc = put_item(f, FW_CFG_FILE_DIR, NULL, dir, size);
    free(dir);
    return rc < 0 ? -1 : 0;
}

static bool numeric_key_allowed(uint16_t key)
{
    if (key == FW_CFG_SIGNATURE || key == FW_CFG_ID || key == FW_CFG_FILE_DIR)
        return false;
    return key < FW_CFG_FILE_FIRST || key >= FW_CFG_ARCH_LOCAL;
}

int fw_cfg_add_bytes(struct fw_cfg *f, uint16_t key, const void *data,
                     size_t len)
{
    if (!numeric_key_allowed(key)) {
        report_error("fw_cfg key 0x%04x is reserved", key);
        return -1;
    }
    pthread_mutex_lock(&f->lock);
    int rc = put_item(f, key, NULL, data, len);
    pthread_mutex_unlock(&f->lock);
    return rc < 0 ? -1 : 0;
}

int fw_cfg_add_u16(struct fw_cfg *f, uint16_t key, uint16_t v)
{
    uint8_t b[2];
    put_le16(b, v);
    return fw_cfg_add_bytes(f, key, b, sizeof(b));
}

int fw_cfg_add_u32(struct fw_cfg *f, uint16_t key, uint32_t v)
{
    uint8_t b[4];
    put_le32(b, v);
    return fw_cfg_add_bytes(f, key, b, sizeof(b));
}

int fw_cfg_add_u64(struct fw_cfg *f, uint16_t key, uint64_t v)
{
    uint8_t b[8];
    put_le64(b, v);
    return fw_cfg_add_bytes(f, key, b, sizeof(b));
}

static bool file_exists(const struct fw_cfg *f, const char *name)
{
    for (unsigned i = 0; i < f->count; i++)
        if (f->items[i].key >= FW_CFG_FILE_FIRST &&
            f->items[i].key < FW_CFG_FILE_END &&
            !strcmp(f->items[i].name, name))
            return true;
    return false;
}

static int add_file_locked(struct fw_cfg *f, const char *name,
                           const void *data, size_t len)
{
    size_t name_len = strlen(name);
    if (name_len == 0 || name_len >= FW_CFG_FILE_NAME_SIZE) {
        report_error("fw_cfg file name '%s' must have 1 to %d characters",
                     name, FW_CFG_FILE_NAME_SIZE - 1);
        return -1;
    }
    if (file_exists(f, name)) {
        report_error("fw_cfg file '%s' added twice", name);
        return -1;
    }
    unsigned key = FW_CFG_FILE_FIRST + f->files;
    if (key >= FW_CFG_FILE_END) {
        report_error("too many fw_cfg files");
        return -1;
    }
    if (put_item(f, (uint16_t)key, name, data, len) < 0)
        return -1;
    f->files++;
    return build_directory(f) < 0 ? -1 : (int)key;
}

int fw_cfg_add_file(struct fw_cfg *f, const char *name, const void *data,
                    size_t len)
{
    pthread_mutex_lock(&f->lock);
    int rc = add_file_locked(f, name, data, len);
    pthread_mutex_unlock(&f->lock);
    return rc;
}

/* ---- Selection and reading --------------------------------------------- */

static void select_key(struct fw_cfg *f, uint16_t key)
{
    f->cur = find_item(f, key);
    f->offset = 0;
}

static uint32_t remaining(const struct fw_cfg *f)
{
    if (f->cur < 0)
        return 0;
    return f->items[f->cur].len - f->offset; /* offset <= len always */
}

static uint8_t read_data_byte(struct fw_cfg *f)
{
    if (!remaining(f))
        return 0;
    return f->items[f->cur].data[f->offset++];
}

static void skip(struct fw_cfg *f, uint32_t len)
{
    f->offset += MIN(len, remaining(f));
}

/* ---- DMA --------------------------------------------------------------- */

static bool write_zeros(const struct guest_mem *mem, uint64_t gpa,
                        uint64_t len)
{
    static const uint8_t zeros[ZERO_CHUNK];
    while (len) {
        size_t n = (size_t)MIN(len, (uint64_t)ZERO_CHUNK);
        if (gmem_write(mem, gpa, zeros, n))
            return false;
        len -= n;
        if (len && __builtin_add_overflow(gpa, n, &gpa))
            return false;
    }
    return true;
}

/* READ: the item's bytes, then zeros past its end. */
static bool dma_read(struct fw_cfg *f, uint32_t len, uint64_t gpa)
{
    uint32_t n = MIN(len, remaining(f));
    if (n) {
        const uint8_t *src = f->items[f->cur].data + f->offset;
        if (gmem_write(f->mem, gpa, src, n))
            return false;
        f->offset += n;
    }
    if (len == n)
        return true;
    if (__builtin_add_overflow(gpa, n, &gpa))
        return false;
    return write_zeros(f->mem, gpa, len - n);
}

/* Returns the control word to write back. */
static uint32_t dma_execute(struct fw_cfg *f, uint32_t control, uint32_t len,
                            uint64_t gpa)
{
    if (control & FW_CFG_DMA_SELECT)
        select_key(f, (uint16_t)(control >> 16));
    if (control & FW_CFG_DMA_WRITE)
        return FW_CFG_DMA_ERROR; /* no item is writable */
    if (control & FW_CFG_DMA_READ)
        return dma_read(f, len, gpa) ? 0 : FW_CFG_DMA_ERROR;
    if (control & FW_CFG_DMA_SKIP)
        skip(f, len);
    return 0;
}

static void dma_run(struct fw_cfg *f, uint64_t desc_gpa)
{
    uint8_t desc[DMA_DESC_SIZE];
    /* Without a writable control word there is no way to report back. */
    if (!f->mem || !gpa_ptr(f->mem, desc_gpa, 4, GMEM_WRITE) ||
        gmem_read(f->mem, desc_gpa, desc, sizeof(desc)))
        return;
    uint32_t result = dma_execute(f, get_be32(desc), get_be32(desc + 4),
                                  get_be64(desc + 8));
    uint8_t out[4];
    put_be32(out, result);
    gmem_write(f->mem, desc_gpa, out, sizeof(out));
}

/* ---- Ports ------------------------------------------------------------- */

static void fw_cfg_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct fw_cfg *f = opaque;
    uint8_t *out = data;
    pthread_mutex_lock(&f->lock);
    for (unsigned i = 0; i < len; i++) {
        uint64_t p = off + i;
        if (p == PORT_DATA)
            out[i] = read_data_byte(f);
        else if (p >= PORT_DMA && p < PORT_DMA + DMA_LATCH_SIZE)
            out[i] = (uint8_t)dma_signature[p - PORT_DMA];
        else
            out[i] = 0;
    }
    pthread_mutex_unlock(&f->lock);
}

/* Latches address bytes; the write that fills the last byte (the low
 * half, big-endian) starts the transfer. */
static void dma_latch_write(struct fw_cfg *f, uint64_t off, const uint8_t *in,
                            unsigned len)
{
    bool trigger = false;
    for (unsigned i = 0; i < len; i++) {
        uint64_t p = off + i - PORT_DMA;
        if (p < DMA_LATCH_SIZE) {
            f->dma_latch[p] = in[i];
            trigger |= p == DMA_LATCH_SIZE - 1;
        }
    }
    if (!trigger)
        return;
    uint64_t gpa = get_be64(f->dma_latch);
    memset(f->dma_latch, 0, sizeof(f->dma_latch));
    dma_run(f, gpa);
}

static void fw_cfg_write(void *opaque, uint64_t off, const void *data,
                         unsigned len)
{
    struct fw_cfg *f = opaque;
    const uint8_t *in = data;
    pthread_mutex_lock(&f->lock);
    if (off == PORT_SELECTOR) /* a 16-bit write also covers +1 */
        select_key(f, len >= 2 ? get_le16(in) : in[0]);
    else if (off >= PORT_DMA)
        dma_latch_write(f, off, in, len);
    /* data-port writes: nothing is writable */
    pthread_mutex_unlock(&f->lock);
}

const struct bus_ops fw_cfg_bus_ops = {
    .read = fw_cfg_read,
    .write = fw_cfg_write,
};

/* ---- Setup ------------------------------------------------------------- */

int fw_cfg_init(struct fw_cfg *f, const struct guest_mem *mem)
{
    memset(f, 0, sizeof(*f));
    f->mem = mem;
    f->cur = -1;
    if (pthread_mutex_init(&f->lock, NULL)) {
        report_error("cannot create the fw_cfg lock");
        return -1;
    }
    uint8_t id[4];
    put_le32(id, ID_TRADITIONAL | (mem ? ID_DMA : 0));
    if (put_item(f, FW_CFG_SIGNATURE, NULL, "QEMU", 4) < 0 ||
        put_item(f, FW_CFG_ID, NULL, id, sizeof(id)) < 0 ||
        build_directory(f) < 0) {
        fw_cfg_destroy(f);
        return -1;
    }
    select_key(f, FW_CFG_SIGNATURE);
    return 0;
}

void fw_cfg_destroy(struct fw_cfg *f)
{
    for (unsigned i = 0; i < f->count; i++)
        free(f->items[i].data);
    free(f->items);
    f->items = NULL;
    f->count = f->cap = f->files = 0;
    pthread_mutex_destroy(&f->lock);
}

void fw_cfg_reset(struct fw_cfg *f)
{
    pthread_mutex_lock(&f->lock);
    select_key(f, FW_CFG_SIGNATURE);
    memset(f->dma_latch, 0, sizeof(f->dma_latch));
    pthread_mutex_unlock(&f->lock);
}

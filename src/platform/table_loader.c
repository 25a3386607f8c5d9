#include "platform/table_loader.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void loader_init(struct table_loader *l)
{
    memset(l, 0, sizeof(*l));
}

void loader_free(struct table_loader *l)
{
    for (unsigned i = 0; i < l->blob_count; i++)
        free(l->blobs[i].data);
    free(l->cmds);
    memset(l, 0, sizeof(*l));
}

static int push_cmd(struct table_loader *l, struct loader_cmd cmd)
{
    if (l->cmd_count == l->cmd_cap) {
        unsigned cap = l->cmd_cap ? l->cmd_cap * 2 : 32;
        struct loader_cmd *c = realloc(l->cmds, cap * sizeof(*c));
        if (!c)
            return -1;
        l->cmds = c;
        l->cmd_cap = cap;
    }
    l->cmds[l->cmd_count++] = cmd;
    return 0;
}

int loader_new_blob(struct table_loader *l, const char *name, uint32_t align,
                    enum loader_zone zone)
{
    if (l->blob_count >= LOADER_MAX_BLOBS || strlen(name) >= LOADER_NAME_LEN ||
        !IS_POWER_OF_2(align))
        return -1;
    unsigned idx = l->blob_count;
    struct loader_blob *b = &l->blobs[idx];
    memset(b, 0, sizeof(*b));
    strcpy(b->name, name);
    b->align = align;
    b->zone = zone;
    if (push_cmd(l, (struct loader_cmd){.type = LOADER_ALLOCATE, .blob = idx}))
        return -1;
    l->blob_count++;
    return (int)idx;
}

long loader_reserve(struct table_loader *l, unsigned blob, size_t len,
                    size_t align)
{
    if (blob >= l->blob_count || !IS_POWER_OF_2(align))
        return -1;
    struct loader_blob *b = &l->blobs[blob];
    size_t start = ALIGN_UP(b->len, align);
    size_t end = start + len;
    if (end > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < end)
            cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d)
            return -1;
        memset(d + b->cap, 0, cap - b->cap);
        b->data = d;
        b->cap = cap;
    }
    b->len = end;
    return (long)start;
}

long loader_append(struct table_loader *l, unsigned blob, const void *data,
                   size_t len, size_t align)
{
    long off = loader_reserve(l, blob, len, align);
    if (off >= 0)
        memcpy(l->blobs[blob].data + off, data, len);
    return off;
}

int loader_add_pointer(struct table_loader *l, unsigned dst_blob,
                       uint32_t offset, uint8_t size, unsigned src_blob)
{
    if (dst_blob >= l->blob_count || src_blob >= l->blob_count ||
        !(size == 1 || size == 2 || size == 4 || size == 8) ||
        (uint64_t)offset + size > l->blobs[dst_blob].len)
        return -1;
    return push_cmd(l, (struct loader_cmd){.type = LOADER_ADD_POINTER,
                                           .blob = dst_blob,
                                           .src_blob = src_blob,
                                           .offset = offset,
                                           .size = size});
}

int loader_add_checksum(struct table_loader *l, unsigned blob,
                        uint32_t cksum_offset, uint32_t start, uint32_t len)
{
    if (blob >= l->blob_count ||
        (uint64_t)start + len > l->blobs[blob].len ||
        cksum_offset < start || cksum_offset - start >= len)
        return -1;
    return push_cmd(l, (struct loader_cmd){.type = LOADER_ADD_CHECKSUM,
                                           .blob = blob,
                                           .offset = cksum_offset,
                                           .start = start,
                                           .length = len});
}

static void put_name(uint8_t *rec, const char *name)
{
    strncpy((char *)rec, name, LOADER_NAME_LEN - 1);
}

int loader_serialize(const struct table_loader *l, uint8_t **out,
                     size_t *out_len)
{
    size_t len = (size_t)l->cmd_count * LOADER_RECORD_SIZE;
    uint8_t *buf = calloc(1, len ? len : 1);
    if (!buf)
        return -1;
    for (unsigned i = 0; i < l->cmd_count; i++) {
        const struct loader_cmd *c = &l->cmds[i];
        uint8_t *rec = buf + (size_t)i * LOADER_RECORD_SIZE;
        put_le32(rec, c->type);
        put_name(rec + 4, l->blobs[c->blob].name);
        switch (c->type) {
        case LOADER_ALLOCATE:
            put_le32(rec + 60, l->blobs[c->blob].align);
            rec[64] = (uint8_t)l->blobs[c->blob].zone;
            break;
        case LOADER_ADD_POINTER:
            put_name(rec + 60, l->blobs[c->src_blob].name);
            put_le32(rec + 116, c->offset);
            rec[120] = c->size;
            break;
        case LOADER_ADD_CHECKSUM:
            put_le32(rec + 60, c->offset);
            put_le32(rec + 64, c->start);
            put_le32(rec + 68, c->length);
            break;
        }
    }
    *out = buf;
    *out_len = len;
    return 0;
}

static uint64_t get_field(const uint8_t *p, uint8_t size)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_field(uint8_t *p, uint8_t size, uint64_t v)
{
    for (unsigned i = 0; i < size; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int link_cmd(const struct table_loader *l, const struct loader_cmd *c,
                    const uint64_t *addr, uint8_t **images)
{
    uint8_t *dst = images[c->blob];
    switch (c->type) {
    case LOADER_ALLOCATE:
        return addr[c->blob] % l->blobs[c->blob].align ? -1 : 0;
    case LOADER_ADD_POINTER: {
        uint64_t v = get_field(dst + c->offset, c->size) + addr[c->src_blob];
        if (c->size < 8 && v >> (8 * c->size))
            return -1;
        put_field(dst + c->offset, c->size, v);
        return 0;
    }
    case LOADER_ADD_CHECKSUM:
        dst[c->offset] = 0;
        dst[c->offset] = checksum8(dst + c->start, c->length);
        return 0;
    }
    return -1;
}

int loader_link(const struct table_loader *l, const uint64_t *addr,
                uint8_t **images)
{
    for (unsigned i = 0; i < l->blob_count; i++) {
        images[i] = malloc(l->blobs[i].len ? l->blobs[i].len : 1);
        if (!images[i]) {
            while (i--)
                free(images[i]);
            return -1;
        }
        memcpy(images[i], l->blobs[i].data, l->blobs[i].len);
    }
    for (unsigned i = 0; i < l->cmd_count; i++) {
        if (link_cmd(l, &l->cmds[i], addr, images)) {
            for (unsigned j = 0; j < l->blob_count; j++) {
                free(images[j]);
                images[j] = NULL;
            }
            return -1;
        }
    }
    return 0;
}

/* Creation of empty qcow2 images: header (with a feature name table and
 * the backing file's name and format), refcount table and blocks that
 * count the metadata, an all-zero L1 table. */
#include "block/qcow2_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define V3_HEADER_BYTES 112

struct layout {
    uint64_t cs, l1_entries, l1_clusters, rt_clusters, rb_clusters, total;
};

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

static int plan(const struct qcow2_create_opts *o, struct layout *l,
                const char *path)
{
    l->cs = 1ull << o->cluster_bits;
    uint64_t per_l1 = l->cs * (l->cs / 8);
    l->l1_entries = div_up(o->size, per_l1);
    if (l->l1_entries * 8 > QCOW2_MAX_L1_BYTES) {
        report_error("'%s': %llu bytes is too large for %llu-byte clusters",
                     path, (unsigned long long)o->size,
                     (unsigned long long)l->cs);
        return -1;
    }
    l->l1_clusters = MAX(1, div_up(l->l1_entries * 8, l->cs));
    uint64_t per_rb = (l->cs * 8) >> o->refcount_order;
    l->rt_clusters = l->rb_clusters = 1;
    for (;;) {
        l->total = 1 + l->rt_clusters + l->rb_clusters + l->l1_clusters;
        uint64_t rb = div_up(l->total, per_rb);
        uint64_t rt = div_up(rb * 8, l->cs);
        if (rb == l->rb_clusters && rt == l->rt_clusters)
            return 0;
        l->rb_clusters = MAX(rb, l->rb_clusters);
        l->rt_clusters = MAX(rt, l->rt_clusters);
    }
}

static size_t put_ext(uint8_t *b, uint32_t type, const void *data,
                      uint32_t len)
{
    put_be32(b, type);
    put_be32(b + 4, len);
    memcpy(b + 8, data, len);
    return 8 + ALIGN_UP((size_t)len, 8);
}

static size_t feature_table(uint8_t *b)
{
    static const struct {
        uint8_t type, bit;
        const char *name;
    } f[] = {
        {0, 0, "dirty bit"},          {0, 1, "corrupt bit"},
        {0, 2, "external data file"}, {0, 3, "compression type"},
        {0, 4, "extended L2 entries"}, {1, 0, "lazy refcounts"},
        {2, 0, "bitmaps"},            {2, 1, "raw external data"},
    };
    uint8_t t[ARRAY_SIZE(f) * 48] = {0};
    for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
        t[i * 48] = f[i].type;
        t[i * 48 + 1] = f[i].bit;
        memcpy(t + i * 48 + 2, f[i].name, strlen(f[i].name));
    }
    return put_ext(b, QCOW2_EXT_FEATURE_TABLE, t, sizeof(t));
}

static int build_header(const struct qcow2_create_opts *o,
                        const struct layout *l, uint8_t *b, const char *path)
{
    put_be32(b, QCOW2_MAGIC);
    put_be32(b + 4, o->version);
    put_be32(b + 20, o->cluster_bits);
    put_be64(b + 24, o->size);
    put_be32(b + 36, (uint32_t)l->l1_entries);
    put_be64(b + 40, (1 + l->rt_clusters + l->rb_clusters) * l->cs);
    put_be64(b + 48, l->cs);
    put_be32(b + 56, (uint32_t)l->rt_clusters);
    size_t pos = 72;
    if (o->version >= 3) {
        put_be64(b + 80, o->lazy_refcounts ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0);
        put_be32(b + 96, o->refcount_order);
        put_be32(b + 100, V3_HEADER_BYTES);
        pos = V3_HEADER_BYTES;
    }
    size_t blen = o->backing ? strlen(o->backing) : 0;
    size_t flen = o->backing_fmt ? strlen(o->backing_fmt) : 0;
    /* Extensions, end marker and the backing name share cluster 0; the
     * feature name table is optional and left out when it does not fit. */
    size_t need = pos + (flen ? 8 + ALIGN_UP(flen, 8) : 0) + 8 + blen;
    if (need > l->cs) {
        report_error("'%s': backing file name too long for the header",
                     path);
        return -1;
    }
    if (flen)
        pos += put_ext(b + pos, QCOW2_EXT_BACKING_FORMAT, o->backing_fmt,
                       (uint32_t)flen);
    if (o->version >= 3 && need + 8 + 8 * 48 <= l->cs)
        pos += feature_table(b + pos);
    pos += 8; /* end of extensions: already zero */
    if (blen) {
        memcpy(b + pos, o->backing, blen);
        put_be64(b + 8, pos);
        put_be32(b + 16, (uint32_t)blen);
    }
    return 0;
}

static int write_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int write_image(int fd, const struct qcow2_create_opts *o,
                       const struct layout *l, const uint8_t *hdr)
{
    /* Refcount table, refcount blocks, then zeros to the end. */
    size_t meta = (size_t)((l->rt_clusters + l->rb_clusters) * l->cs);
    uint8_t *b = calloc(1, meta);
    if (!b)
        return -1;
    for (uint64_t i = 0; i < l->rb_clusters; i++)
        put_be64(b + 8 * i, (1 + l->rt_clusters + i) * l->cs);
    uint8_t *rb = b + l->rt_clusters * l->cs;
    for (uint64_t c = 0; c < l->total; c++)
        qcow2_rb_set_entry(rb, o->refcount_order, c, 1);
    int r = write_all(fd, hdr, (size_t)l->cs, 0) ||
            write_all(fd, b, meta, l->cs) ||
            ftruncate(fd, (off_t)(l->total * l->cs)) || fsync(fd);
    free(b);
    return r ? -1 : 0;
}

int qcow2_create(const char *path, const struct qcow2_create_opts *o)
{
    if (o->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
        o->cluster_bits > QCOW2_MAX_CLUSTER_BITS ||
        (o->version != 2 && o->version != 3) || o->refcount_order > 6 ||
        (o->version == 2 && (o->refcount_order != 4 || o->lazy_refcounts))) {
        report_error("'%s': invalid qcow2 creation options", path);
        return -1;
    }
    struct layout l;
    if (plan(o, &l, path) < 0)
        return -1;
    uint8_t *hdr = calloc(1, l.cs);
    if (!hdr) {
        report_error("out of memory creating '%s'", path);
        return -1;
    }
    if (build_header(o, &l, hdr, path) < 0) {
        free(hdr);
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        report_error("cannot create '%s': %s", path, strerror(errno));
        free(hdr);
        return -1;
    }
    int r = write_image(fd, o, &l, hdr);
    if (r < 0)
        report_error("cannot write '%s': %s", path, strerror(errno));
    close(fd);
    free(hdr);
    return r;
}

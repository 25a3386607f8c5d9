/* qcow2 on-disk metadata: parsing and validation of the header, header
 * extensions, L1 table, refcount table and snapshot table. Everything in
 * the file is hostile until checked here; later code relies on these
 * checks (cluster alignment, tables inside the file, sizes in range). */
#include "block/qcow2_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define V2_HEADER_LEN 72
#define V3_HEADER_LEN 104

static void parse_header(const uint8_t *b, struct qcow2_header *h)
{
    memset(h, 0, sizeof(*h));
    h->version = get_be32(b + 4);
    h->backing_file_offset = get_be64(b + 8);
    h->backing_file_size = get_be32(b + 16);
    h->cluster_bits = get_be32(b + 20);
    h->size = get_be64(b + 24);
    h->crypt_method = get_be32(b + 32);
    h->l1_size = get_be32(b + 36);
    h->l1_table_offset = get_be64(b + 40);
    h->refcount_table_offset = get_be64(b + 48);
    h->refcount_table_clusters = get_be32(b + 56);
    h->nb_snapshots = get_be32(b + 60);
    h->snapshots_offset = get_be64(b + 64);
    if (h->version < 3) {
        h->refcount_order = 4;
        h->header_length = V2_HEADER_LEN;
        return;
    }
    h->incompatible = get_be64(b + 72);
    h->compatible = get_be64(b + 80);
    h->autoclear = get_be64(b + 88);
    h->refcount_order = get_be32(b + 96);
    h->header_length = get_be32(b + 100);
    if (h->header_length > V3_HEADER_LEN)
        h->compression_type = b[104];
}

/* Finds a feature's name in the feature name table extension. */
static void feature_name(const uint8_t *c0, uint64_t cs, uint64_t ext_start,
                         unsigned bit, char *out, size_t outlen)
{
    snprintf(out, outlen, "bit %u", bit);
    uint64_t off = ext_start;
    while (off + 8 <= cs) {
        uint32_t type = get_be32(c0 + off), len = get_be32(c0 + off + 4);
        if (type == QCOW2_EXT_END || len > cs - off - 8)
            return;
        if (type == QCOW2_EXT_FEATURE_TABLE) {
            for (uint32_t i = 0; i + 48 <= len; i += 48) {
                const uint8_t *e = c0 + off + 8 + i;
                if (e[0] == 0 && e[1] == bit) {
                    char name[47];
                    memcpy(name, e + 2, 46);
                    name[46] = '\0';
                    for (char *p = name; *p; p++)
                        if (*p < 0x20 || *p > 0x7e)
                            *p = '?';
                    snprintf(out, outlen, "'%s' (bit %u)", name, bit);
                    return;
                }
            }
        }
        off += 8 + ALIGN_UP((uint64_t)len, 8);
    }
}

static int check_features(const struct qcow2_header *h, const uint8_t *c0,
                          uint64_t cs, const char *path, bool writable)
{
    uint64_t unknown = h->incompatible & ~QCOW2_INCOMPAT_KNOWN;
    if (unknown) {
        char name[96];
        feature_name(c0, cs, h->header_length, (unsigned)__builtin_ctzll(unknown),
                     name, sizeof(name));
        report_error("'%s' uses an incompatible qcow2 feature that kvmpc "
                     "does not support: %s",
                     path, name);
        return -1;
    }
    if (h->incompatible & QCOW2_INCOMPAT_DATA_FILE) {
        report_error("'%s' keeps its data in an external data file, which "
                     "kvmpc does not support",
                     path);
        return -1;
    }
    if (h->crypt_method) {
        report_error("'%s' is encrypted (method %u); kvmpc does not support "
                     "encrypted qcow2 images",
                     path, h->crypt_method);
        return -1;
    }
    if ((h->incompatible & QCOW2_INCOMPAT_CORRUPT) && writable) {
        report_error("'%s' is marked corrupt; repair it (qemu-img check -r "
                     "all) or open it read-only",
                     path);
        return -1;
    }
    bool ct_bit = h->incompatible & QCOW2_INCOMPAT_COMPRESSION;
    if (ct_bit != (h->compression_type != 0) ||
        h->compression_type > QCOW2_COMPRESS_ZSTD) {
        report_error("'%s': compression type %u is %s", path,
                     h->compression_type,
                     h->compression_type > QCOW2_COMPRESS_ZSTD
                         ? "not supported (zlib and zstd are)"
                         : "inconsistent with the feature bits");
        return -1;
    }
    return 0;
}

static int check_geometry(struct qcow2_meta *m, const char *path)
{
    const struct qcow2_header *h = &m->h;
    if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
        h->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
        report_error("'%s': cluster size 2^%u is outside 512 B to 2 MiB", path,
                     h->cluster_bits);
        return -1;
    }
    m->cb = h->cluster_bits;
    m->cs = 1ull << m->cb;
    m->ext_l2 = h->incompatible & QCOW2_INCOMPAT_EXTL2;
    if (m->ext_l2 && m->cb < 14) {
        report_error("'%s': extended L2 entries need clusters of 16 KiB or "
                     "more",
                     path);
        return -1;
    }
    m->esz_bits = m->ext_l2 ? 4 : 3;
    m->l2_bits = m->cb - m->esz_bits;
    m->sc_bits = m->ext_l2 ? m->cb - 5 : m->cb;
    if (h->refcount_order > 6) {
        report_error("'%s': refcount width 2^%u bits is more than 64", path,
                     h->refcount_order);
        return -1;
    }
    m->rc_order = h->refcount_order;
    m->rb_bits = m->cb + 3 - m->rc_order;
    if (h->version >= 3 &&
        (h->header_length < V3_HEADER_LEN || (h->header_length & 7) ||
         h->header_length > m->cs)) {
        report_error("'%s': bad header length %u", path, h->header_length);
        return -1;
    }
    return 0;
}

/* A table of len bytes at off must be cluster aligned and inside the file. */
static bool table_ok(const struct qcow2_meta *m, const struct blk_file *f,
                     uint64_t off, uint64_t len)
{
    return off && !(off & (m->cs - 1)) && off <= f->size &&
           len <= f->size - off;
}

static int check_l1(struct qcow2_meta *m, const struct blk_file *f,
                    const char *path)
{
    const struct qcow2_header *h = &m->h;
    uint64_t per_l1 = 1ull << (m->l2_bits + m->cb); /* bytes per L1 entry */
    uint64_t need = h->size / per_l1 + (h->size % per_l1 != 0);
    if ((uint64_t)h->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
        report_error("'%s': L1 table of %u entries is too large", path,
                     h->l1_size);
        return -1;
    }
    if (need > h->l1_size) {
        report_error("'%s': virtual size %llu needs %llu L1 entries, the "
                     "table has %u (corrupt header or size too large)",
                     path, (unsigned long long)h->size,
                     (unsigned long long)need, h->l1_size);
        return -1;
    }
    if (h->l1_size &&
        !table_ok(m, f, h->l1_table_offset, (uint64_t)h->l1_size * 8)) {
        report_error("'%s': L1 table at %#llx is misaligned or lies beyond "
                     "the end of the file",
                     path, (unsigned long long)h->l1_table_offset);
        return -1;
    }
    return 0;
}

static int check_reftable(struct qcow2_meta *m, const struct blk_file *f,
                          const char *path)
{
    const struct qcow2_header *h = &m->h;
    uint64_t bytes = (uint64_t)h->refcount_table_clusters << m->cb;
    if (!h->refcount_table_clusters || bytes > QCOW2_MAX_REFTABLE_BYTES) {
        report_error("'%s': refcount table of %u clusters is %s", path,
                     h->refcount_table_clusters,
                     h->refcount_table_clusters ? "too large" : "empty");
        return -1;
    }
    if (!table_ok(m, f, h->refcount_table_offset, bytes)) {
        report_error("'%s': refcount table at %#llx is misaligned or lies "
                     "beyond the end of the file",
                     path, (unsigned long long)h->refcount_table_offset);
        return -1;
    }
    m->rt_entries = bytes / 8;
    return 0;
}

static int load_u64_table(const struct blk_file *f, uint64_t off,
                          uint64_t n, uint64_t **out, const char *path,
                          const char *what)
{
    uint64_t *t = malloc(n ? n * 8 : 8);
    if (!t) {
        report_error("out of memory reading the %s of '%s'", what, path);
        return -1;
    }
    int r = blk_file_pread(f, t, n * 8, off);
    if (r < 0) {
        report_error("cannot read the %s of '%s': %s", what, path,
                     strerror(-r));
        free(t);
        return -1;
    }
    for (uint64_t i = 0; i < n; i++)
        t[i] = get_be64(&t[i]);
    *out = t;
    return 0;
}

static int check_l1_entries(struct qcow2_meta *m, const struct blk_file *f,
                            const char *path)
{
    for (uint32_t i = 0; i < m->h.l1_size; i++) {
        uint64_t e = m->l1[i], off = e & L1E_OFFSET_MASK;
        if (!off && !(e & ~QCOW_OFLAG_COPIED))
            continue;
        if ((e & L1E_RESERVED) || !table_ok(m, f, off, m->cs)) {
            report_error("'%s': L1 entry %u (%#llx) points outside the file "
                         "or is malformed",
                         path, i, (unsigned long long)e);
            return -1;
        }
    }
    return 0;
}

static int check_rt_entries(struct qcow2_meta *m, const struct blk_file *f,
                            const char *path)
{
    for (uint64_t i = 0; i < m->rt_entries; i++) {
        uint64_t e = m->rt[i];
        if (!e)
            continue;
        if ((e & REFT_RESERVED) || !table_ok(m, f, e, m->cs)) {
            report_error("'%s': refcount table entry %llu (%#llx) points "
                         "outside the file or is malformed",
                         path, (unsigned long long)i, (unsigned long long)e);
            return -1;
        }
    }
    return 0;
}

static int parse_extensions(struct qcow2_meta *m, const uint8_t *c0,
                            const char *path)
{
    uint64_t off = m->h.header_length;
    uint64_t end = m->cs;
    if (m->h.backing_file_offset && m->h.backing_file_offset < end)
        end = m->h.backing_file_offset;
    while (off + 8 <= end) {
        uint32_t type = get_be32(c0 + off), len = get_be32(c0 + off + 4);
        if (type == QCOW2_EXT_END)
            return 0;
        if (len > end - off - 8) {
            report_error("'%s': header extension %#x runs past the first "
                         "cluster",
                         path, type);
            return -1;
        }
        if (type == QCOW2_EXT_BACKING_FORMAT) {
            const char *s = (const char *)c0 + off + 8;
            if (len == 3 && !memcmp(s, "raw", 3))
                m->backing_fmt = BLK_FORMAT_RAW;
            else if (len == 5 && !memcmp(s, "qcow2", 5))
                m->backing_fmt = BLK_FORMAT_QCOW2;
            else {
                report_error("'%s': backing file format '%.*s' is not "
                             "supported (raw and qcow2 are)",
                             path, (int)MIN(len, 16u), s);
                return -1;
            }
        }
        off += 8 + ALIGN_UP((uint64_t)len, 8);
    }
    return 0;
}

static int parse_backing(struct qcow2_meta *m, const uint8_t *c0,
                         const struct blk_file *f, const char *path)
{
    const struct qcow2_header *h = &m->h;
    if (!h->backing_file_offset)
        return 0;
    if (h->backing_file_size > QCOW2_MAX_BACKING_NAME ||
        h->backing_file_offset > m->cs ||
        h->backing_file_size > m->cs - h->backing_file_offset ||
        h->backing_file_offset + h->backing_file_size > f->size) {
        report_error("'%s': backing file name (offset %#llx, %u bytes) is "
                     "outside the header cluster",
                     path, (unsigned long long)h->backing_file_offset,
                     h->backing_file_size);
        return -1;
    }
    if (!h->backing_file_size)
        return 0;
    memcpy(m->backing, c0 + h->backing_file_offset, h->backing_file_size);
    m->backing[h->backing_file_size] = '\0';
    if (strlen(m->backing) != h->backing_file_size) {
        report_error("'%s': backing file name contains a NUL byte", path);
        return -1;
    }
    m->has_backing = true;
    return 0;
}

static int parse_snapshot(struct qcow2_meta *m, const struct blk_file *f,
                          const uint8_t *t, uint64_t avail, uint32_t i,
                          uint64_t *used, const char *path)
{
    if (avail < 40)
        goto bad;
    uint64_t l1_off = get_be64(t);
    uint32_t l1_size = get_be32(t + 8);
    uint64_t id_len = get_be16(t + 12), name_len = get_be16(t + 14);
    uint64_t extra = get_be32(t + 36);
    uint64_t raw_len = 40 + extra + id_len + name_len;
    /* The padding of the last entry may lie past the end of the file. */
    if (extra > (1u << 20) || raw_len > avail)
        goto bad;
    uint64_t len = MIN(ALIGN_UP(raw_len, 8), avail);
    if ((uint64_t)l1_size * 8 > QCOW2_MAX_L1_BYTES ||
        (l1_size && !table_ok(m, f, l1_off, (uint64_t)l1_size * 8))) {
        report_error("'%s': snapshot %u has its L1 table outside the file",
                     path, i);
        return -1;
    }
    m->snaps[i].l1_offset = l1_off;
    m->snaps[i].l1_size = l1_size;
    *used = len;
    return 0;
bad:
    report_error("'%s': snapshot table entry %u is malformed", path, i);
    return -1;
}

static int load_snapshots(struct qcow2_meta *m, const struct blk_file *f,
                          const char *path)
{
    const struct qcow2_header *h = &m->h;
    if (!h->nb_snapshots)
        return 0;
    if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS ||
        (h->snapshots_offset & (m->cs - 1)) || !h->snapshots_offset ||
        h->snapshots_offset >= f->size) {
        report_error("'%s': snapshot table (%u entries at %#llx) is invalid",
                     path, h->nb_snapshots,
                     (unsigned long long)h->snapshots_offset);
        return -1;
    }
    /* Bounded by the file and by a generous cap on entry sizes. */
    uint64_t avail = MIN(f->size - h->snapshots_offset, 64ull << 20);
    uint8_t *t = malloc(avail);
    m->snaps = calloc(h->nb_snapshots, sizeof(*m->snaps));
    if (!t || !m->snaps) {
        free(t);
        report_error("out of memory reading the snapshots of '%s'", path);
        return -1;
    }
    int r = blk_file_pread(f, t, avail, h->snapshots_offset);
    uint64_t pos = 0;
    for (uint32_t i = 0; r == 0 && i < h->nb_snapshots; i++) {
        uint64_t used;
        if (parse_snapshot(m, f, t + pos, avail - pos, i, &used, path) < 0) {
            free(t);
            return -1;
        }
        pos += used;
    }
    free(t);
    if (r < 0) {
        report_error("cannot read the snapshots of '%s': %s", path,
                     strerror(-r));
        return -1;
    }
    m->nb_snaps = h->nb_snapshots;
    m->snap_table_bytes = pos;
    return 0;
}

static int read_header(struct qcow2_meta *m, const struct blk_file *f,
                       const char *path, uint8_t **c0out)
{
    uint8_t first[V3_HEADER_LEN + 8] = {0};
    if (f->size < V2_HEADER_LEN) {
        report_error("'%s' is too short for a qcow2 header (%llu bytes)", path,
                     (unsigned long long)f->size);
        return -1;
    }
    int r = blk_file_pread(f, first, sizeof(first), 0);
    if (r < 0) {
        report_error("cannot read '%s': %s", path, strerror(-r));
        return -1;
    }
    if (get_be32(first) != QCOW2_MAGIC) {
        report_error("'%s' is not a qcow2 image", path);
        return -1;
    }
    uint32_t version = get_be32(first + 4);
    if (version != 2 && version != 3) {
        report_error("'%s' is qcow%s version %u, which is not supported", path,
                     version < 2 ? "" : "2", version);
        return -1;
    }
    if (version == 3 && f->size < V3_HEADER_LEN) {
        report_error("'%s': qcow2 v3 header is truncated", path);
        return -1;
    }
    parse_header(first, &m->h);
    if (check_geometry(m, path) < 0)
        return -1;
    uint8_t *c0 = calloc(1, m->cs);
    if (!c0) {
        report_error("out of memory reading '%s'", path);
        return -1;
    }
    r = blk_file_pread(f, c0, m->cs, 0);
    if (r < 0) {
        report_error("cannot read '%s': %s", path, strerror(-r));
        free(c0);
        return -1;
    }
    *c0out = c0;
    return 0;
}

int qcow2_meta_load(struct qcow2_meta *m, const struct blk_file *f,
                    const char *path, bool writable)
{
    memset(m, 0, sizeof(*m));
    uint8_t *c0;
    if (read_header(m, f, path, &c0) < 0)
        return -1;
    int r = -1;
    if (check_features(&m->h, c0, m->cs, path, writable) < 0 ||
        parse_extensions(m, c0, path) < 0 ||
        parse_backing(m, c0, f, path) < 0 || check_l1(m, f, path) < 0 ||
        check_reftable(m, f, path) < 0)
        goto out;
    if (load_u64_table(f, m->h.l1_table_offset, m->h.l1_size, &m->l1, path,
                       "L1 table") < 0 ||
        load_u64_table(f, m->h.refcount_table_offset, m->rt_entries, &m->rt,
                       path, "refcount table") < 0)
        goto out;
    if (check_l1_entries(m, f, path) < 0 || check_rt_entries(m, f, path) < 0 ||
        load_snapshots(m, f, path) < 0)
        goto out;
    r = 0;
out:
    free(c0);
    if (r < 0)
        qcow2_meta_free(m);
    return r;
}

void qcow2_meta_free(struct qcow2_meta *m)
{
    free(m->l1);
    free(m->rt);
    free(m->snaps);
    m->l1 = m->rt = NULL;
    m->snaps = NULL;
}

void qcow2_compressed_range(const struct qcow2_meta *m, uint64_t l2e,
                            uint64_t *off, uint64_t *len)
{
    unsigned x = 62 - (m->cb - 8);
    uint64_t host = l2e & ((1ull << x) - 1);
    uint64_t sectors = ((l2e & ~QCOW_OFLAG_COPIED & ~QCOW_OFLAG_COMPRESSED) >>
                        x) + 1;
    *off = host;
    *len = (host & ~511ull) + sectors * 512 - host;
}

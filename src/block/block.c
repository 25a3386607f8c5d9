/* The block layer's front: opening (format detection, backing chains),
 * request validation, and the --disk option parser. */
#include "block/block_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---- format detection ---- */

struct signature {
    const char *name;
    unsigned off, len;
    const char *magic;
};

/* Formats kvmpc does not read: opening one of them as raw would hand the
 * guest a disk full of metadata, so they are refused by name. */
static const struct signature foreign[] = {
    {"QED", 0, 4, "QED\0"},
    {"VMDK", 0, 4, "KDMV"},
    {"VMDK (descriptor)", 0, 21, "# Disk DescriptorFile"},
    {"VHD", 0, 8, "conectix"},
    {"VHDX", 0, 8, "vhdxfile"},
    {"VDI", 64, 4, "\x7f\x10\xda\xbe"},
    {"LUKS", 0, 6, "LUKS\xba\xbe"},
    {"cloop", 0, 13, "#!/bin/sh\n#V2"},
    {"Parallels", 0, 16, "WithoutFreeSpace"},
    {"bochs", 0, 21, "Bochs Virtual HD Imag"},
};

static int detect_format(const struct blk_file *f, const char *path,
                         enum blk_format *fmt)
{
    uint8_t buf[128] = {0};
    int r = blk_file_pread(f, buf, MIN(sizeof(buf), f->size), 0);
    if (r < 0) {
        report_error("cannot read '%s': %s", path, strerror(-r));
        return -1;
    }
    if (f->size >= 4 && !memcmp(buf, "QFI\xfb", 4)) {
        *fmt = BLK_FORMAT_QCOW2;
        return 0;
    }
    for (size_t i = 0; i < ARRAY_SIZE(foreign); i++) {
        const struct signature *s = &foreign[i];
        if (f->size >= s->off + s->len &&
            !memcmp(buf + s->off, s->magic, s->len)) {
            report_error("'%s' is a %s image; kvmpc reads raw and qcow2 "
                         "images only (say format=raw to use the bytes as "
                         "they are)",
                         path, s->name);
            return -1;
        }
    }
    *fmt = BLK_FORMAT_RAW;
    return 0;
}

/* ---- opening ---- */

int blk_chain_enter(struct blk_chain *chain, const struct blk_file *f,
                    const char *path)
{
    for (unsigned i = 0; i < chain->n; i++) {
        if (chain->seen[i].dev == f->dev && chain->seen[i].ino == f->ino) {
            report_error("backing file loop: '%s' is already in the chain",
                         path);
            return -1;
        }
    }
    if (blk_file_lock(f, path) < 0)
        return -1;
    if (chain->n >= BLK_MAX_CHAIN) {
        report_error("backing chain longer than %u images at '%s'",
                     BLK_MAX_CHAIN, path);
        return -1;
    }
    if (chain->n == chain->cap) {
        unsigned cap = chain->cap ? chain->cap * 2 : 8;
        void *p = realloc(chain->seen, cap * sizeof(*chain->seen));
        if (!p) {
            report_error("out of memory opening '%s'", path);
            return -1;
        }
        chain->seen = p;
        chain->cap = cap;
    }
    chain->seen[chain->n].dev = f->dev;
    chain->seen[chain->n].ino = f->ino;
    chain->n++;
    return 0;
}

static int detect_path(const char *path, enum blk_format *fmt)
{
    struct blk_file f;
    if (blk_file_open(&f, path, true, false) < 0)
        return -1;
    int r = detect_format(&f, path, fmt);
    blk_file_close(&f);
    return r;
}

int blk_open_on(const struct blk_open_opts *opts, struct aio_engine *eng,
                struct blk_chain *chain, unsigned flags,
                struct blockdev **out)
{
    if (!opts->path || !*opts->path) {
        report_error("no image file given");
        return -1;
    }
    enum blk_format fmt = opts->format;
    if (fmt == BLK_FORMAT_AUTO && detect_path(opts->path, &fmt) < 0)
        return -1;
    struct blockdev *bd = calloc(1, sizeof(*bd));
    char *path = strdup(opts->path);
    if (!bd || !path) {
        report_error("out of memory opening '%s'", opts->path);
        free(bd);
        free(path);
        return -1;
    }
    bd->path = path;
    bd->eng = eng;
    bd->readonly = opts->readonly;
    int r = fmt == BLK_FORMAT_QCOW2 ? qcow2_open(bd, opts, chain, flags)
                                    : raw_open(bd, opts, chain);
    if (r < 0) {
        free(bd->path);
        free(bd);
        return -1;
    }
    *out = bd;
    return 0;
}

int blk_open(const struct blk_open_opts *opts, struct blockdev **out)
{
    if (opts->format != BLK_FORMAT_AUTO && opts->format != BLK_FORMAT_RAW &&
        opts->format != BLK_FORMAT_QCOW2) {
        report_error("unknown image format code %d", (int)opts->format);
        return -1;
    }
    struct aio_engine *eng = aio_engine_new();
    if (!eng)
        return -1;
    struct blk_chain chain = {0};
    struct blockdev *bd;
    int r = blk_open_on(opts, eng, &chain, 0, &bd);
    free(chain.seen);
    if (r < 0) {
        aio_engine_free(eng);
        return -1;
    }
    bd->own_engine = true;
    *out = bd;
    return 0;
}

void blk_close(struct blockdev *bd)
{
    if (!bd)
        return;
    while (bd->inflight)
        aio_wait(bd->eng);
    bd->drv->close(bd);
    if (bd->own_engine)
        aio_engine_free(bd->eng);
    free(bd->path);
    free(bd);
}

void blk_drain(struct blockdev *bd)
{
    while (bd->inflight)
        aio_wait(bd->eng);
}

uint64_t blk_size(const struct blockdev *bd)
{
    return bd->size;
}

bool blk_is_readonly(const struct blockdev *bd)
{
    return bd->readonly;
}

const char *blk_format_name(const struct blockdev *bd)
{
    return bd->drv->name;
}

/* ---- requests ---- */

void blk_complete(struct blockdev *bd, struct blk_req *req, int result)
{
    bd->inflight--;
    req->done(req, result);
}

static int validate(const struct blockdev *bd, const struct blk_req *req)
{
    switch (req->op) {
    case BLK_OP_FLUSH:
        return 0;
    case BLK_OP_READ:
    case BLK_OP_WRITE:
        if (req->iovcnt > BLK_MAX_IOV || (req->iovcnt && !req->iov))
            return -EINVAL;
        if (iov_total(req->iov, req->iovcnt) != req->len)
            return -EINVAL;
        break;
    case BLK_OP_DISCARD:
    case BLK_OP_WRITE_ZEROES:
        break;
    default:
        return -EINVAL;
    }
    if (req->op != BLK_OP_READ && bd->readonly)
        return -EROFS;
    if (req->offset > bd->size || req->len > bd->size - req->offset)
        return -EINVAL;
    return 0;
}

int blk_submit(struct blockdev *bd, struct blk_req *req)
{
    if (!req->done)
        return -EINVAL;
    int r = validate(bd, req);
    if (r < 0) {
        req->done(req, r);
        return 0;
    }
    bd->inflight++;
    r = bd->drv->submit(bd, req);
    if (r < 0)
        bd->inflight--;
    if (bd->drv->idle)
        bd->drv->idle(bd);
    return r;
}

void blk_kick(struct blockdev *bd)
{
    aio_kick(bd->eng);
}

int blk_event_fd(const struct blockdev *bd)
{
    return aio_event_fd(bd->eng);
}

void blk_poll(struct blockdev *bd)
{
    aio_poll(bd->eng);
    if (bd->drv->idle)
        bd->drv->idle(bd);
}

/* ---- --disk FILE[,format=raw|qcow2][,ro][,cache=writeback|none] ---- */

/* Copies the next comma-separated item of *s into a new string; ",," is a
 * literal comma (so file names may hold commas). */
static char *next_item(const char **s)
{
    const char *p = *s;
    size_t len = strlen(p);
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    while (*p) {
        if (*p == ',' && p[1] == ',') {
            out[n++] = ',';
            p += 2;
        } else if (*p == ',') {
            p++;
            break;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    *s = p;
    return out;
}

static int parse_disk_key(const char *item, struct blk_open_opts *o)
{
    const char *eq = strchr(item, '=');
    size_t klen = eq ? (size_t)(eq - item) : strlen(item);
    const char *v = eq ? eq + 1 : NULL;
    if (klen == 6 && !strncmp(item, "format", 6) && v) {
        if (!strcmp(v, "raw"))
            o->format = BLK_FORMAT_RAW;
        else if (!strcmp(v, "qcow2"))
            o->format = BLK_FORMAT_QCOW2;
        else
            goto bad_value;
        return 0;
    }
    if (klen == 5 && !strncmp(item, "cache", 5) && v) {
        if (!strcmp(v, "writeback"))
            o->cache = BLK_CACHE_WRITEBACK;
        else if (!strcmp(v, "none"))
            o->cache = BLK_CACHE_NONE;
        else
            goto bad_value;
        return 0;
    }
    if ((klen == 2 && !strncmp(item, "ro", 2)) ||
        (klen == 8 && !strncmp(item, "readonly", 8))) {
        if (!v || !strcmp(v, "on"))
            o->readonly = true;
        else if (!strcmp(v, "off"))
            o->readonly = false;
        else
            goto bad_value;
        return 0;
    }
    report_error("--disk: unknown option '%s' (known: format=raw|qcow2, ro, "
                 "cache=writeback|none)",
                 item);
    return -1;
bad_value:
    report_error("--disk: bad value in '%s'", item);
    return -1;
}

int blk_parse_disk_opts(const char *arg, struct blk_open_opts *out)
{
    struct blk_open_opts o = {0};
    const char *s = arg ? arg : "";
    char *path = next_item(&s);
    if (!path) {
        report_error("out of memory parsing --disk");
        return -1;
    }
    if (!*path) {
        report_error("--disk: no file name in '%s'", arg ? arg : "");
        free(path);
        return -1;
    }
    while (*s) {
        char *item = next_item(&s);
        if (!item) {
            report_error("out of memory parsing --disk");
            free(path);
            return -1;
        }
        int r = *item ? parse_disk_key(item, &o) : 0;
        free(item);
        if (r < 0) {
            free(path);
            return -1;
        }
    }
    o.path = path;
    *out = o;
    return 0;
}

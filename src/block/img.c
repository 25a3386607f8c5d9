/* kvmpc img: create, check and describe disk images, so that the common
 * overlay workflow needs no other tool. */
#include "block/img.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/qcow2_int.h"
#include "util.h"

static void usage(void)
{
    fprintf(stderr,
            "usage: kvmpc img create -f qcow2|raw [-b BACKING [-F FMT]] "
            "[-o OPTIONS] FILE [SIZE]\n"
            "       kvmpc img check FILE\n"
            "       kvmpc img info FILE\n"
            "SIZE is in bytes, with an optional k, M, G, T or P suffix (powers "
            "of 1024);\nwith -b it defaults to the backing file's size.\n"
            "qcow2 OPTIONS: cluster_size=N (512 to 2M), compat=0.10|1.1, "
            "lazy_refcounts=on|off,\n  refcount_bits=1|2|4|8|16|32|64\n");
}

/* "512", "64k", "2M", "10G": bytes, binary suffixes. */
static int parse_bytes(const char *s, uint64_t *out)
{
    if (!*s || *s == '-')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    static const char units[] = "kmgtp";
    unsigned shift = 0;
    if (*end) {
        const char *u = strchr(units, *end | 0x20);
        if (!u || end[1])
            return -1;
        shift = 10 * (unsigned)(u - units + 1);
    }
    if (v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

struct create_args {
    const char *fmt, *backing, *backing_fmt, *file, *size;
    struct qcow2_create_opts q;
};

static int parse_option(struct create_args *a, const char *item)
{
    const char *v = strchr(item, '=');
    if (!v)
        goto bad;
    v++;
    size_t k = (size_t)(v - item - 1);
    uint64_t n;
    if (k == 12 && !strncmp(item, "cluster_size", k)) {
        if (parse_bytes(v, &n) < 0 || !IS_POWER_OF_2(n) || n < 512 ||
            n > (2u << 20))
            goto bad;
        a->q.cluster_bits = (unsigned)__builtin_ctzll(n);
    } else if (k == 6 && !strncmp(item, "compat", k)) {
        if (!strcmp(v, "0.10") || !strcmp(v, "v2"))
            a->q.version = 2;
        else if (!strcmp(v, "1.1") || !strcmp(v, "v3"))
            a->q.version = 3;
        else
            goto bad;
    } else if (k == 14 && !strncmp(item, "lazy_refcounts", k)) {
        if (strcmp(v, "on") && strcmp(v, "off"))
            goto bad;
        a->q.lazy_refcounts = !strcmp(v, "on");
    } else if (k == 13 && !strncmp(item, "refcount_bits", k)) {
        if (parse_bytes(v, &n) < 0 || !IS_POWER_OF_2(n) || n > 64)
            goto bad;
        a->q.refcount_order = (unsigned)__builtin_ctzll(n);
    } else {
        goto bad;
    }
    return 0;
bad:
    report_error("img create: bad option '%s'", item);
    return -1;
}

static int parse_options(struct create_args *a, const char *opts)
{
    char *copy = strdup(opts), *save = NULL;
    if (!copy)
        return -1;
    int r = 0;
    for (char *it = strtok_r(copy, ",", &save); it && !r;
         it = strtok_r(NULL, ",", &save))
        r = parse_option(a, it);
    free(copy);
    return r;
}

static int parse_create(int argc, char **argv, struct create_args *a)
{
    a->q = (struct qcow2_create_opts){
        .cluster_bits = 16, .version = 3, .refcount_order = 4};
    a->fmt = "raw";
    int pos = 0;
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(s, "-f") && has_val)
            a->fmt = argv[++i];
        else if (!strcmp(s, "-b") && has_val)
            a->backing = argv[++i];
        else if (!strcmp(s, "-F") && has_val)
            a->backing_fmt = argv[++i];
        else if (!strcmp(s, "-o") && has_val) {
            if (parse_options(a, argv[++i]) < 0)
                return -1;
        } else if (s[0] == '-' && s[1])
            goto bad;
        else if (pos == 0 && ++pos)
            a->file = s;
        else if (pos == 1 && ++pos)
            a->size = s;
        else
            goto bad;
    }
    if (!a->file || (!a->size && !a->backing))
        goto bad;
    if (strcmp(a->fmt, "raw") && strcmp(a->fmt, "qcow2")) {
        report_error("img create: unknown format '%s' (raw or qcow2)",
                     a->fmt);
        return -1;
    }
    if (a->backing_fmt && strcmp(a->backing_fmt, "raw") &&
        strcmp(a->backing_fmt, "qcow2")) {
        report_error("img create: unknown backing format '%s'",
                     a->backing_fmt);
        return -1;
    }
    if (!strcmp(a->fmt, "raw") && a->backing) {
        report_error("img create: raw images cannot have a backing file");
        return -1;
    }
    if (a->q.version == 2 && a->q.lazy_refcounts) {
        report_error("img create: lazy_refcounts needs compat=1.1");
        return -1;
    }
    if (a->q.version == 2)
        a->q.refcount_order = 4;
    return 0;
bad:
    usage();
    return -1;
}

/* Opens the backing file the way the new image will (its name relative
 * to the image), to learn its size and format. */
static int probe_backing(struct create_args *a, uint64_t *size,
                         const char **fmt)
{
    const char *slash = strrchr(a->file, '/');
    char *path;
    if (a->backing[0] == '/' || !slash) {
        path = strdup(a->backing);
    } else if (asprintf(&path, "%.*s/%s", (int)(slash - a->file), a->file,
                        a->backing) < 0) {
        path = NULL;
    }
    if (!path)
        return -1;
    struct blk_open_opts o = {.path = path, .readonly = true};
    if (a->backing_fmt)
        o.format = strcmp(a->backing_fmt, "raw") ? BLK_FORMAT_QCOW2
                                                  : BLK_FORMAT_RAW;
    struct blockdev *bd;
    int r = blk_open(&o, &bd);
    free(path);
    if (r < 0)
        return -1;
    *size = blk_size(bd);
    *fmt = blk_format_name(bd);
    blk_close(bd);
    return 0;
}

static int create_raw(const char *file, uint64_t size)
{
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
        report_error("cannot create '%s': %s", file, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

static int img_create(int argc, char **argv)
{
    struct create_args a = {0};
    if (parse_create(argc, argv, &a) < 0)
        return 1;
    uint64_t size = 0, bsize = 0;
    const char *bfmt = a.backing_fmt;
    if (a.size && (parse_bytes(a.size, &size) < 0 || size > (1ull << 62))) {
        report_error("img create: bad size '%s'", a.size);
        return 1;
    }
    if (a.backing && probe_backing(&a, &bsize, &bfmt) < 0)
        return 1;
    if (!a.size)
        size = bsize;
    if (!strcmp(a.fmt, "raw"))
        return create_raw(a.file, size) < 0;
    if (size % 512) {
        report_error("img create: qcow2 sizes must be a multiple of 512 "
                     "bytes");
        return 1;
    }
    a.q.size = size;
    a.q.backing = a.backing;
    a.q.backing_fmt = a.backing ? bfmt : NULL;
    if (qcow2_create(a.file, &a.q) < 0)
        return 1;
    printf("Formatted '%s' (qcow2, %llu bytes%s%s)\n", a.file,
           (unsigned long long)size, a.backing ? ", backing " : "",
           a.backing ? a.backing : "");
    return 0;
}

static int open_plain(const char *file, struct blockdev **bd)
{
    struct aio_engine *eng = aio_engine_new();
    if (!eng)
        return -1;
    struct blk_open_opts o = {.path = file, .readonly = true};
    struct blk_chain chain = {0};
    int r = blk_open_on(&o, eng, &chain, BLK_OPEN_NO_BACKING, bd);
    free(chain.seen);
    if (r < 0) {
        aio_engine_free(eng);
        return -1;
    }
    (*bd)->own_engine = true;
    return 0;
}

static int img_check(int argc, char **argv)
{
    if (argc != 3) {
        usage();
        return 1;
    }
    struct blockdev *bd;
    if (open_plain(argv[2], &bd) < 0)
        return 1;
    if (strcmp(blk_format_name(bd), "qcow2")) {
        printf("'%s' is a raw image: there is no metadata to check.\n",
               argv[2]);
        blk_close(bd);
        return 0;
    }
    struct qcow2_check_result res;
    int r = qcow2_check(bd->priv, stdout, false, &res);
    blk_close(bd);
    if (r < 0)
        return 1;
    if (!res.corruptions && !res.leaks)
        printf("No errors were found on the image.\n");
    if (res.corruptions)
        printf("%llu errors were found on the image: data may be corrupt, "
               "and writing to it may corrupt more.\n",
               (unsigned long long)res.corruptions);
    if (res.leaks)
        printf("%llu leaked clusters were found on the image: they waste "
               "space, data is not harmed.\n",
               (unsigned long long)res.leaks);
    printf("Image end offset: %llu\n", (unsigned long long)res.image_end);
    return res.corruptions ? 1 : 0;
}

static int img_info(int argc, char **argv)
{
    if (argc != 3) {
        usage();
        return 1;
    }
    struct blockdev *bd;
    if (open_plain(argv[2], &bd) < 0)
        return 1;
    struct stat st;
    uint64_t used = stat(argv[2], &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
    printf("image: %s\nfile format: %s\nvirtual size: %llu bytes\n"
           "disk size: %llu bytes\n",
           argv[2], blk_format_name(bd), (unsigned long long)blk_size(bd),
           (unsigned long long)used);
    if (!strcmp(blk_format_name(bd), "qcow2")) {
        const struct qcow2 *q = bd->priv;
        const struct qcow2_meta *m = &q->m;
        printf("cluster size: %llu\nversion: %u\nrefcount bits: %u\n"
               "compression: %s\nextended L2: %s\nsnapshots: %u\n",
               (unsigned long long)m->cs, m->h.version, 1u << m->rc_order,
               m->h.compression_type ? "zstd" : "zlib",
               m->ext_l2 ? "yes" : "no", m->nb_snaps);
        if (m->has_backing)
            printf("backing file: %s\nbacking format: %s\n", m->backing,
                   m->backing_fmt == BLK_FORMAT_RAW     ? "raw"
                   : m->backing_fmt == BLK_FORMAT_QCOW2 ? "qcow2"
                                                        : "(probed)");
    }
    blk_close(bd);
    return 0;
}

int img_main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "create"))
        return img_create(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "check"))
        return img_check(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "info"))
        return img_info(argc, argv);
    usage();
    return 1;
}

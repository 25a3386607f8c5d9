#include "platform/aml.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Opcodes (ACPI 6.x, section 20 "AML Specification"). */
#define ZERO_OP 0x00
#define ONE_OP 0x01
#define NAME_OP 0x08
#define BYTE_PREFIX 0x0A
#define WORD_PREFIX 0x0B
#define DWORD_PREFIX 0x0C
#define STRING_PREFIX 0x0D
#define QWORD_PREFIX 0x0E
#define SCOPE_OP 0x10
#define BUFFER_OP 0x11
#define PACKAGE_OP 0x12
#define METHOD_OP 0x14
#define DUAL_NAME_PREFIX 0x2E
#define MULTI_NAME_PREFIX 0x2F
#define EXT_OP_PREFIX 0x5B
#define OP_REGION_OP 0x80 /* after EXT_OP_PREFIX */
#define FIELD_OP 0x81     /* after EXT_OP_PREFIX */
#define DEVICE_OP 0x82    /* after EXT_OP_PREFIX */
#define LOCAL0_OP 0x60
#define ARG0_OP 0x68
#define STORE_OP 0x70
#define AND_OP 0x7B
#define OR_OP 0x7D
#define CREATE_DWORD_FIELD_OP 0x8A
#define LEQUAL_OP 0x93
#define LLESS_OP 0x95
#define IF_OP 0xA0
#define ELSE_OP 0xA1
#define RETURN_OP 0xA4
#define ONES_OP 0xFF

#define NAME_SEG_LEN 4
#define PKG_LENGTH_MAX ((1U << 28) - 1)

void aml_init(struct aml *a)
{
    memset(a, 0, sizeof(*a));
}

void aml_free(struct aml *a)
{
    free(a->buf);
    memset(a, 0, sizeof(*a));
}

int aml_finish(const struct aml *a)
{
    return a->failed || a->depth ? -1 : 0;
}

/* Room for n more bytes at the end, or NULL (and the writer failed). */
static uint8_t *grow(struct aml *a, size_t n)
{
    if (a->failed)
        return NULL;
    if (a->len + n > a->cap) {
        size_t cap = a->cap ? a->cap : 256;
        while (cap < a->len + n)
            cap *= 2;
        uint8_t *b = realloc(a->buf, cap);
        if (!b) {
            a->failed = true;
            return NULL;
        }
        a->buf = b;
        a->cap = cap;
    }
    uint8_t *p = a->buf + a->len;
    a->len += n;
    return p;
}

void aml_bytes(struct aml *a, const void *data, size_t len)
{
    uint8_t *p = grow(a, len);
    if (p)
        memcpy(p, data, len);
}

static void byte(struct aml *a, uint8_t b)
{
    aml_bytes(a, &b, 1);
}

static void le(struct aml *a, uint64_t v, unsigned size)
{
    uint8_t b[8];
    for (unsigned i = 0; i < size; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    aml_bytes(a, b, size);
}

void aml_int(struct aml *a, uint64_t v)
{
    if (v == 0)
        byte(a, ZERO_OP);
    else if (v == 1)
        byte(a, ONE_OP);
    else if (v == UINT64_MAX)
        byte(a, ONES_OP);
    else if (v <= UINT8_MAX)
        byte(a, BYTE_PREFIX), le(a, v, 1);
    else if (v <= UINT16_MAX)
        byte(a, WORD_PREFIX), le(a, v, 2);
    else if (v <= UINT32_MAX)
        byte(a, DWORD_PREFIX), le(a, v, 4);
    else
        byte(a, QWORD_PREFIX), le(a, v, 8);
}

void aml_string(struct aml *a, const char *s)
{
    byte(a, STRING_PREFIX);
    aml_bytes(a, s, strlen(s) + 1);
}

static bool name_char(char c, bool lead)
{
    return (c >= 'A' && c <= 'Z') || c == '_' || (!lead && c >= '0' && c <= '9');
}

/* One NameSeg from s (up to '.' or the end), padded with '_'. */
static const char *name_seg(struct aml *a, const char *s)
{
    char seg[NAME_SEG_LEN];
    unsigned n = 0;
    for (; *s && *s != '.'; s++) {
        if (n == NAME_SEG_LEN || !name_char(*s, n == 0)) {
            a->failed = true;
            return s;
        }
        seg[n++] = *s;
    }
    if (n == 0)
        a->failed = true;
    memset(seg + n, '_', NAME_SEG_LEN - n);
    aml_bytes(a, seg, NAME_SEG_LEN);
    return *s == '.' ? s + 1 : s;
}

void aml_name(struct aml *a, const char *path)
{
    for (; *path == '\\' || *path == '^'; path++)
        byte(a, (uint8_t)*path);
    unsigned segs = *path ? 1 : 0;
    for (const char *p = path; *p; p++)
        segs += *p == '.';
    if (segs == 0)
        byte(a, ZERO_OP); /* NullName */
    else if (segs == 2)
        byte(a, DUAL_NAME_PREFIX);
    else if (segs > 2)
        byte(a, MULTI_NAME_PREFIX), byte(a, (uint8_t)segs);
    for (unsigned i = 0; i < segs && !a->failed; i++)
        path = name_seg(a, path);
}

static unsigned hex_digit(struct aml *a, char c)
{
    if (c >= '0' && c <= '9')
        return (unsigned)(c - '0');
    if (c >= 'A' && c <= 'F')
        return (unsigned)(c - 'A' + 10);
    a->failed = true;
    return 0;
}

/* Three letters, five bits each, then four hex digits; stored so that
 * the bytes read in order are the compressed ID. */
void aml_eisaid(struct aml *a, const char *id)
{
    if (strlen(id) != 7) {
        a->failed = true;
        return;
    }
    uint32_t mfg = 0;
    for (unsigned i = 0; i < 3; i++) {
        if (id[i] < 'A' || id[i] > 'Z')
            a->failed = true;
        mfg = mfg << 5 | (uint32_t)(id[i] - 'A' + 1);
    }
    uint32_t prod = 0;
    for (unsigned i = 3; i < 7; i++)
        prod = prod << 4 | hex_digit(a, id[i]);
    uint32_t be = mfg << 16 | prod; /* big-endian byte order */
    aml_int(a, (uint64_t)(be >> 24 | (be >> 8 & 0xFF00) |
                          (be << 8 & 0xFF0000) | be << 24));
}

void aml_local(struct aml *a, unsigned n)
{
    if (n > 7)
        a->failed = true;
    byte(a, (uint8_t)(LOCAL0_OP + (n & 7)));
}

void aml_arg(struct aml *a, unsigned n)
{
    if (n > 6)
        a->failed = true;
    byte(a, (uint8_t)(ARG0_OP + (n & 7)));
}

void aml_no_target(struct aml *a)
{
    byte(a, ZERO_OP);
}

/* ---- PkgLength blocks -------------------------------------------------- */

static void open_block(struct aml *a)
{
    if (a->depth == AML_MAX_DEPTH) {
        a->failed = true;
        return;
    }
    a->open[a->depth++] = a->len;
}

/* Bytes a PkgLength takes for a body of body_len bytes (it counts
 * itself), or 0 if it cannot be encoded. */
static unsigned pkg_length_size(size_t body_len)
{
    if (body_len + 1 <= 0x3F)
        return 1;
    for (unsigned n = 2; n <= 4; n++)
        if (body_len + n < (1U << (4 + 8 * (n - 1))))
            return n;
    return 0;
}

/* Encodes value in n PkgLength bytes: a lead byte with the count of
 * following bytes in bits 7:6, then the value, low nibble first. */
static void encode_pkg_length(uint8_t *p, unsigned n, size_t value)
{
    if (n == 1) {
        p[0] = (uint8_t)value;
        return;
    }
    p[0] = (uint8_t)((n - 1) << 6 | (value & 0xF));
    for (unsigned i = 1; i < n; i++)
        p[i] = (uint8_t)(value >> (4 + 8 * (i - 1)));
}

void aml_end(struct aml *a)
{
    if (a->failed)
        return;
    if (a->depth == 0) {
        a->failed = true;
        return;
    }
    size_t start = a->open[--a->depth];
    size_t body = a->len - start;
    unsigned n = pkg_length_size(body);
    if (n == 0 || !grow(a, n)) {
        a->failed = true;
        return;
    }
    memmove(a->buf + start + n, a->buf + start, body);
    encode_pkg_length(a->buf + start, n, body + n);
}

void aml_name_decl(struct aml *a, const char *name)
{
    byte(a, NAME_OP);
    aml_name(a, name);
}

void aml_scope(struct aml *a, const char *name)
{
    byte(a, SCOPE_OP);
    open_block(a);
    aml_name(a, name);
}

void aml_device(struct aml *a, const char *name)
{
    byte(a, EXT_OP_PREFIX);
    byte(a, DEVICE_OP);
    open_block(a);
    aml_name(a, name);
}

void aml_method(struct aml *a, const char *name, unsigned nargs,
                bool serialized)
{
    if (nargs > 7)
        a->failed = true;
    byte(a, METHOD_OP);
    open_block(a);
    aml_name(a, name);
    byte(a, (uint8_t)((nargs & 7) | (serialized ? 0x08 : 0)));
}

void aml_if(struct aml *a)
{
    byte(a, IF_OP);
    open_block(a);
}

void aml_else(struct aml *a)
{
    byte(a, ELSE_OP);
    open_block(a);
}

void aml_package(struct aml *a, unsigned nelems)
{
    if (nelems > UINT8_MAX)
        a->failed = true;
    byte(a, PACKAGE_OP);
    open_block(a);
    byte(a, (uint8_t)nelems);
}

void aml_buffer(struct aml *a, const void *data, size_t len)
{
    byte(a, BUFFER_OP);
    open_block(a);
    aml_int(a, len);
    aml_bytes(a, data, len);
    aml_end(a);
}

void aml_op_region(struct aml *a, const char *name, enum aml_region_space sp,
                   uint64_t offset, uint64_t len)
{
    byte(a, EXT_OP_PREFIX);
    byte(a, OP_REGION_OP);
    aml_name(a, name);
    byte(a, (uint8_t)sp);
    aml_int(a, offset);
    aml_int(a, len);
}

void aml_field(struct aml *a, const char *region, enum aml_field_access acc)
{
    byte(a, EXT_OP_PREFIX);
    byte(a, FIELD_OP);
    open_block(a);
    aml_name(a, region);
    byte(a, (uint8_t)acc); /* NoLock (bit 4 clear), Preserve (bits 6:5 0) */
}

/* A NamedField: NameSeg, then its width in bits in PkgLength form (the
 * width does not count the encoding bytes). */
void aml_field_unit(struct aml *a, const char *name, unsigned bits)
{
    if (strchr(name, '.') || bits == 0 || bits > PKG_LENGTH_MAX) {
        a->failed = true;
        return;
    }
    name_seg(a, name);
    unsigned n = bits <= 0x3F ? 1 : bits < (1U << 12) ? 2 : bits < (1U << 20) ? 3 : 4;
    uint8_t *p = grow(a, n);
    if (p)
        encode_pkg_length(p, n, bits);
}

void aml_return(struct aml *a)
{
    byte(a, RETURN_OP);
}

void aml_store(struct aml *a)
{
    byte(a, STORE_OP);
}

void aml_and(struct aml *a)
{
    byte(a, AND_OP);
}

void aml_or(struct aml *a)
{
    byte(a, OR_OP);
}

void aml_lequal(struct aml *a)
{
    byte(a, LEQUAL_OP);
}

void aml_lless(struct aml *a)
{
    byte(a, LLESS_OP);
}

void aml_create_dword_field(struct aml *a)
{
    byte(a, CREATE_DWORD_FIELD_OP);
}

/* ---- Resource descriptors (ACPI 6.x, section 6.4) ---------------------- */

#define RES_IO 0x47            /* small item 0x08, 7 bytes */
#define RES_IRQ_NOFLAGS 0x22   /* small item 0x04, 2 bytes */
#define RES_END_TAG 0x79       /* small item 0x0F, 1 byte */
#define RES_DWORD_ADDR 0x87
#define RES_WORD_ADDR 0x88
#define RES_EXT_IRQ 0x89
#define RES_QWORD_ADDR 0x8A

#define ADDR_TYPE_MEMORY 0
#define ADDR_TYPE_IO 1
#define ADDR_TYPE_BUS 2
/* General flags: producer, positive decode, min and max fixed. */
#define ADDR_MIN_FIXED 0x04
#define ADDR_MAX_FIXED 0x08
#define ADDR_IO_ENTIRE_RANGE 0x03
#define ADDR_MEM_READ_WRITE 0x01
#define ADDR_MEM_CACHEABLE 0x02

#define EXT_IRQ_CONSUMER 0x01
#define EXT_IRQ_SHARED 0x08

void aml_res_io(struct aml *r, uint16_t base, uint8_t len)
{
    /* IO (Decode16, base, base, 1, len) */
    byte(r, RES_IO);
    byte(r, 0x01); /* 16-bit decode */
    le(r, base, 2);
    le(r, base, 2);
    byte(r, 1);
    byte(r, len);
}

void aml_res_irq_noflags(struct aml *r, unsigned irq)
{
    if (irq > 15)
        r->failed = true;
    byte(r, RES_IRQ_NOFLAGS);
    le(r, 1U << (irq & 15), 2);
}

void aml_res_interrupt_level_high(struct aml *r, const uint32_t *irqs,
                                  unsigned n)
{
    if (n == 0 || n > UINT8_MAX)
        r->failed = true;
    byte(r, RES_EXT_IRQ);
    le(r, 2 + 4 * (uint64_t)n, 2);
    /* consumer; level (bit 1 clear), active high (bit 2 clear), shared */
    byte(r, EXT_IRQ_CONSUMER | EXT_IRQ_SHARED);
    byte(r, (uint8_t)n);
    for (unsigned i = 0; i < n; i++)
        le(r, irqs[i], 4);
}

/* Word/DWord/QWord address space descriptors share one shape: type,
 * flags, then granularity, min, max, translation and length, each of
 * size bytes. */
static void res_addr(struct aml *r, uint8_t tag, unsigned size, uint8_t type,
                     uint8_t type_flags, uint64_t min, uint64_t max)
{
    byte(r, tag);
    le(r, 3 + 5 * (uint64_t)size, 2);
    byte(r, type);
    byte(r, ADDR_MIN_FIXED | ADDR_MAX_FIXED);
    byte(r, type_flags);
    le(r, 0, size);
    le(r, min, size);
    le(r, max, size);
    le(r, 0, size);
    le(r, max - min + 1, size);
}

void aml_res_word_bus(struct aml *r, uint16_t min, uint16_t max)
{
    res_addr(r, RES_WORD_ADDR, 2, ADDR_TYPE_BUS, 0, min, max);
}

void aml_res_word_io(struct aml *r, uint16_t min, uint16_t max)
{
    res_addr(r, RES_WORD_ADDR, 2, ADDR_TYPE_IO, ADDR_IO_ENTIRE_RANGE, min,
             max);
}

static uint8_t mem_flags(bool cacheable)
{
    return ADDR_MEM_READ_WRITE | (cacheable ? ADDR_MEM_CACHEABLE : 0);
}

void aml_res_dword_mem(struct aml *r, uint32_t min, uint32_t max,
                       bool cacheable)
{
    res_addr(r, RES_DWORD_ADDR, 4, ADDR_TYPE_MEMORY, mem_flags(cacheable),
             min, max);
}

void aml_res_qword_mem(struct aml *r, uint64_t min, uint64_t max,
                       bool cacheable)
{
    res_addr(r, RES_QWORD_ADDR, 8, ADDR_TYPE_MEMORY, mem_flags(cacheable),
             min, max);
}

void aml_res_end(struct aml *r)
{
    byte(r, RES_END_TAG);
    byte(r, 0); /* checksum 0: "treat as correct" */
}

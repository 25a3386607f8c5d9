/* Small helpers shared by every part of kvmpc. */
#ifndef KVMPC_UTIL_H
#define KVMPC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((__typeof__(x))(a) - 1))
#define IS_POWER_OF_2(x) ((x) != 0 && (((x) & ((x) - 1)) == 0))
#define UNUSED __attribute__((unused))
#define MUST_CHECK __attribute__((warn_unused_result))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

/* Reports one line "kvmpc: <message>" on stderr. The code that detects a
 * problem reports it; callers only propagate the failure. */
void report_error(const char *fmt, ...) PRINTF_LIKE(1, 2);
void report_warning(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* Guest-triggered oddities: logged at most a few times per site so that a
 * hostile guest cannot flood the host log. */
#define guest_warn(...)                                                        \
    do {                                                                       \
        static unsigned guest_warn_count_;                                     \
        if (__atomic_fetch_add(&guest_warn_count_, 1, __ATOMIC_RELAXED) < 5)   \
            report_warning(__VA_ARGS__);                                       \
    } while (0)

/* Reads a whole regular file of at most max_len bytes. Returns 0 and a
 * malloc'ed buffer, or -1 after reporting what is wrong with the file
 * (what = "kernel", "initrd", ...). */
int read_file(const char *what, const char *path, size_t max_len,
              uint8_t **buf, size_t *len) MUST_CHECK;

/* Parses a size such as "512", "512M", "2G" ("512" means MiB). */
int parse_size_mib(const char *s, uint64_t *out) MUST_CHECK;

static inline uint16_t get_le16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t get_le32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
           (uint32_t)b[3] << 24;
}

static inline uint64_t get_le64(const void *p)
{
    const uint8_t *b = p;
    return get_le32(b) | (uint64_t)get_le32(b + 4) << 32;
}

static inline void put_le16(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(void *p, uint32_t v)
{
    uint8_t *b = p;
    put_le16(b, (uint16_t)v);
    put_le16(b + 2, (uint16_t)(v >> 16));
}

static inline void put_le64(void *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t get_be32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
           (uint32_t)b[3];
}

static inline void put_be32(void *p, uint32_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static inline uint16_t get_be16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[0] << 8 | b[1]);
}

static inline void put_be16(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
}

static inline uint64_t get_be64(const void *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32((const uint8_t *)p + 4);
}

static inline void put_be64(void *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32((uint8_t *)p + 4, (uint32_t)v);
}

/* Byte checksum used by ACPI, SMBIOS and MP tables: the value that makes
 * the bytes sum to zero. */
uint8_t checksum8(const void *data, size_t len);

/* Copies a NUL-terminated string into a fixed field, padding with pad. */
void copy_padded(void *dst, size_t dst_len, const char *src, char pad);

#endif

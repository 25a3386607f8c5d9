/* The handful of libc routines a freestanding guest needs (the compiler
 * may emit calls to memset/memcpy/memcmp itself). */
#include "kit.h"

void *memset(void *d, int c, size_t n)
{
    uint8_t *p = d;
    while (n--)
        *p++ = (uint8_t)c;
    return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
    uint8_t *dp = d;
    const uint8_t *sp = s;
    while (n--)
        *dp++ = *sp++;
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (; n; n--, a++, b++) {
        if (*a != *b)
            return (uint8_t)*a - (uint8_t)*b;
        if (!*a)
            return 0;
    }
    return 0;
}

static int digit_value(char c, unsigned base)
{
    int v = -1;
    if (c >= '0' && c <= '9')
        v = c - '0';
    else if (c >= 'a' && c <= 'f')
        v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
        v = c - 'A' + 10;
    return v >= 0 && (unsigned)v < base ? v : -1;
}

size_t kit_parse_u64(const char *s, uint64_t *out)
{
    unsigned base = 10;
    size_t i = 0, start;
    uint64_t v = 0;

    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
    }
    start = i;
    for (int d; (d = digit_value(s[i], base)) >= 0; i++)
        v = v * base + (unsigned)d;
    if (i == start)
        return 0;
    switch (s[i]) {
    case 'K': v *= KiB; i++; break;
    case 'M': v *= MiB; i++; break;
    case 'G': v *= GiB; i++; break;
    default: break;
    }
    *out = v;
    return i;
}

#include "vm/memory.h"

#include <string.h>

int gmem_add(struct guest_mem *m, uint64_t gpa, uint64_t size, uint8_t *host,
             bool readonly)
{
    uint64_t end;
    if (m->count >= GMEM_MAX_REGIONS || size == 0 ||
        __builtin_add_overflow(gpa, size, &end))
        return -1;
    for (unsigned i = 0; i < m->count; i++) {
        const struct gmem_region *r = &m->regions[i];
        if (gpa < r->gpa + r->size && r->gpa < end)
            return -1;
    }
    m->regions[m->count++] = (struct gmem_region){gpa, size, host, readonly};
    return 0;
}

static const struct gmem_region *find_region(const struct guest_mem *m,
                                             uint64_t gpa)
{
    for (unsigned i = 0; i < m->count; i++) {
        const struct gmem_region *r = &m->regions[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size)
            return r;
    }
    return NULL;
}

void *gpa_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len,
              enum gmem_access access)
{
    uint64_t last;
    if (len == 0)
        len = 1;
    if (__builtin_add_overflow(gpa, len - 1, &last))
        return NULL;
    const struct gmem_region *r = find_region(m, gpa);
    if (!r || last - r->gpa >= r->size)
        return NULL;
    if ((access & GMEM_WRITE) && r->readonly)
        return NULL;
    return r->host + (gpa - r->gpa);
}

static int gmem_copy(const struct guest_mem *m, uint64_t gpa, void *buf,
                     size_t len, bool to_guest)
{
    uint8_t *p = buf;
    while (len > 0) {
        const struct gmem_region *r = find_region(m, gpa);
        if (!r || (to_guest && r->readonly))
            return -1;
        uint64_t avail = r->size - (gpa - r->gpa);
        size_t n = len < avail ? len : (size_t)avail;
        uint8_t *host = r->host + (gpa - r->gpa);
        if (to_guest)
            memcpy(host, p, n);
        else
            memcpy(p, host, n);
        p += n;
        len -= n;
        if (len && __builtin_add_overflow(gpa, n, &gpa))
            return -1;
    }
    return 0;
}

int gmem_read(const struct guest_mem *m, uint64_t gpa, void *buf, size_t len)
{
    return gmem_copy(m, gpa, buf, len, false);
}

int gmem_write(const struct guest_mem *m, uint64_t gpa, const void *buf,
               size_t len)
{
    return gmem_copy(m, gpa, (void *)buf, len, true);
}

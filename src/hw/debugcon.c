#include "hw/debugcon.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define DEBUGCON_SIGNATURE 0xE9

static void debugcon_read(void *opaque, uint64_t off, void *data,
                          unsigned len)
{
    memset(data, DEBUGCON_SIGNATURE, len);
}

/* Output errors are not the guest's concern: a full pipe or a closed
 * terminal loses debug text, never stalls or stops the VM. */
static void debugcon_write(void *opaque, uint64_t off, const void *data,
                           unsigned len)
{
    const struct debugcon *d = opaque;
    const char *p = data;
    while (d->fd >= 0 && len > 0) {
        ssize_t n = write(d->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (unsigned)n;
    }
}

const struct bus_ops debugcon_bus_ops = {
    .read = debugcon_read,
    .write = debugcon_write,
};

void debugcon_init(struct debugcon *d, int fd)
{
    d->fd = fd;
}

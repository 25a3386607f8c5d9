#include "hw/early_uart.h"

#include <string.h>

static void uart_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct early_uart *u = opaque;
    uint8_t v = off == 5 ? 0x60 : u->regs[off & 7];
    memset(data, v, len);
}

static void uart_write(void *opaque, uint64_t off, const void *data,
                       unsigned len)
{
    struct early_uart *u = opaque;
    const uint8_t *b = data;
    if (off == 0 && !(u->regs[3] & 0x80)) {
        u->write(u->opaque, b, 1);
        return;
    }
    u->regs[off & 7] = b[0];
}

const struct bus_ops early_uart_ops = {uart_read, uart_write};

/* Placeholder transmit-only UART until the 16550A model lands. */
#ifndef KVMPC_EARLY_UART_H
#define KVMPC_EARLY_UART_H

#include "vm/bus.h"

struct early_uart {
    void (*write)(void *opaque, const void *buf, size_t len);
    void *opaque;
    uint8_t regs[8];
};

extern const struct bus_ops early_uart_ops;

#endif

/* Debug console at LAYOUT_PORT_DEBUGCON (one port): every byte written
 * goes to an fd, reads return 0xE9 (firmware switches its debug output
 * off unless they do). The device keeps no state beyond the fd, so it
 * needs no lock: each byte is one write(2). Write errors drop the text;
 * the process is expected to ignore SIGPIPE. */
#ifndef KVMPC_HW_DEBUGCON_H
#define KVMPC_HW_DEBUGCON_H

#include "vm/bus.h"

struct debugcon {
    int fd; /* not owned; < 0 drops the output */
};

extern const struct bus_ops debugcon_bus_ops;

void debugcon_init(struct debugcon *d, int fd);

#endif

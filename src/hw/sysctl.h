/* The chipset's miscellaneous system-control ports, one range each:
 *  - LAYOUT_PORT_A20 (0x92, "fast A20"): reads 0x02 (A20 on; KVM has no
 *    A20 gate), writes are ignored. Bit 0 (fast reset) deliberately does
 *    nothing: firmware read-modify-writes this port on every switch to
 *    32-bit mode, and a reset there would be fatal if it ever read back
 *    a 1.
 *  - LAYOUT_PORT_RESET_CONTROL (0xCF9): a byte write with bit 2 (RST_CPU)
 *    set calls reset_request (firmware writes 0x02 then 0x06, an FADT
 *    reset register 0x06); bits 1 and 3 read back, bit 2 reads 0. The
 *    machine dispatches byte accesses at 0xCF9 here; dword accesses at
 *    0xCF8 are PCI configuration.
 *  - LAYOUT_PORT_POST (0x80): POST codes and I/O delays, discarded;
 *    reads return 0xFF as if nothing decoded them.
 * Locking: one mutex; reset_request is called without it. */
#ifndef KVMPC_HW_SYSCTL_H
#define KVMPC_HW_SYSCTL_H

#include <pthread.h>
#include <stdint.h>

#include "vm/bus.h"

struct sysctl_config {
    void (*reset_request)(void *opaque); /* from a vCPU thread */
    void *opaque;
};

struct sysctl {
    pthread_mutex_t lock;
    struct sysctl_config cfg;
    uint8_t reset_control; /* 0xCF9 */
};

extern const struct bus_ops sysctl_port92_ops;
extern const struct bus_ops sysctl_reset_control_ops;
extern const struct bus_ops sysctl_post_ops;

int sysctl_init(struct sysctl *s, const struct sysctl_config *cfg);
void sysctl_destroy(struct sysctl *s);
void sysctl_reset(struct sysctl *s);

#endif

/* What the table generators need to know about the machine being built.
 * Filled once by machine.c from the validated configuration. */
#ifndef KVMPC_MACHINE_INFO_H
#define KVMPC_MACHINE_INFO_H

#include <stdbool.h>
#include <stdint.h>

#include "platform/layout.h"

struct pci_intx_user {
    uint8_t slot; /* bus 0 slot */
    uint8_t pin;  /* 1 = INTA .. 4 = INTD */
};

struct machine_info {
    unsigned ncpus;        /* all present; APIC ID i for vCPU i */
    uint64_t ram_size;     /* bytes; split per layout_lowmem()/highmem() */
    bool firmware;         /* tables are handed to firmware via fw_cfg */
    const char *name;      /* --name, or NULL */
    uint8_t uuid[16];      /* SMBIOS type 1 UUID (stable per --name), in
                            * RFC 4122 byte order, as it is printed */
    /* PCI functions with an interrupt pin, for the MP table. */
    struct pci_intx_user intx[LAYOUT_PCI_SLOTS];
    unsigned intx_count;
};

#endif

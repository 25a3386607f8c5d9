/* PCI: configuration mechanism #1, a bus-0 function model with standard
 * BAR sizing/programming, capability lists, and INTx through the PIIX
 * PIRQ routers. */
#ifndef KVMPC_PCI_H
#define KVMPC_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "platform/layout.h"
#include "vm/bus.h"
#include "vm/irq.h"

#define PCI_CFG_SIZE 256
#define PCI_NUM_BARS 6

/* Config space offsets */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_HEADER_TYPE 0x0E
#define PCI_BAR0 0x10
#define PCI_SUBSYS_VENDOR 0x2C
#define PCI_SUBSYS_ID 0x2E
#define PCI_ROM_BAR 0x30
#define PCI_CAP_PTR 0x34
#define PCI_INTERRUPT_LINE 0x3C
#define PCI_INTERRUPT_PIN 0x3D

#define PCI_COMMAND_IO 0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_COMMAND_INTX_DISABLE 0x400
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_STATUS_INTERRUPT 0x08

#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VNDR 0x09

enum pci_bar_type {
    PCI_BAR_NONE = 0, /* unimplemented: reads 0, ignores writes */
    PCI_BAR_IO,
    PCI_BAR_MEM32,
    PCI_BAR_MEM64, /* takes this BAR and the next */
};

struct pci_bar {
    enum pci_bar_type type;
    bool prefetch;
    uint64_t size; /* power of two; I/O >= 4, memory >= 16 */
    const struct bus_ops *ops;
    void *opaque;
    /* current decode: registered on the PIO or MMIO bus at addr */
    bool mapped;
    uint64_t addr;
};

struct pci_host;

struct pci_dev {
    const char *name;
    uint8_t cfg[PCI_CFG_SIZE];
    uint8_t wmask[PCI_CFG_SIZE]; /* bits the guest may write */
    uint8_t w1c[PCI_CFG_SIZE];   /* bits a guest 1 clears */
    struct pci_bar bar[PCI_NUM_BARS];
    uint8_t devfn;
    uint8_t cap_tail; /* offset of the last capability, 0 if none */
    uint8_t cap_end;  /* next free byte for a capability */
    struct pci_host *host;
    bool intx_asserted;  /* the function's own INTx level */
    bool cfg_intx_gated; /* COMMAND.INTX_DISABLE when last applied */
    /* Called (with the host lock held) after a guest config write has been
     * applied, with the value before the write. Optional. */
    void (*config_written)(struct pci_dev *d, unsigned off, unsigned len,
                           uint32_t old);
    /* Called (with the host lock held) before a guest config read is
     * answered from cfg, so that registers with side effects or live
     * values can fill in their bytes. Optional. */
    void (*config_read)(struct pci_dev *d, unsigned off, unsigned len);
    /* Called (host lock held) after a BAR starts or stops decoding at a
     * new address, e.g. to move ioeventfds along. Optional. */
    void (*bar_moved)(struct pci_dev *d, unsigned bar, bool mapped,
                      uint64_t addr);
    void *opaque;
};

struct pci_host {
    pthread_mutex_t lock;      /* config space of every function */
    pthread_mutex_t intx_lock; /* PIRQ state; never held while taking lock */
    struct bus *pio, *mmio;
    struct pci_dev *fn[LAYOUT_PCI_SLOTS * 8];
    uint32_t config_addr; /* 0xCF8 latch */
    int vmfd;
    /* PIIX3 PIRQ routing: route registers live in the ISA bridge's config
     * space; asserted counts per PIRQ. */
    struct pci_dev *isa_bridge;
    unsigned pirq_asserted[LAYOUT_PIRQ_COUNT];
    struct irq_line isa_irq[16]; /* ISA IRQs as driven by the PIRQs */
    /* Byte accesses to 0xCF9 (PIIX reset control) share the 0xCF8 dword. */
    const struct bus_ops *reset_control_ops;
    void *reset_control_opaque;
};

/* Fills identity and the standard writable bits. header_type bit 7 marks
 * a multi-function device (function 0 only). */
void pci_dev_init(struct pci_dev *d, const char *name, uint16_t vendor,
                  uint16_t device, uint32_t class_code, uint8_t revision,
                  uint16_t subsys_vendor, uint16_t subsys_id);
/* Declares a BAR. Size must be a power of two. */
void pci_dev_set_bar(struct pci_dev *d, unsigned idx, enum pci_bar_type type,
                     uint64_t size, bool prefetch, const struct bus_ops *ops,
                     void *opaque);
/* Appends a capability (body excludes the ID/next bytes) and returns its
 * config-space offset, or 0 if there is no room. wmask_body gives the
 * writable bits of the body (may be NULL). */
uint8_t pci_dev_add_cap(struct pci_dev *d, uint8_t id, const void *body,
                        uint8_t body_len, const void *wmask_body);
/* Sets the interrupt pin (1 = INTA) the function uses. */
void pci_dev_set_intx_pin(struct pci_dev *d, uint8_t pin);
/* Drives the function's INTx (honours COMMAND.INTX_DISABLE; updates
 * STATUS.INTERRUPT). Thread-safe. */
void pci_dev_set_intx(struct pci_dev *d, bool level);

/* Which PIRQ (0 = A) a bus-0 slot/pin lands on: the PIIX swizzle that
 * firmware, the _PRT and the MP table all use. */
static inline unsigned pci_slot_pirq(unsigned slot, unsigned pin)
{
    return (slot + pin - 2) & 3;
}

int pci_host_init(struct pci_host *h, struct bus *pio, struct bus *mmio,
                  int vmfd);
void pci_host_destroy(struct pci_host *h);
/* Plugs a function at devfn (bus 0). Returns 0 or -1 (slot taken). */
int pci_host_add(struct pci_host *h, struct pci_dev *d, uint8_t devfn);
/* Registers the 0xCF8/0xCFC ports on the PIO bus. */
int pci_host_register_ports(struct pci_host *h);
/* Declares which function holds the PIIX PIRQ route registers (config
 * 0x60-0x63); re-evaluates INTx routing whenever they change. */
void pci_host_set_pirq_router(struct pci_host *h, struct pci_dev *isa_bridge);
/* Re-applies the route registers (called after they are written). */
void pci_host_pirq_routes_changed(struct pci_host *h);

/* Config access as mechanism #1 performs it (also for tests). */
uint32_t pci_host_config_read(struct pci_host *h, uint8_t devfn, unsigned off,
                              unsigned len);
void pci_host_config_write(struct pci_host *h, uint8_t devfn, unsigned off,
                           unsigned len, uint32_t val);

#endif

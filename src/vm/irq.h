/* Interrupt delivery objects. Devices never issue KVM ioctls themselves;
 * they hold one of these.
 *  - struct irq_line: an ISA/PIC+IOAPIC input driven by level
 *    (KVM_IRQ_LINE). Edge-triggered ISA devices raise and lower it like
 *    the wire; level-triggered users hold it until acknowledged.
 *  - struct msi_vector: one MSI/MSI-X message, delivered through an irqfd
 *    bound to a KVM MSI route the router keeps in sync.
 * With vmfd < 0 (unit tests, fuzzers) nothing is sent to KVM; the objects
 * only record state, which tests inspect. */
#ifndef KVMPC_IRQ_H
#define KVMPC_IRQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct irq_line {
    int vmfd;
    unsigned gsi;
    int level;      /* last level driven, for tests and dedup */
    unsigned pulses; /* rising edges driven, for tests */
};

void irq_line_init(struct irq_line *l, int vmfd, unsigned gsi);
void irq_line_set(struct irq_line *l, int level);
/* Moves a level-driven line to another GSI (PIRQ re-routing). */
void irq_line_retarget(struct irq_line *l, unsigned gsi);

#define IRQ_MAX_ROUTES 1024

struct msi_vector {
    struct irq_router *router;
    unsigned gsi;      /* KVM GSI of the route */
    int eventfd;       /* irqfd trigger; -1 without KVM */
    uint64_t address;
    uint32_t data;
    bool routed;       /* a valid route exists in KVM */
    unsigned fired;    /* deliveries, for tests */
};

struct irq_router {
    int vmfd;
    pthread_mutex_t lock;
    struct msi_vector *vectors[IRQ_MAX_ROUTES]; /* by gsi - first_msi_gsi */
    unsigned first_msi_gsi;
    unsigned next_gsi;
    bool dirty;
};

/* Router with KVM's default PIC/IOAPIC routes for GSI 0-23 kept as is. */
int irq_router_init(struct irq_router *r, int vmfd);
void irq_router_destroy(struct irq_router *r);

/* Allocates a GSI and (with KVM) an irqfd for one MSI vector. */
int msi_vector_init(struct irq_router *r, struct msi_vector *v);
void msi_vector_destroy(struct msi_vector *v);
/* Points the vector at a message; pushes the routing table to KVM when
 * it changed. A zero address means "not programmed": firing drops it. */
int msi_vector_update(struct msi_vector *v, uint64_t address, uint32_t data);
/* Delivers the message (async-signal-safe with KVM: one eventfd write). */
void msi_vector_fire(struct msi_vector *v);

#endif

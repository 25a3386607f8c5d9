#include "vm/irq.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "platform/layout.h"
#include "util.h"

void irq_line_init(struct irq_line *l, int vmfd, unsigned gsi)
{
    memset(l, 0, sizeof(*l));
    l->vmfd = vmfd;
    l->gsi = gsi;
}

static void kvm_irq_line(int vmfd, unsigned gsi, int level)
{
    struct kvm_irq_level irq = {.irq = gsi, .level = (uint32_t)level};
    if (vmfd >= 0 && ioctl(vmfd, KVM_IRQ_LINE, &irq) < 0)
        report_warning("KVM_IRQ_LINE gsi %u: %s", gsi, strerror(errno));
}

void irq_line_set(struct irq_line *l, int level)
{
    level = !!level;
    int old = __atomic_exchange_n(&l->level, level, __ATOMIC_ACQ_REL);
    if (old == level)
        return;
    if (level)
        __atomic_fetch_add(&l->pulses, 1, __ATOMIC_RELAXED);
    kvm_irq_line(l->vmfd, l->gsi, level);
}

void irq_line_retarget(struct irq_line *l, unsigned gsi)
{
    if (gsi == l->gsi)
        return;
    if (l->level)
        kvm_irq_line(l->vmfd, l->gsi, 0);
    l->gsi = gsi;
    if (l->level)
        kvm_irq_line(l->vmfd, l->gsi, 1);
}

/* ---- MSI routes ------------------------------------------------------- */

int irq_router_init(struct irq_router *r, int vmfd)
{
    memset(r, 0, sizeof(*r));
    r->vmfd = vmfd;
    r->first_msi_gsi = LAYOUT_IOAPIC_PINS;
    r->next_gsi = r->first_msi_gsi;
    return pthread_mutex_init(&r->lock, NULL) ? -1 : 0;
}

void irq_router_destroy(struct irq_router *r)
{
    pthread_mutex_destroy(&r->lock);
}

static void add_irqchip_route(struct kvm_irq_routing *t, unsigned gsi,
                              unsigned chip, unsigned pin)
{
    struct kvm_irq_routing_entry *e = &t->entries[t->nr++];
    memset(e, 0, sizeof(*e));
    e->gsi = gsi;
    e->type = KVM_IRQ_ROUTING_IRQCHIP;
    e->u.irqchip.irqchip = chip;
    e->u.irqchip.pin = pin;
}

/* KVM_SET_GSI_ROUTING replaces the whole table, so the legacy part is
 * restated exactly as KVM's default: GSI n -> PIC pin n (n < 16) and
 * IOAPIC pin n, which is what the MADT and MP table describe. */
static void add_default_routes(struct kvm_irq_routing *t)
{
    for (unsigned gsi = 0; gsi < LAYOUT_IOAPIC_PINS; gsi++) {
        if (gsi < 8)
            add_irqchip_route(t, gsi, KVM_IRQCHIP_PIC_MASTER, gsi);
        else if (gsi < 16)
            add_irqchip_route(t, gsi, KVM_IRQCHIP_PIC_SLAVE, gsi - 8);
        add_irqchip_route(t, gsi, KVM_IRQCHIP_IOAPIC, gsi);
    }
}

static int commit_routes_locked(struct irq_router *r)
{
    if (r->vmfd < 0)
        return 0;
    size_t max = 2 * LAYOUT_IOAPIC_PINS + IRQ_MAX_ROUTES;
    struct kvm_irq_routing *t =
        calloc(1, sizeof(*t) + max * sizeof(struct kvm_irq_routing_entry));
    if (!t)
        return -1;
    add_default_routes(t);
    for (unsigned i = 0; i < r->next_gsi - r->first_msi_gsi; i++) {
        struct msi_vector *v = r->vectors[i];
        if (!v || !v->address)
            continue;
        struct kvm_irq_routing_entry *e = &t->entries[t->nr++];
        memset(e, 0, sizeof(*e));
        e->gsi = v->gsi;
        e->type = KVM_IRQ_ROUTING_MSI;
        e->u.msi.address_lo = (uint32_t)v->address;
        e->u.msi.address_hi = (uint32_t)(v->address >> 32);
        e->u.msi.data = v->data;
    }
    int ret = ioctl(r->vmfd, KVM_SET_GSI_ROUTING, t);
    if (ret < 0)
        report_warning("KVM_SET_GSI_ROUTING: %s", strerror(errno));
    free(t);
    return ret < 0 ? -1 : 0;
}

int msi_vector_init(struct irq_router *r, struct msi_vector *v)
{
    memset(v, 0, sizeof(*v));
    v->router = r;
    v->eventfd = -1;
    pthread_mutex_lock(&r->lock);
    if (r->next_gsi - r->first_msi_gsi >= IRQ_MAX_ROUTES) {
        pthread_mutex_unlock(&r->lock);
        report_error("out of MSI routes");
        return -1;
    }
    v->gsi = r->next_gsi++;
    r->vectors[v->gsi - r->first_msi_gsi] = v;
    pthread_mutex_unlock(&r->lock);
    if (r->vmfd < 0)
        return 0;
    v->eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct kvm_irqfd irqfd = {.fd = (uint32_t)v->eventfd, .gsi = v->gsi};
    if (v->eventfd < 0 || ioctl(r->vmfd, KVM_IRQFD, &irqfd) < 0) {
        report_error("cannot set up an irqfd: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void msi_vector_destroy(struct msi_vector *v)
{
    struct irq_router *r = v->router;
    if (!r)
        return;
    if (v->eventfd >= 0) {
        struct kvm_irqfd irqfd = {.fd = (uint32_t)v->eventfd,
                                  .gsi = v->gsi,
                                  .flags = KVM_IRQFD_FLAG_DEASSIGN};
        ioctl(r->vmfd, KVM_IRQFD, &irqfd);
        close(v->eventfd);
    }
    pthread_mutex_lock(&r->lock);
    r->vectors[v->gsi - r->first_msi_gsi] = NULL;
    pthread_mutex_unlock(&r->lock);
    v->router = NULL;
}

int msi_vector_update(struct msi_vector *v, uint64_t address, uint32_t data)
{
    struct irq_router *r = v->router;
    int ret = 0;
    pthread_mutex_lock(&r->lock);
    if (v->address != address || v->data != data || !v->routed) {
        v->address = address;
        v->data = data;
        ret = commit_routes_locked(r);
        v->routed = ret == 0 && address != 0;
    }
    pthread_mutex_unlock(&r->lock);
    return ret;
}

void msi_vector_fire(struct msi_vector *v)
{
    if (!v->routed)
        return;
    __atomic_fetch_add(&v->fired, 1, __ATOMIC_RELAXED);
    if (v->eventfd >= 0) {
        uint64_t one = 1;
        ssize_t n = write(v->eventfd, &one, sizeof(one));
        (void)n; /* EAGAIN: already pending, the interrupt coalesces */
    }
}

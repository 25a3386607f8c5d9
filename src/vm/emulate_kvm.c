/* struct emu_vcpu_ops over a real KVM vCPU file descriptor. */
#include <cpuid.h>
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util.h"
#include "vm/emulate.h"
#include "vm/emulate_native.h"

static int vcpu_fd(void *vcpu)
{
    return ((struct emu_kvm_vcpu *)vcpu)->vcpu_fd;
}

/* The kvm_run whose synced state stands in for the register ioctls, or
 * NULL (see emu_kvm_sync_regs()). */
static struct kvm_run *synced(void *vcpu)
{
    return ((struct emu_kvm_vcpu *)vcpu)->sync;
}

static int get_regs(void *v, struct kvm_regs *r)
{
    struct kvm_run *run = synced(v);
    if (run) {
        *r = run->s.regs.regs;
        return 0;
    }
    return ioctl(vcpu_fd(v), KVM_GET_REGS, r) < 0 ? -1 : 0;
}

static int set_regs(void *v, const struct kvm_regs *r)
{
    struct kvm_run *run = synced(v);
    if (run) {
        run->s.regs.regs = *r;
        run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
        return 0;
    }
    return ioctl(vcpu_fd(v), KVM_SET_REGS, r) < 0 ? -1 : 0;
}

static int get_sregs(void *v, struct kvm_sregs *s)
{
    struct kvm_run *run = synced(v);
    if (run) {
        *s = run->s.regs.sregs;
        return 0;
    }
    return ioctl(vcpu_fd(v), KVM_GET_SREGS, s) < 0 ? -1 : 0;
}

static int set_sregs(void *v, const struct kvm_sregs *s)
{
    struct kvm_run *run = synced(v);
    if (run) {
        run->s.regs.sregs = *s;
        run->kvm_dirty_regs |= KVM_SYNC_X86_SREGS;
        return 0;
    }
    return ioctl(vcpu_fd(v), KVM_SET_SREGS, s) < 0 ? -1 : 0;
}

static size_t xsave_size(void *v)
{
    return ((struct emu_kvm_vcpu *)v)->xsave_size;
}

static int get_xsave(void *v, void *buf, size_t len)
{
    /* KVM_GET_XSAVE2 fills the whole size KVM_CAP_XSAVE2 reported. */
    unsigned long req = len > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2
                                                       : KVM_GET_XSAVE;
    return ioctl(vcpu_fd(v), req, buf) < 0 ? -1 : 0;
}

static int set_xsave(void *v, const void *buf, size_t len)
{
    (void)len; /* KVM reads the size it reported */
    return ioctl(vcpu_fd(v), KVM_SET_XSAVE, buf) < 0 ? -1 : 0;
}

static int get_xcrs(void *v, struct kvm_xcrs *x)
{
    return ioctl(vcpu_fd(v), KVM_GET_XCRS, x) < 0 ? -1 : 0;
}

static int set_xcrs(void *v, const struct kvm_xcrs *x)
{
    return ioctl(vcpu_fd(v), KVM_SET_XCRS, x) < 0 ? -1 : 0;
}

static int get_msr(void *v, uint32_t index, uint64_t *value)
{
    /* struct kvm_msrs ends in a flexible array: room for one entry */
    uint64_t buf[(sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)) /
                 sizeof(uint64_t)] = {0};
    struct kvm_msrs *m = (struct kvm_msrs *)buf;
    m->nmsrs = 1;
    m->entries[0].index = index;
    if (ioctl(vcpu_fd(v), KVM_GET_MSRS, m) != 1)
        return -1; /* returns the number of MSRs read */
    *value = m->entries[0].data;
    return 0;
}

static int get_events(void *v, struct kvm_vcpu_events *ev)
{
    struct kvm_run *run = synced(v);
    if (run) {
        *ev = run->s.regs.events;
        return 0;
    }
    return ioctl(vcpu_fd(v), KVM_GET_VCPU_EVENTS, ev) < 0 ? -1 : 0;
}

static int set_events(void *v, const struct kvm_vcpu_events *ev)
{
    struct kvm_run *run = synced(v);
    if (run) {
        run->s.regs.events = *ev;
        run->kvm_dirty_regs |= KVM_SYNC_X86_EVENTS;
        return 0;
    }
    return ioctl(vcpu_fd(v), KVM_SET_VCPU_EVENTS, ev) < 0 ? -1 : 0;
}

/* KVM's XSAVE image uses the host's component layout, so leaf 0xD comes
 * from the host CPU; so does the physical-address width. */
static void host_cpuid(void *v, uint32_t leaf, uint32_t sub, uint32_t out[4])
{
    (void)v;
    memset(out, 0, 4 * sizeof(uint32_t));
    __cpuid_count(leaf, sub, out[0], out[1], out[2], out[3]);
}

static struct emu_native *native(void *v)
{
    return ((struct emu_kvm_vcpu *)v)->native;
}

const struct emu_vcpu_ops emu_kvm_ops = {
    .get_regs = get_regs,
    .set_regs = set_regs,
    .get_sregs = get_sregs,
    .set_sregs = set_sregs,
    .xsave_size = xsave_size,
    .get_xsave = get_xsave,
    .set_xsave = set_xsave,
    .get_xcrs = get_xcrs,
    .set_xcrs = set_xcrs,
    .get_msr = get_msr,
    .get_events = get_events,
    .set_events = set_events,
    .cpuid = host_cpuid,
    .native = native,
};

int emu_kvm_init(struct emu_kvm_vcpu *v, int vm_fd, int fd)
{
    v->vcpu_fd = fd;
    v->xsave_size = sizeof(struct kvm_xsave);
    int n = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
    if (n > (int)sizeof(struct kvm_xsave))
        v->xsave_size = (size_t)n;
    if (ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) <= 0) {
        report_error("KVM lacks KVM_CAP_XSAVE, needed to complete XSAVE");
        return -1;
    }
    v->native = emu_native_create();
    return v->native ? 0 : -1;
}

#define SYNC_FIELDS \
    (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS)

int emu_kvm_sync_regs(struct emu_kvm_vcpu *v, int vm_fd, struct kvm_run *run)
{
    int fields = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
    if (fields < 0 || (fields & SYNC_FIELDS) != SYNC_FIELDS)
        return -1;
    run->kvm_valid_regs = SYNC_FIELDS;
    v->sync = run;
    return 0;
}

void emu_kvm_fini(struct emu_kvm_vcpu *v)
{
    emu_native_destroy(v->native);
    v->native = NULL;
}

int emu_kvm_enable(int vm_fd)
{
    struct kvm_enable_cap cap;
    memset(&cap, 0, sizeof(cap));
    cap.cap = KVM_CAP_EXIT_ON_EMULATION_FAILURE;
    cap.args[0] = 1;
    return ioctl(vm_fd, KVM_ENABLE_CAP, &cap) < 0 ? -1 : 0;
}

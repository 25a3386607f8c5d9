#include "vm/machine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "platform/acpi.h"
#include "platform/e820.h"
#include "platform/layout.h"
#include "platform/mptable.h"
#include "platform/smbios.h"
#include "platform/table_loader.h"
#include "util.h"
#include "vm/cpuid.h"

/* ---- KVM ------------------------------------------------------------ */

static int kvm_check(int fd, long cap)
{
    int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

static int open_kvm(struct vm *vm)
{
    vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0) {
        report_error("cannot open /dev/kvm: %s", strerror(errno));
        return -1;
    }
    if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        report_error("/dev/kvm speaks an unsupported API version");
        return -1;
    }
    static const struct {
        long cap;
        const char *name;
    } needed[] = {
        {KVM_CAP_IRQCHIP, "in-kernel irqchip"},
        {KVM_CAP_PIT2, "in-kernel PIT"},
        {KVM_CAP_USER_MEMORY, "user memory"},
        {KVM_CAP_EXT_CPUID, "CPUID"},
        {KVM_CAP_IRQ_ROUTING, "IRQ routing"},
        {KVM_CAP_IRQFD, "irqfd"},
        {KVM_CAP_IOEVENTFD, "ioeventfd"},
        {KVM_CAP_IMMEDIATE_EXIT, "immediate exit"},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(needed); i++) {
        if (!kvm_check(vm->kvm_fd, needed[i].cap)) {
            report_error("KVM lacks %s support", needed[i].name);
            return -1;
        }
    }
    int sz = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (sz <= 0) {
        report_error("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
        return -1;
    }
    vm->run_size = (size_t)sz;
    vm->host_is_pvm = cpuid_host_is_pvm();
    vm->supported_cpuid = cpuid_get_supported(vm->kvm_fd);
    return vm->supported_cpuid ? 0 : -1;
}

static int create_kvm_vm(struct vm *vm)
{
    vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    if (vm->vm_fd < 0) {
        report_error("KVM_CREATE_VM: %s", strerror(errno));
        return -1;
    }
    if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)LAYOUT_KVM_TSS) < 0) {
        report_error("KVM_SET_TSS_ADDR: %s", strerror(errno));
        return -1;
    }
    uint64_t idmap = LAYOUT_KVM_IDENTITY_MAP;
    if (kvm_check(vm->vm_fd, KVM_CAP_SET_IDENTITY_MAP_ADDR) &&
        ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) {
        report_error("KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
        return -1;
    }
    if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
        report_error("KVM_CREATE_IRQCHIP: %s", strerror(errno));
        return -1;
    }
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
        report_error("KVM_CREATE_PIT2: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- memory ------------------------------------------------------------ */

static int add_memslot(struct vm *vm, uint64_t gpa, uint64_t size,
                       uint8_t *host, bool readonly)
{
    struct kvm_userspace_memory_region r = {
        .slot = vm->next_slot++,
        .flags = readonly ? KVM_MEM_READONLY : 0,
        .guest_phys_addr = gpa,
        .memory_size = size,
        .userspace_addr = (uintptr_t)host,
    };
    if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
        report_error("cannot map guest memory at 0x%llx: %s",
                     (unsigned long long)gpa, strerror(errno));
        return -1;
    }
    if (gmem_add(&vm->mem, gpa, size, host, readonly)) {
        report_error("guest memory layout conflict at 0x%llx",
                     (unsigned long long)gpa);
        return -1;
    }
    return 0;
}

static int setup_ram(struct vm *vm)
{
    vm->ram_size = vm->cfg->mem_bytes;
    vm->ram = mmap(NULL, vm->ram_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (vm->ram == MAP_FAILED) {
        vm->ram = NULL;
        report_error("cannot allocate %llu MiB of guest RAM: %s",
                     (unsigned long long)(vm->ram_size / MiB), strerror(errno));
        return -1;
    }
    madvise(vm->ram, vm->ram_size, MADV_HUGEPAGE);
    uint64_t low = layout_lowmem(vm->ram_size);
    uint64_t high = layout_highmem(vm->ram_size);
    if (add_memslot(vm, 0, low, vm->ram, false))
        return -1;
    if (high && add_memslot(vm, LAYOUT_MEM_ABOVE_4G, high, vm->ram + low, false))
        return -1;
    return 0;
}

/* ---- devices ------------------------------------------------------------ */

static void com1_output(void *opaque, const void *buf, size_t len)
{
    console_write(opaque, buf, len);
}

static int add_pio(struct vm *vm, uint64_t port, uint64_t len,
                   const struct bus_ops *ops, void *dev, const char *name)
{
    if (bus_add(&vm->pio, port, len, ops, dev, name)) {
        report_error("I/O port conflict registering %s at 0x%llx", name,
                     (unsigned long long)port);
        return -1;
    }
    return 0;
}

static int setup_devices(struct vm *vm)
{
    bool direct = vm->boot->kernel.data != NULL;
    if (pci_host_init(&vm->pci, &vm->pio, &vm->mmio, vm->vm_fd) ||
        pci_host_register_ports(&vm->pci) ||
        piix_init(&vm->piix, &vm->pci, direct))
        return -1;
    vm->com1.write = com1_output;
    vm->com1.opaque = vm->console;
    return add_pio(vm, LAYOUT_PORT_COM1, LAYOUT_PORT_COM_LEN, &early_uart_ops,
                   &vm->com1, "com1");
}

/* ---- direct boot: tables at fixed addresses ---------------------------- */

static int place_acpi(struct vm *vm, uint64_t *rsdp_addr)
{
    struct table_loader l;
    loader_init(&l);
    int ret = -1;
    if (acpi_build(&vm->info, &l) || l.blob_count != 2) {
        report_error("cannot build the ACPI tables");
        goto out;
    }
    uint64_t addr[2];
    addr[0] = LAYOUT_ACPI_START;
    addr[1] = ALIGN_UP(LAYOUT_ACPI_START + l.blobs[0].len,
                       (uint64_t)l.blobs[1].align);
    if (addr[1] + l.blobs[1].len > LAYOUT_ACPI_START + LAYOUT_ACPI_SIZE) {
        report_error("ACPI tables too large for their area");
        goto out;
    }
    uint8_t *img[2];
    if (loader_link(&l, addr, img)) {
        report_error("cannot link the ACPI tables");
        goto out;
    }
    ret = 0;
    for (unsigned i = 0; i < 2; i++) {
        if (gmem_write(&vm->mem, addr[i], img[i], l.blobs[i].len))
            ret = -1;
        free(img[i]);
    }
    *rsdp_addr = addr[0];
out:
    loader_free(&l);
    return ret;
}

static int place_smbios(struct vm *vm)
{
    struct smbios_tables t;
    if (smbios_build(&vm->info, true, &t)) {
        report_error("cannot build the SMBIOS tables");
        return -1;
    }
    uint64_t table = LAYOUT_SMBIOS_START + 0x20;
    int ret = -1;
    if (table + t.len <= LAYOUT_SMBIOS_START + LAYOUT_SMBIOS_SIZE) {
        uint8_t anchor[SMBIOS_ANCHOR_LEN];
        smbios_finish_anchor(&t, (uint32_t)table, anchor);
        ret = gmem_write(&vm->mem, LAYOUT_SMBIOS_START, anchor, sizeof(anchor)) |
              gmem_write(&vm->mem, table, t.tables, t.len);
    }
    if (ret)
        report_error("cannot place the SMBIOS tables");
    smbios_free(&t);
    return ret;
}

static int place_mptable(struct vm *vm)
{
    uint8_t *buf = gpa_ptr(&vm->mem, LAYOUT_MPTABLE_START, LAYOUT_MPTABLE_SIZE,
                           GMEM_WRITE);
    if (!buf || !mptable_build(&vm->info, (uint32_t)LAYOUT_MPTABLE_START, buf,
                               LAYOUT_MPTABLE_SIZE)) {
        report_error("cannot build the MP table");
        return -1;
    }
    return 0;
}

static int setup_direct_boot(struct vm *vm)
{
    const struct boot_inputs *b = vm->boot;
    uint64_t rsdp = 0;
    if (place_acpi(vm, &rsdp) || place_smbios(vm) || place_mptable(vm))
        return -1;
    struct e820_entry e820[E820_MAX_ENTRIES];
    struct kernel_boot_info info = {
        .cmdline = vm->cfg->append,
        .initrd = b->initrd,
        .e820 = e820,
        .e820_count = e820_build(&vm->info, E820_DIRECT, e820, E820_MAX_ENTRIES),
        .rsdp_addr = rsdp,
    };
    struct kernel_entry entry;
    if (kernel_load(&b->kernel, &b->plan, &info, &vm->mem, &entry)) {
        report_error("cannot load the kernel into guest memory");
        return -1;
    }
    return vcpu_set_entry_state(&vm->vcpus[0], &entry);
}

/* ---- build / run / tear down -------------------------------------------- */

static void fill_machine_info(struct vm *vm)
{
    struct machine_info *mi = &vm->info;
    memset(mi, 0, sizeof(*mi));
    mi->ncpus = vm->ncpus;
    mi->ram_size = vm->cfg->mem_bytes;
    mi->firmware = vm->boot->kernel.data == NULL;
    mi->name = vm->cfg->name;
    /* A stable UUID per name (FNV-1a), random-looking but reproducible;
     * version 4 / variant 1 bits as RFC 4122 wants. */
    const char *seed = vm->cfg->name ? vm->cfg->name : "kvmpc";
    uint64_t h = 1469598103934665603ULL;
    for (unsigned i = 0; i < 16; i++) {
        for (const char *p = seed; *p; p++)
            h = (h ^ (uint8_t)*p) * 1099511628211ULL;
        h = (h ^ i) * 1099511628211ULL;
        mi->uuid[i] = (uint8_t)(h >> 32);
    }
    mi->uuid[6] = (uint8_t)((mi->uuid[6] & 0x0F) | 0x40);
    mi->uuid[8] = (uint8_t)((mi->uuid[8] & 0x3F) | 0x80);
}

static int create_vcpus(struct vm *vm)
{
    vm->vcpus = calloc(vm->ncpus, sizeof(*vm->vcpus));
    if (!vm->vcpus)
        return -1;
    for (unsigned i = 0; i < vm->ncpus; i++)
        vm->vcpus[i].fd = -1;
    for (unsigned i = 0; i < vm->ncpus; i++) {
        if (vcpu_create(vm, i, &vm->vcpus[i]) ||
            (vm->boot->kernel.data && vcpu_set_platform_state(&vm->vcpus[i])))
            return -1;
    }
    return 0;
}

int vm_create(struct vm *vm, const struct vm_config *cfg,
              const struct boot_inputs *boot, struct console *console,
              struct evloop *loop)
{
    memset(vm, 0, sizeof(*vm));
    vm->cfg = cfg;
    vm->boot = boot;
    vm->console = console;
    vm->loop = loop;
    vm->kvm_fd = vm->vm_fd = -1;
    vm->ncpus = cfg->ncpus;
    fill_machine_info(vm);
    if (bus_init(&vm->pio) || bus_init(&vm->mmio))
        return -1;
    if (open_kvm(vm) || create_kvm_vm(vm) || setup_ram(vm) ||
        irq_router_init(&vm->irq, vm->vm_fd) || setup_devices(vm) ||
        create_vcpus(vm))
        return -1;
    if (boot->kernel.data)
        return setup_direct_boot(vm);
    report_error("firmware boot is not available yet");
    return -1;
}

void vm_request_stop(struct vm *vm, enum vm_stop_reason why)
{
    int expected = VM_RUNNING;
    if (!__atomic_compare_exchange_n(&vm->stop_reason, &expected, (int)why,
                                     false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return;
    for (unsigned i = 0; i < vm->ncpus; i++)
        vcpu_kick(&vm->vcpus[i]);
    evloop_stop(vm->loop);
}

enum vm_stop_reason vm_stop_reason(struct vm *vm)
{
    return (enum vm_stop_reason)__atomic_load_n(&vm->stop_reason,
                                                __ATOMIC_ACQUIRE);
}

enum vm_stop_reason vm_run(struct vm *vm)
{
    for (unsigned i = 0; i < vm->ncpus; i++) {
        if (vcpu_start(&vm->vcpus[i])) {
            vm_request_stop(vm, VM_STOP_HOST_ERROR);
            break;
        }
    }
    if (evloop_run(vm->loop))
        vm_request_stop(vm, VM_STOP_HOST_ERROR);
    for (unsigned i = 0; i < vm->ncpus; i++)
        vcpu_kick(&vm->vcpus[i]);
    for (unsigned i = 0; i < vm->ncpus; i++)
        vcpu_join(&vm->vcpus[i]);
    return vm_stop_reason(vm);
}

void vm_destroy(struct vm *vm)
{
    if (vm->vcpus) {
        for (unsigned i = 0; i < vm->ncpus; i++)
            vcpu_destroy(&vm->vcpus[i]);
        free(vm->vcpus);
    }
    pci_host_destroy(&vm->pci);
    irq_router_destroy(&vm->irq);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    if (vm->kvm_fd >= 0)
        close(vm->kvm_fd);
    if (vm->ram)
        munmap(vm->ram, vm->ram_size);
    free(vm->supported_cpuid);
    bus_destroy(&vm->pio);
    bus_destroy(&vm->mmio);
    memset(vm, 0, sizeof(*vm));
    vm->vm_fd = vm->kvm_fd = -1;
}

static const char *exit_reason_name(unsigned r)
{
    static const char *names[] = {
        [KVM_EXIT_UNKNOWN] = "unknown", [KVM_EXIT_IO] = "io",
        [KVM_EXIT_HLT] = "hlt", [KVM_EXIT_MMIO] = "mmio",
        [KVM_EXIT_SHUTDOWN] = "shutdown", [KVM_EXIT_FAIL_ENTRY] = "fail_entry",
        [KVM_EXIT_INTR] = "intr", [KVM_EXIT_INTERNAL_ERROR] = "internal_error",
        [KVM_EXIT_SYSTEM_EVENT] = "system_event",
    };
    return r < ARRAY_SIZE(names) && names[r] ? names[r] : NULL;
}

uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Guest RAM pages the host actually backs (touched by the guest or us). */
static uint64_t guest_resident_bytes(struct vm *vm)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t pages = vm->ram_size / (uint64_t)page;
    unsigned char *vec = malloc(pages);
    uint64_t n = 0;
    if (vec && mincore(vm->ram, vm->ram_size, vec) == 0)
        for (size_t i = 0; i < pages; i++)
            n += vec[i] & 1;
    free(vec);
    return n * (uint64_t)page;
}

static void print_resource_stats(struct vm *vm, uint64_t t0_ns)
{
    if (vm->first_run_ns && t0_ns)
        fprintf(stderr, "  startup: %.3f ms to the first KVM_RUN\n",
                (double)(vm->first_run_ns - t0_ns) / 1e6);
    uint64_t rss = rss_bytes(), guest = guest_resident_bytes(vm);
    fprintf(stderr, "  memory: RSS %llu KiB, guest RAM resident %llu KiB, "
                    "VMM overhead %llu KiB\n",
            (unsigned long long)(rss / 1024), (unsigned long long)(guest / 1024),
            (unsigned long long)((rss > guest ? rss - guest : 0) / 1024));
}

void vm_print_stats(struct vm *vm, uint64_t t0_ns)
{
    uint64_t total[VCPU_EXIT_REASONS] = {0}, all = 0, pio_un = 0, mmio_un = 0;
    for (unsigned i = 0; i < vm->ncpus; i++) {
        for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++)
            total[r] += vm->vcpus[i].stats.exits[r];
        pio_un += vm->vcpus[i].stats.pio_unclaimed;
        mmio_un += vm->vcpus[i].stats.mmio_unclaimed;
    }
    fprintf(stderr, "kvmpc: exits to userspace by reason:\n");
    for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++) {
        if (!total[r])
            continue;
        all += total[r];
        const char *n = exit_reason_name(r);
        if (n)
            fprintf(stderr, "  %-16s %llu\n", n, (unsigned long long)total[r]);
        else
            fprintf(stderr, "  reason-%-9u %llu\n", r,
                    (unsigned long long)total[r]);
    }
    fprintf(stderr, "  %-16s %llu\n  unclaimed pio %llu, mmio %llu\n", "total",
            (unsigned long long)all, (unsigned long long)pio_un,
            (unsigned long long)mmio_un);
    print_resource_stats(vm, t0_ns);
}

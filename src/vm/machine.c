#include "vm/machine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "boot/firmware.h"
#include "platform/acpi.h"
#include "platform/e820.h"
#include "platform/layout.h"
#include "platform/mptable.h"
#include "platform/smbios.h"
#include "platform/table_loader.h"
#include "util.h"
#include "vm/cpuid.h"
#include "vm/pvm_quirks.h"

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
    /* Emulation failures come to userspace with the instruction bytes and
     * nothing queued, at every CPL; without the capability they still
     * come at CPL 0. */
    emu_kvm_enable(vm->vm_fd);
    /* Guest user mode there needs help with SYSCALL; without it (warned)
     * everything but system calls still works. */
    if (vm->host_is_pvm)
        (void)pvm_quirks_vm_init(vm->vm_fd);
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
    struct vm *vm = opaque;
    console_write(vm->env->console, buf, len);
}

static void com1_rx_ready(void *opaque)
{
    struct vm *vm = opaque;
    console_resume_async(vm->env->console);
}

static size_t com1_input(void *opaque, const uint8_t *buf, size_t len)
{
    struct vm *vm = opaque;
    return serial_receive(&vm->com1, buf, len);
}

static void request_reset(void *opaque)
{
    vm_request_stop(opaque, VM_STOP_RESET);
}

static void request_poweroff(void *opaque)
{
    vm_request_stop(opaque, VM_STOP_POWEROFF);
}

static void rtc_timer_event(void *opaque, uint32_t events)
{
    struct vm *vm = opaque;
    rtc_timer_expired(&vm->rtc);
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

static int setup_chipset(struct vm *vm)
{
    bool direct = vm->boot->kernel.data != NULL;
    if (pci_host_init(&vm->pci, &vm->pio, &vm->mmio, vm->vm_fd) ||
        pci_host_register_ports(&vm->pci) ||
        piix_init(&vm->piix, &vm->pci, direct))
        return -1;
    struct sysctl_config sc = {.reset_request = request_reset, .opaque = vm};
    if (sysctl_init(&vm->sysctl, &sc))
        return -1;
    /* 0xCF9 shares the PCI address dword; the host forwards byte accesses. */
    vm->pci.reset_control_ops = &sysctl_reset_control_ops;
    vm->pci.reset_control_opaque = &vm->sysctl;
    return add_pio(vm, LAYOUT_PORT_A20, 1, &sysctl_port92_ops, &vm->sysctl,
                   "port92") ||
           add_pio(vm, LAYOUT_PORT_POST, 1, &sysctl_post_ops, &vm->sysctl,
                   "post");
}

static int setup_serial(struct vm *vm)
{
    irq_line_init(&vm->irq_com1, vm->vm_fd, LAYOUT_GSI_COM1);
    struct serial_config c = {.write = com1_output,
                              .rx_ready = com1_rx_ready,
                              .opaque = vm};
    if (serial_init(&vm->com1, &c, &vm->irq_com1))
        return -1;
    return add_pio(vm, LAYOUT_PORT_COM1, LAYOUT_PORT_COM_LEN, &serial_bus_ops,
                   &vm->com1, "com1");
}

static int setup_rtc(struct vm *vm)
{
    irq_line_init(&vm->irq_rtc, vm->vm_fd, LAYOUT_GSI_RTC);
    struct rtc_config c = {.ram_size = vm->cfg->mem_bytes,
                           .ncpus = vm->ncpus};
    if (rtc_init(&vm->rtc, &c, &vm->irq_rtc) ||
        add_pio(vm, LAYOUT_PORT_RTC, LAYOUT_PORT_RTC_LEN, &rtc_bus_ops,
                &vm->rtc, "rtc"))
        return -1;
    if (evloop_add(vm->env->loop, rtc_timer_fd(&vm->rtc), EPOLLIN,
                   rtc_timer_event, vm)) {
        report_error("cannot watch the RTC timer");
        return -1;
    }
    vm->rtc_timer_registered = true;
    return 0;
}

static int setup_legacy_devices(struct vm *vm)
{
    irq_line_init(&vm->irq_kbd, vm->vm_fd, LAYOUT_GSI_KEYBOARD);
    irq_line_init(&vm->irq_sci, vm->vm_fd, LAYOUT_GSI_SCI);
    struct i8042_config kc = {.reset_request = request_reset, .opaque = vm};
    struct acpi_pm_config pc = {.poweroff_request = request_poweroff,
                                .opaque = vm};
    if (i8042_init(&vm->kbc, &kc, &vm->irq_kbd) ||
        acpi_pm_init(&vm->pm, &pc, &vm->irq_sci) ||
        fw_cfg_init(&vm->fw_cfg, &vm->mem))
        return -1;
    return add_pio(vm, LAYOUT_PORT_I8042_DATA, 1, &i8042_data_ops, &vm->kbc,
                   "i8042-data") ||
           add_pio(vm, LAYOUT_PORT_I8042_CMD, 1, &i8042_cmd_ops, &vm->kbc,
                   "i8042-cmd") ||
           add_pio(vm, LAYOUT_PORT_PM_BASE, LAYOUT_PORT_PM_LEN,
                   &acpi_pm_bus_ops, &vm->pm, "acpi-pm") ||
           add_pio(vm, LAYOUT_PORT_FW_CFG, LAYOUT_PORT_FW_CFG_LEN,
                   &fw_cfg_bus_ops, &vm->fw_cfg, "fw_cfg");
}

/* ---- virtio disks ------------------------------------------------------ */

static unsigned disk_slot(unsigned i)
{
    return LAYOUT_PCI_FIRST_DEVICE_SLOT + i;
}

static int ioeventfd_hook(void *opaque, const struct virtio_pci_ioeventfd *io,
                          bool assign)
{
    struct vm *vm = opaque;
    struct kvm_ioeventfd k = {
        .datamatch = io->data,
        .addr = io->addr,
        .len = io->len,
        .fd = io->fd,
        .flags = (io->pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
                 (io->datamatch ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
                 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
    };
    return ioctl(vm->vm_fd, KVM_IOEVENTFD, &k) < 0 ? -1 : 0;
}

static void disk_completions(void *opaque, uint32_t events)
{
    virtio_blk_handle_completions(opaque);
}

static int watch_disk(struct vm *vm, struct vm_disk *d)
{
    for (unsigned q = 0; q < virtio_pci_num_notifiers(&d->vp); q++) {
        struct virtio_pci_notifier *n = virtio_pci_notifier(&d->vp, q);
        if (evloop_add(vm->env->loop, n->fd, EPOLLIN,
                       virtio_pci_notifier_event, n))
            return -1;
    }
    d->watched = true;
    return evloop_add(vm->env->loop, virtio_blk_event_fd(d->blk), EPOLLIN,
                      disk_completions, d->blk);
}

static int setup_disk(struct vm *vm, unsigned i)
{
    struct vm_disk *d = &vm->disks[i];
    struct virtio_blk_opts o = {.bd = vm->boot->disks[i]};
    if (virtio_blk_new(&vm->mem, &o, &d->blk) ||
        virtio_pci_init(&d->vp, virtio_blk_dev(d->blk), &vm->irq,
                        ioeventfd_hook, vm))
        return -1;
    d->vp_ready = true;
    if (pci_host_add(&vm->pci, &d->vp.pci,
                     (uint8_t)LAYOUT_PCI_DEVFN(disk_slot(i), 0))) {
        report_error("no PCI slot left for disk %u", i);
        return -1;
    }
    d->plugged = true;
    if (watch_disk(vm, d)) {
        report_error("cannot watch the notifications of disk %u", i);
        return -1;
    }
    return 0;
}

static int setup_disks(struct vm *vm)
{
    if (vm->boot->ndisks > LAYOUT_PCI_SLOTS - LAYOUT_PCI_FIRST_DEVICE_SLOT) {
        report_error("too many disks for the PCI bus");
        return -1;
    }
    for (unsigned i = 0; i < vm->boot->ndisks; i++) {
        vm->ndisks = i + 1;
        if (setup_disk(vm, i))
            return -1;
        vm->info.intx[vm->info.intx_count++] =
            (struct pci_intx_user){.slot = (uint8_t)disk_slot(i), .pin = 1};
    }
    return 0;
}

/* After the I/O thread stopped: finish requests in flight (they may still
 * complete into guest memory and signal), then drop the functions. The
 * block devices stay open for a restart; main closes them. */
static void destroy_disks(struct vm *vm)
{
    for (unsigned i = 0; i < vm->ndisks; i++) {
        struct vm_disk *d = &vm->disks[i];
        if (d->watched) {
            for (unsigned q = 0; q < virtio_pci_num_notifiers(&d->vp); q++)
                evloop_del(vm->env->loop, virtio_pci_notifier(&d->vp, q)->fd);
            evloop_del(vm->env->loop, virtio_blk_event_fd(d->blk));
        }
        blk_drain(vm->boot->disks[i]);
        if (d->blk)
            virtio_blk_handle_completions(d->blk);
        if (d->vp_ready)
            virtio_pci_destroy(&d->vp);
        if (d->blk)
            virtio_blk_free(d->blk);
    }
    vm->ndisks = 0;
}

/* SeaBIOS boot order: one OpenFirmware path per disk, command-line order. */
static int fw_cfg_add_bootorder(struct vm *vm)
{
    char buf[CONFIG_MAX_DISKS * 40 + 1] = "";
    size_t len = 0;
    for (unsigned i = 0; i < vm->ndisks; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                                "/pci@i0cf8/scsi@%x/disk@0,0\n", disk_slot(i));
    return fw_cfg_add_file(&vm->fw_cfg, "bootorder", buf, len + 1) < 0 ? -1
                                                                        : 0;
}

/* In direct boot no firmware programs the ELCR: mark the level ISA IRQs
 * (SCI, PCI INTx) as the tables describe them. */
static int set_level_irqs_in_elcr(struct vm *vm)
{
    static const uint8_t level_irqs[] = LAYOUT_LEVEL_IRQS;
    for (unsigned chip = KVM_IRQCHIP_PIC_MASTER; chip <= KVM_IRQCHIP_PIC_SLAVE;
         chip++) {
        struct kvm_irqchip ic = {.chip_id = chip};
        if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &ic) < 0)
            return -1;
        for (unsigned i = 0; i < ARRAY_SIZE(level_irqs); i++)
            if (level_irqs[i] / 8 == chip)
                ic.chip.pic.elcr |= (uint8_t)(1u << (level_irqs[i] % 8));
        if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &ic) < 0)
            return -1;
    }
    return 0;
}

/* The debug port exists only when asked for: firmware stops writing its
 * log when the port reads back as absent, which saves thousands of exits.
 * When present, KVM batches its writes in the coalesced ring. */
static int setup_debugcon(struct vm *vm)
{
    if (vm->env->debugcon_fd < 0)
        return 0;
    debugcon_init(&vm->debugcon, vm->env->debugcon_fd);
    if (add_pio(vm, LAYOUT_PORT_DEBUGCON, 1, &debugcon_bus_ops, &vm->debugcon,
                "debugcon"))
        return -1;
    struct kvm_coalesced_mmio_zone z = {.addr = LAYOUT_PORT_DEBUGCON,
                                        .size = 1, .pio = 1};
    if (kvm_check(vm->vm_fd, KVM_CAP_COALESCED_PIO) &&
        ioctl(vm->vm_fd, KVM_REGISTER_COALESCED_MMIO, &z) < 0)
        report_warning("debug port writes not batched: %s", strerror(errno));
    return 0;
}

static int setup_devices(struct vm *vm)
{
    if (setup_chipset(vm) || setup_serial(vm) || setup_rtc(vm) ||
        setup_legacy_devices(vm) || setup_debugcon(vm))
        return -1;
    vm->devices_up = true;
    if (setup_disks(vm))
        return -1;
    if (vm->boot->kernel.data && set_level_irqs_in_elcr(vm)) {
        report_error("cannot program the PIC's edge/level register");
        return -1;
    }
    return 0;
}

static void destroy_devices(struct vm *vm)
{
    destroy_disks(vm);
    if (vm->rtc_timer_registered)
        evloop_del(vm->env->loop, rtc_timer_fd(&vm->rtc));
    fw_cfg_destroy(&vm->fw_cfg);
    acpi_pm_destroy(&vm->pm);
    i8042_destroy(&vm->kbc);
    rtc_destroy(&vm->rtc);
    serial_destroy(&vm->com1);
    sysctl_destroy(&vm->sysctl);
    pci_host_destroy(&vm->pci);
}

/* ---- direct boot: tables at fixed addresses ---------------------------- */

static int place_acpi(struct vm *vm, uint64_t *rsdp_addr)
{
    struct table_loader l;
    loader_init(&l);
    int ret = -1;
    uint64_t addr[LOADER_MAX_BLOBS];
    uint8_t *img[LOADER_MAX_BLOBS];
    if (acpi_build(&vm->info, &l) || acpi_direct_addresses(&l, addr) ||
        loader_link(&l, addr, img)) {
        report_error("cannot build the ACPI tables");
        goto out;
    }
    ret = 0;
    for (unsigned i = 0; i < l.blob_count; i++) {
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

/* Items every boot path exposes (the guest may read fw_cfg itself). */
static int fill_common_fw_cfg(struct vm *vm)
{
    struct fw_cfg *f = &vm->fw_cfg;
    if (fw_cfg_add_u16(f, FW_CFG_NB_CPUS, (uint16_t)vm->ncpus) |
        fw_cfg_add_u16(f, FW_CFG_MAX_CPUS, (uint16_t)vm->ncpus) |
        fw_cfg_add_u64(f, FW_CFG_RAM_SIZE, vm->cfg->mem_bytes) |
        fw_cfg_add_bytes(f, FW_CFG_UUID, vm->info.uuid, sizeof(vm->info.uuid))) {
        report_error("cannot fill the firmware configuration");
        return -1;
    }
    return 0;
}

static int setup_direct_boot(struct vm *vm)
{
    const struct boot_inputs *b = vm->boot;
    uint64_t rsdp = 0;
    if (fill_common_fw_cfg(vm))
        return -1;
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

/* ---- firmware boot --------------------------------------------------- */

#define FW_BOOT_FAIL_WAIT_MS 5000

static int map_firmware(struct vm *vm)
{
    const struct boot_inputs *b = vm->boot;
    vm->rom_size = b->firmware_len;
    vm->rom = mmap(NULL, vm->rom_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (vm->rom == MAP_FAILED) {
        vm->rom = NULL;
        report_error("cannot allocate the firmware ROM");
        return -1;
    }
    memcpy(vm->rom, b->firmware, b->firmware_len);
    if (add_memslot(vm, firmware_high_base(vm->rom_size), vm->rom_size,
                    vm->rom, true))
        return -1;
    if (firmware_install_low(&vm->mem, b->firmware, b->firmware_len)) {
        report_error("cannot copy the firmware into low memory");
        return -1;
    }
    return 0;
}

static int fw_cfg_add_acpi(struct vm *vm)
{
    struct table_loader l;
    loader_init(&l);
    uint8_t *cmds = NULL;
    size_t cmds_len = 0;
    int ret = acpi_build(&vm->info, &l) ||
              loader_serialize(&l, &cmds, &cmds_len);
    for (unsigned i = 0; !ret && i < l.blob_count; i++)
        ret = fw_cfg_add_file(&vm->fw_cfg, l.blobs[i].name, l.blobs[i].data,
                              l.blobs[i].len) < 0;
    if (!ret)
        ret = fw_cfg_add_file(&vm->fw_cfg, "etc/table-loader", cmds,
                              cmds_len) < 0;
    free(cmds);
    loader_free(&l);
    if (ret)
        report_error("cannot hand the ACPI tables to the firmware");
    return ret ? -1 : 0;
}

static int fw_cfg_add_smbios(struct vm *vm)
{
    struct smbios_tables t;
    if (smbios_build(&vm->info, false, &t)) {
        report_error("cannot build the SMBIOS tables");
        return -1;
    }
    int ret = fw_cfg_add_file(&vm->fw_cfg, SMBIOS_ANCHOR_FILE, t.anchor,
                              sizeof(t.anchor)) < 0 ||
              fw_cfg_add_file(&vm->fw_cfg, SMBIOS_TABLES_FILE, t.tables,
                              t.len) < 0;
    smbios_free(&t);
    return ret ? -1 : 0;
}

static int fw_cfg_add_e820(struct vm *vm)
{
    struct e820_entry e[E820_MAX_ENTRIES];
    unsigned n = e820_build(&vm->info, E820_FIRMWARE, e, E820_MAX_ENTRIES);
    uint8_t buf[E820_MAX_ENTRIES * 20];
    for (unsigned i = 0; i < n; i++) {
        put_le64(buf + 20 * i, e[i].addr);
        put_le64(buf + 20 * i + 8, e[i].size);
        put_le32(buf + 20 * i + 16, e[i].type);
    }
    return fw_cfg_add_file(&vm->fw_cfg, "etc/e820", buf, 20 * n) < 0 ? -1 : 0;
}

static int fw_cfg_add_le(struct vm *vm, const char *name, uint64_t v,
                         size_t size)
{
    uint8_t b[8];
    put_le64(b, v);
    return fw_cfg_add_file(&vm->fw_cfg, name, b, size) < 0 ? -1 : 0;
}

/* The items the firmware reads (platform contract §2.5/§2.6). */
static int fill_fw_cfg(struct vm *vm)
{
    struct fw_cfg *f = &vm->fw_cfg;
    if (fill_common_fw_cfg(vm))
        return -1;
    int ret = fw_cfg_add_u16(f, FW_CFG_BOOT_MENU, vm->cfg->boot_menu) |
              /* KVM's default routing: ISA IRQ0 is IOAPIC pin 0 */
              fw_cfg_add_u32(f, FW_CFG_IRQ0_OVERRIDE, 0);
    if (ret || fw_cfg_add_e820(vm) || fw_cfg_add_acpi(vm) ||
        fw_cfg_add_smbios(vm) ||
        fw_cfg_add_bootorder(vm) ||
        fw_cfg_add_le(vm, "etc/sercon-port", LAYOUT_PORT_COM1, 2) ||
        fw_cfg_add_le(vm, "etc/boot-fail-wait", FW_BOOT_FAIL_WAIT_MS, 4)) {
        report_error("cannot fill the firmware configuration");
        return -1;
    }
    return 0;
}

static int setup_firmware_boot(struct vm *vm)
{
    return map_firmware(vm) || fill_fw_cfg(vm) ? -1 : 0;
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

void vm_drain_coalesced(struct vm *vm)
{
    struct kvm_coalesced_mmio_ring *ring = vm->coalesced;
    if (!ring)
        return;
    const uint32_t max = (uint32_t)((sysconf(_SC_PAGESIZE) - sizeof(*ring)) /
                                    sizeof(ring->coalesced_mmio[0]));
    pthread_mutex_lock(&vm->coalesced_lock);
    while (ring->first != __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE)) {
        struct kvm_coalesced_mmio e = ring->coalesced_mmio[ring->first % max];
        if (e.len <= sizeof(e.data)) {
            struct bus *bus = e.pio ? &vm->pio : &vm->mmio;
            bus_write(bus, e.phys_addr, e.data, e.len);
        }
        __atomic_store_n(&ring->first, (ring->first + 1) % max,
                         __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&vm->coalesced_lock);
}

static void map_coalesced_ring(struct vm *vm)
{
    int page_off = kvm_check(vm->kvm_fd, KVM_CAP_COALESCED_MMIO);
    long page = sysconf(_SC_PAGESIZE);
    if (page_off > 0 && (size_t)(page_off + 1) * (size_t)page <= vm->run_size)
        /* page-aligned: the cast is safe */
        vm->coalesced = (struct kvm_coalesced_mmio_ring *)(void *)(
            (uint8_t *)vm->vcpus[0].run + (size_t)page_off * (size_t)page);
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
    map_coalesced_ring(vm);
    return 0;
}

int vm_create(struct vm *vm, const struct vm_config *cfg,
              const struct boot_inputs *boot, const struct vm_env *env)
{
    memset(vm, 0, sizeof(*vm));
    vm->cfg = cfg;
    vm->boot = boot;
    vm->env = env;
    vm->kvm_fd = vm->vm_fd = -1;
    vm->ncpus = cfg->ncpus;
    pthread_mutex_init(&vm->coalesced_lock, NULL);
    fill_machine_info(vm);
    env->console->sink = com1_input;
    env->console->sink_opaque = vm;
    if (bus_init(&vm->pio) || bus_init(&vm->mmio))
        return -1;
    if (open_kvm(vm) || create_kvm_vm(vm) || setup_ram(vm) ||
        irq_router_init(&vm->irq, vm->vm_fd) || setup_devices(vm) ||
        create_vcpus(vm))
        return -1;
    return boot->kernel.data ? setup_direct_boot(vm) : setup_firmware_boot(vm);
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
    evloop_stop(vm->env->loop);
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
    evloop_run(vm->env->loop);
    /* The loop only ends for a stop; make sure one is recorded. */
    vm_request_stop(vm, VM_STOP_HOST_ERROR);
    for (unsigned i = 0; i < vm->ncpus; i++)
        vcpu_kick(&vm->vcpus[i]);
    for (unsigned i = 0; i < vm->ncpus; i++)
        vcpu_join(&vm->vcpus[i]);
    vm_drain_coalesced(vm);
    return vm_stop_reason(vm);
}

void vm_destroy(struct vm *vm)
{
    if (vm->vcpus) {
        for (unsigned i = 0; i < vm->ncpus; i++)
            vcpu_destroy(&vm->vcpus[i]);
        free(vm->vcpus);
    }
    if (vm->devices_up)
        destroy_devices(vm);
    irq_router_destroy(&vm->irq);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    if (vm->kvm_fd >= 0)
        close(vm->kvm_fd);
    if (vm->ram)
        munmap(vm->ram, vm->ram_size);
    if (vm->rom)
        munmap(vm->rom, vm->rom_size);
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
        [KVM_EXIT_SYSTEM_EVENT] = "system_event", [KVM_EXIT_DEBUG] = "debug",
        [KVM_EXIT_X86_RDMSR] = "rdmsr", [KVM_EXIT_X86_WRMSR] = "wrmsr",
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

static void print_pvm_stats(struct vm *vm)
{
    struct pvm_quirks sum = {0};
    for (unsigned i = 0; i < vm->ncpus; i++) {
        const struct pvm_quirks *q = &vm->vcpus[i].pvm;
        sum.syscalls += q->syscalls;
        sum.sysenters += q->sysenters;
        sum.ints += q->ints;
        sum.stepped += q->stepped;
    }
    fprintf(stderr, "kvmpc: PVM work-arounds: entries from user mode "
                    "completed: syscall %llu, sysenter %llu, int %llu; "
                    "other #PF/#UD stepped over %llu\n",
            (unsigned long long)sum.syscalls,
            (unsigned long long)sum.sysenters, (unsigned long long)sum.ints,
            (unsigned long long)sum.stepped);
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
    emu_stats_print(&vm->emu_stats, stderr);
    if (vm->host_is_pvm)
        print_pvm_stats(vm);
    print_resource_stats(vm, t0_ns);
}

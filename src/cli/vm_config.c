#include "cli/vm_config.h"
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "platform/layout.h"
#include "util.h"

enum opt_id {
    OPT_KERNEL = 'k',
    OPT_INITRD = 'i',
    OPT_APPEND = 'p',
    OPT_CPUS = 'c',
    OPT_MEM = 'm',
    OPT_DISK = 'd',
    OPT_HELP = 'h',
    OPT_CONSOLE = 256,
    OPT_DEBUGCON,
    OPT_NAME,
    OPT_REBOOT,
    OPT_FIRMWARE,
    OPT_BOOT_MENU,
    OPT_STATS,
    OPT_MAX,
};

static const struct option run_options[] = {
    {"kernel", required_argument, NULL, OPT_KERNEL},
    {"initrd", required_argument, NULL, OPT_INITRD},
    {"append", required_argument, NULL, OPT_APPEND},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"mem", required_argument, NULL, OPT_MEM},
    {"disk", required_argument, NULL, OPT_DISK},
    {"console", required_argument, NULL, OPT_CONSOLE},
    {"debugcon", required_argument, NULL, OPT_DEBUGCON},
    {"name", required_argument, NULL, OPT_NAME},
    {"reboot", required_argument, NULL, OPT_REBOOT},
    {"firmware", required_argument, NULL, OPT_FIRMWARE},
    {"boot-menu", no_argument, NULL, OPT_BOOT_MENU},
    {"stats", no_argument, NULL, OPT_STATS},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

void config_print_run_help(void)
{
    printf(
        "Usage: kvmpc run [OPTIONS]\n"
        "Boot a PC guest: a Linux kernel directly (--kernel) or disk images\n"
        "through firmware (SeaBIOS, the default without --kernel).\n"
        "\n"
        "  -k, --kernel FILE      bzImage (64-bit boot protocol) or ELF vmlinux\n"
        "                         with a PVH note\n"
        "  -i, --initrd FILE      initial ramdisk for --kernel\n"
        "  -p, --append \"ARGS\"    kernel command line\n"
        "  -c, --cpus N           number of vCPUs (1-%u, default 1)\n"
        "  -m, --mem SIZE         guest RAM: 512, 512M, 2G (plain number: MiB;\n"
        "                         default 512M, at least 32M)\n"
        "  -d, --disk FILE[,ro][,format=raw|qcow2][,cache=writeback|none]\n"
        "                         a virtio-blk disk; repeatable, boot order\n"
        "                         follows the command line\n"
        "      --firmware FILE    SeaBIOS-compatible image (128 or 256 KiB);\n"
        "                         default " KVMPC_SEABIOS_DIR "/bios-256k.bin\n"
        "      --boot-menu        let the firmware show its boot menu\n"
        "      --console KIND     stdio (default), none, or file:PATH\n"
        "      --debugcon FILE    write the debug port (0x402) to FILE\n"
        "      --name NAME        VM name (process title, SMBIOS serial)\n"
        "      --reboot ACTION    on guest reset: exit (default) or restart\n"
        "      --stats            print exit and emulation counters at exit\n"
        "  -h, --help             this help\n"
        "\n"
        "Console: Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A; Ctrl-C goes to\n"
        "the guest.\n"
        "\n"
        "Exit status:\n"
        "  0  the guest powered off (ACPI S5)\n"
        "  1  error: bad option or input, host failure\n"
        "  2  the guest reset the machine (with --reboot=exit)\n"
        "  3  triple fault (register dump on stderr)\n"
        "  4  KVM internal error or an instruction that cannot be\n"
        "     completed (register dump on stderr)\n"
        "  5  stopped by a signal or the console quit key\n",
        LAYOUT_MAX_CPUS);
}

static int parse_uint(const char *s, unsigned long max, unsigned *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int parse_console(const char *arg, struct vm_config *cfg)
{
    if (!strcmp(arg, "stdio")) {
        cfg->console = CONSOLE_STDIO;
    } else if (!strcmp(arg, "none")) {
        cfg->console = CONSOLE_NONE;
    } else if (!strncmp(arg, "file:", 5) && arg[5]) {
        cfg->console = CONSOLE_FILE;
        cfg->console_path = arg + 5;
    } else {
        report_error("--console: expected stdio, none or file:PATH, got '%s'",
                     arg);
        return -1;
    }
    return 0;
}

/* FILE[,ro][,format=raw|qcow2][,cache=writeback|none] */
static int parse_disk(char *arg, struct vm_config *cfg)
{
    if (cfg->ndisks >= CONFIG_MAX_DISKS) {
        report_error("--disk: at most %d disks", CONFIG_MAX_DISKS);
        return -1;
    }
    struct blk_open_opts *d = &cfg->disks[cfg->ndisks];
    if (blk_parse_disk_opts(arg, d))
        return -1;
    for (unsigned i = 0; i < cfg->ndisks; i++) {
        if (!strcmp(cfg->disks[i].path, d->path)) {
            report_error("--disk %s: the same disk is given twice", d->path);
            return -1;
        }
    }
    cfg->ndisks++;
    return 0;
}

static const char *option_name(int id)
{
    for (const struct option *o = run_options; o->name; o++)
        if (o->val == id)
            return o->name;
    return "?";
}

static int apply_option(int id, char *arg, struct vm_config *cfg)
{
    switch (id) {
    case OPT_KERNEL: cfg->kernel = arg; return 0;
    case OPT_INITRD: cfg->initrd = arg; return 0;
    case OPT_APPEND: cfg->append = arg; return 0;
    case OPT_FIRMWARE: cfg->firmware = arg; return 0;
    case OPT_NAME: cfg->name = arg; return 0;
    case OPT_DEBUGCON: cfg->debugcon_path = arg; return 0;
    case OPT_BOOT_MENU: cfg->boot_menu = true; return 0;
    case OPT_STATS: cfg->stats = true; return 0;
    case OPT_DISK: return parse_disk(arg, cfg);
    case OPT_CONSOLE: return parse_console(arg, cfg);
    case OPT_CPUS:
        if (parse_uint(arg, 1u << 20, &cfg->ncpus)) {
            report_error("--cpus: '%s' is not a number", arg);
            return -1;
        }
        return 0;
    case OPT_MEM:
        if (parse_size_mib(arg, &cfg->mem_bytes)) {
            report_error("--mem: '%s' is not a size (e.g. 512, 512M, 2G)", arg);
            return -1;
        }
        return 0;
    case OPT_REBOOT:
        if (!strcmp(arg, "exit"))
            cfg->reboot = REBOOT_EXIT;
        else if (!strcmp(arg, "restart"))
            cfg->reboot = REBOOT_RESTART;
        else {
            report_error("--reboot: expected exit or restart, got '%s'", arg);
            return -1;
        }
        return 0;
    }
    return -1;
}

int config_parse_run(int argc, char **argv, struct vm_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->ncpus = 1;
    cfg->mem_bytes = 512 * MiB;
    bool seen[OPT_MAX] = {false};
    optind = 1;
    opterr = 0;
    for (;;) {
        int idx = -1;
        int id = getopt_long(argc, argv, ":k:i:p:c:m:d:h", run_options, &idx);
        if (id == -1)
            break;
        if (id == 'h') {
            config_print_run_help();
            return 1;
        }
        if (id == '?') {
            report_error("unknown option '%s' (see kvmpc run --help)",
                         argv[optind - 1]);
            return -1;
        }
        if (id == ':') {
            report_error("option '%s' needs a value", argv[optind - 1]);
            return -1;
        }
        if (id != OPT_DISK && seen[id]) {
            report_error("option --%s given more than once", option_name(id));
            return -1;
        }
        seen[id] = true;
        if (apply_option(id, optarg, cfg))
            return -1;
    }
    if (optind < argc) {
        report_error("unexpected argument '%s' (see kvmpc run --help)",
                     argv[optind]);
        return -1;
    }
    return 0;
}

static uint64_t host_memory_limit(void)
{
    struct sysinfo si;
    if (sysinfo(&si))
        return LAYOUT_MEM_MAX;
    return ((uint64_t)si.totalram + si.totalswap) * si.mem_unit;
}

static unsigned kvm_max_vcpus(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return LAYOUT_MAX_CPUS;
    int n = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (n <= 0)
        n = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    close(fd);
    return n > 0 ? (unsigned)n : LAYOUT_MAX_CPUS;
}

int config_validate(struct vm_config *cfg)
{
    unsigned max_cpus = MIN((unsigned)LAYOUT_MAX_CPUS, kvm_max_vcpus());
    if (cfg->ncpus < 1 || cfg->ncpus > max_cpus) {
        report_error("--cpus %u: must be between 1 and %u", cfg->ncpus,
                     max_cpus);
        return -1;
    }
    if (cfg->mem_bytes < LAYOUT_MEM_MIN) {
        report_error("--mem: %llu MiB is too small (at least %llu MiB)",
                     (unsigned long long)(cfg->mem_bytes / MiB),
                     (unsigned long long)(LAYOUT_MEM_MIN / MiB));
        return -1;
    }
    if (cfg->mem_bytes % (2 * MiB)) {
        report_error("--mem: size must be a multiple of 2 MiB");
        return -1;
    }
    uint64_t limit = MIN(host_memory_limit(), (uint64_t)LAYOUT_MEM_MAX);
    if (cfg->mem_bytes > limit) {
        report_error("--mem: %llu MiB is more than this host allows "
                     "(%llu MiB)",
                     (unsigned long long)(cfg->mem_bytes / MiB),
                     (unsigned long long)(limit / MiB));
        return -1;
    }
    if (!cfg->kernel && (cfg->initrd || cfg->append)) {
        report_error("--%s needs --kernel", cfg->initrd ? "initrd" : "append");
        return -1;
    }
    if (cfg->kernel && cfg->firmware) {
        report_error("--kernel and --firmware exclude each other");
        return -1;
    }
    if (cfg->append && strlen(cfg->append) + 1 > LAYOUT_CMDLINE_MAX) {
        report_error("--append: command line longer than %llu bytes",
                     (unsigned long long)LAYOUT_CMDLINE_MAX - 1);
        return -1;
    }
    return 0;
}

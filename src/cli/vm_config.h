/* The validated description of one VM, produced from the command line.
 * Devices never see this; machine.c hands each its own small config. */
#ifndef KVMPC_CONFIG_H
#define KVMPC_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "block/block.h"

#define CONFIG_MAX_DISKS 16

enum console_kind {
    CONSOLE_STDIO = 0,
    CONSOLE_NONE,
    CONSOLE_FILE,
};

enum reboot_action {
    REBOOT_EXIT = 0,
    REBOOT_RESTART,
};

struct vm_config {
    const char *kernel;
    const char *initrd;
    const char *append;
    const char *firmware; /* NULL: default when no --kernel */
    const char *name;
    unsigned ncpus;
    uint64_t mem_bytes;
    enum console_kind console;
    const char *console_path;
    const char *debugcon_path;
    enum reboot_action reboot;
    struct blk_open_opts disks[CONFIG_MAX_DISKS];
    unsigned ndisks;
    bool boot_menu;
    bool stats;
};

/* Exit statuses of `kvmpc run` (documented in --help and the README). */
enum kvmpc_exit {
    EXIT_POWEROFF = 0,
    EXIT_ERROR = 1,
    EXIT_RESET = 2,
    EXIT_TRIPLE_FAULT = 3,
    EXIT_INTERNAL_ERROR = 4,
    EXIT_STOPPED = 5,
};

/* Parses `kvmpc run` arguments (argv[0] is "run"). Returns 0 with cfg
 * filled, 1 when help was printed (exit 0), or -1 after reporting one
 * line about what is wrong. */
int config_parse_run(int argc, char **argv, struct vm_config *cfg);
/* Checks values against each other and the host (memory, CPUs). */
int config_validate(struct vm_config *cfg);
void config_print_run_help(void);

#endif

/* kvmpc: command dispatch and the life cycle of one VM run. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "boot/firmware.h"
#include "block/img.h"
#include "boot/kernel.h"
#include "cli/vm_config.h"
#include "config.h"
#include "io/console.h"
#include "io/evloop.h"
#include "platform/layout.h"
#include "util.h"
#include "vm/machine.h"

#define KERNEL_MAX_BYTES (512 * MiB)

static void print_usage(void)
{
    printf("Usage: kvmpc COMMAND [OPTIONS]\n"
           "A small, fast KVM virtual machine monitor for x86-64 PCs.\n"
           "\n"
           "Commands:\n"
           "  run       boot a VM (kvmpc run --help)\n"
           "  img       create, check and inspect disk images (kvmpc img --help)\n"
           "\n"
           "  -h, --help       this help\n"
           "  -V, --version    print the version\n");
}

/* The benchmark passes the CLOCK_MONOTONIC time of its execve() so that
 * startup includes loading the binary; otherwise: now. */
static uint64_t start_time_ns(void)
{
    const char *t0 = getenv("KVMPC_BENCH_T0_NS");
    return t0 ? strtoull(t0, NULL, 10) : monotonic_ns();
}

/* The same file under two names would be two writers of one image. */
static int check_distinct_disks(const struct vm_config *cfg)
{
    struct stat st[CONFIG_MAX_DISKS];
    for (unsigned i = 0; i < cfg->ndisks; i++) {
        if (stat(cfg->disks[i].path, &st[i]))
            continue; /* blk_open reports it */
        for (unsigned j = 0; j < i; j++) {
            if (st[j].st_dev == st[i].st_dev && st[j].st_ino == st[i].st_ino) {
                report_error("--disk %s: the same disk as --disk %s",
                             cfg->disks[i].path, cfg->disks[j].path);
                return -1;
            }
        }
    }
    return 0;
}

static int open_disks(const struct vm_config *cfg, struct boot_inputs *b)
{
    if (check_distinct_disks(cfg))
        return -1;
    for (unsigned i = 0; i < cfg->ndisks; i++) {
        if (blk_open(&cfg->disks[i], &b->disks[i]))
            return -1;
        b->ndisks = i + 1;
    }
    return 0;
}

static int load_inputs(const struct vm_config *cfg, struct boot_inputs *b)
{
    memset(b, 0, sizeof(*b));
    if (open_disks(cfg, b))
        return -1;
    if (!cfg->kernel) {
        const char *fw = cfg->firmware ? cfg->firmware
                                       : KVMPC_SEABIOS_DIR "/" FIRMWARE_DEFAULT_NAME;
        return firmware_read(fw, cfg->firmware == NULL, &b->firmware,
                             &b->firmware_len);
    }
    if (read_file("kernel", cfg->kernel, KERNEL_MAX_BYTES, &b->kernel_file,
                  &b->kernel_len) ||
        kernel_probe(cfg->kernel, b->kernel_file, b->kernel_len, &b->kernel))
        return -1;
    if (cfg->initrd &&
        read_file("initrd", cfg->initrd, cfg->mem_bytes, &b->initrd,
                  &b->initrd_len))
        return -1;
    size_t cmdline_len = cfg->append ? strlen(cfg->append) : 0;
    return kernel_plan(&b->kernel, layout_lowmem(cfg->mem_bytes),
                       b->initrd_len, cmdline_len, &b->plan);
}

static void free_inputs(struct boot_inputs *b)
{
    for (unsigned i = 0; i < b->ndisks; i++)
        blk_close(b->disks[i]);
    free(b->kernel_file);
    free(b->initrd);
    free(b->firmware);
}

struct run_ctx {
    uint64_t t0_ns; /* process start, or the benchmark's exec time */
    struct vm vm;
    struct console console;
    struct vm_env env;
    int sigfd;
};

static void on_quit_key(void *opaque)
{
    struct run_ctx *ctx = opaque;
    vm_request_stop(&ctx->vm, VM_STOP_QUIT);
}

static void on_signal(void *opaque, uint32_t events)
{
    struct run_ctx *ctx = opaque;
    struct signalfd_siginfo si;
    while (read(ctx->sigfd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGINT) {
            static const uint8_t ctrl_c = 0x03;
            console_inject(&ctx->console, &ctrl_c, 1);
        } else {
            vm_request_stop(&ctx->vm, VM_STOP_SIGNAL);
        }
    }
}

static int setup_signals(struct run_ctx *ctx, struct evloop *loop)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    /* Blocked before any thread exists, so vCPU threads inherit it. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    ctx->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (ctx->sigfd < 0 || vcpu_install_kick_handler() ||
        evloop_add(loop, ctx->sigfd, EPOLLIN, on_signal, ctx)) {
        report_error("cannot set up signal handling");
        return -1;
    }
    return 0;
}

static int exit_status(enum vm_stop_reason r)
{
    switch (r) {
    case VM_STOP_POWEROFF: return EXIT_POWEROFF;
    case VM_STOP_RESET: return EXIT_RESET;
    case VM_STOP_TRIPLE_FAULT: return EXIT_TRIPLE_FAULT;
    case VM_STOP_INTERNAL_ERROR: return EXIT_INTERNAL_ERROR;
    case VM_STOP_SIGNAL:
    case VM_STOP_QUIT: return EXIT_STOPPED;
    default: return EXIT_ERROR;
    }
}

static int open_outputs(const struct vm_config *cfg, struct run_ctx *ctx)
{
    ctx->env.debugcon_fd = -1;
    if (console_open(&ctx->console, cfg->console, cfg->console_path))
        return -1;
    if (cfg->debugcon_path) {
        ctx->env.debugcon_fd = open(cfg->debugcon_path,
                                    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                                    0644);
        if (ctx->env.debugcon_fd < 0) {
            report_error("--debugcon: cannot open '%s': %s",
                         cfg->debugcon_path, strerror(errno));
            console_close(&ctx->console);
            return -1;
        }
    }
    return 0;
}

/* Builds, runs and tears down the VM; again after a guest reset when
 * --reboot=restart. */
static int run_machine(const struct vm_config *cfg,
                       const struct boot_inputs *inputs, struct run_ctx *ctx)
{
    bool console_started = false;
    for (;;) {
        if (vm_create(&ctx->vm, cfg, inputs, &ctx->env) ||
            (!console_started && console_start(&ctx->console, ctx->env.loop))) {
            vm_destroy(&ctx->vm);
            return EXIT_ERROR;
        }
        console_started = true;
        enum vm_stop_reason r = vm_run(&ctx->vm);
        if (cfg->stats)
            vm_print_stats(&ctx->vm, ctx->t0_ns);
        vm_destroy(&ctx->vm);
        if (r == VM_STOP_RESET && cfg->reboot == REBOOT_RESTART)
            continue;
        return exit_status(r);
    }
}

static int cmd_run(int argc, char **argv)
{
    static struct run_ctx ctx; /* large; lives for the whole run */
    ctx.t0_ns = start_time_ns();
    struct vm_config cfg;
    int r = config_parse_run(argc, argv, &cfg);
    if (r)
        return r > 0 ? 0 : EXIT_ERROR;
    if (config_validate(&cfg))
        return EXIT_ERROR;
    if (cfg.name)
        prctl(PR_SET_NAME, cfg.name, 0, 0, 0);
    struct boot_inputs inputs;
    int status = EXIT_ERROR;
    struct evloop *loop = NULL;
    if (load_inputs(&cfg, &inputs))
        goto out;
    loop = evloop_new();
    if (!loop || setup_signals(&ctx, loop))
        goto out;
    /* Output files are created only now that every input checked out. */
    if (open_outputs(&cfg, &ctx))
        goto out;
    ctx.env.loop = loop;
    ctx.env.console = &ctx.console;
    ctx.console.quit = on_quit_key;
    ctx.console.quit_opaque = &ctx;
    /* The VM sets the console's sink; start reading input once it exists. */
    ctx.console.sink = NULL;
    status = run_machine(&cfg, &inputs, &ctx);
    console_close(&ctx.console);
    if (ctx.env.debugcon_fd >= 0)
        close(ctx.env.debugcon_fd);
out:
    evloop_free(loop);
    free_inputs(&inputs);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage();
        return EXIT_ERROR;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        print_usage();
        return 0;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        printf("kvmpc %s\n", KVMPC_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "img"))
        return img_main(argc - 1, argv + 1);
    report_error("unknown command '%s' (see kvmpc --help)", cmd);
    return EXIT_ERROR;
}

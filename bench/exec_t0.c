/* Runs a command with KVMPC_BENCH_T0_NS set to CLOCK_MONOTONIC right before
 * execve(), so kvmpc --stats can report startup including the exec. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: exec_t0 COMMAND [ARGS...]\n");
        return 2;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char t0[32];
    snprintf(t0, sizeof(t0), "%llu",
             (unsigned long long)ts.tv_sec * 1000000000ULL +
                 (unsigned long long)ts.tv_nsec);
    setenv("KVMPC_BENCH_T0_NS", t0, 1);
    execvp(argv[1], argv + 1);
    perror("exec_t0");
    return 127;
}

/* Helpers for unit tests that check generated data with external tools
 * (iasl, dmidecode). A missing tool makes the test fail, never skip. */
#ifndef KVMPC_TEST_TOOLS_H
#define KVMPC_TEST_TOOLS_H

#include <stddef.h>

/* The tool path from the environment variable env (set by meson); fails
 * the test when it is not set. */
const char *tool_path(const char *env);

/* A fresh temporary directory; tool_rmdir() removes it and its files. */
char *tool_mkdtemp(void);
void tool_rmdir(char *dir);

/* Writes dir/name; fails the test on error. */
void tool_write(const char *dir, const char *name, const void *data,
                size_t len);
/* Reads dir/name as a NUL-terminated string (caller frees); fails the
 * test on error. */
char *tool_read(const char *dir, const char *name);

/* Runs "cd dir && <tool> <args>" through the shell with stderr merged
 * into stdout. Returns the exit status (-1 if it did not exit) and the
 * output in *out (caller frees). */
int tool_run(const char *dir, const char *tool, const char *args, char **out);

/* Occurrences of needle in hay. */
unsigned count_str(const char *hay, const char *needle);

#endif

#include "tools.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

const char *tool_path(const char *env)
{
    const char *p = getenv(env);
    if (!p || !*p)
        fail_msg("%s is not set: run the test through meson", env);
    return p;
}

char *tool_mkdtemp(void)
{
    char *dir = strdup("/tmp/kvmpc-test-XXXXXX");
    assert_non_null(dir);
    assert_non_null(mkdtemp(dir));
    return dir;
}

static char *path_join(const char *dir, const char *name)
{
    char *p;
    assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
    return p;
}

/* Everything left in f, NUL-terminated. */
static char *read_all(FILE *f)
{
    size_t cap = 4096, len = 0, n;
    char *buf = malloc(cap);
    assert_non_null(buf);
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len == 1) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    buf[len] = 0;
    return buf;
}

void tool_rmdir(char *dir)
{
    char *cmd;
    assert_true(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(dir);
}

void tool_write(const char *dir, const char *name, const void *data,
                size_t len)
{
    char *path = path_join(dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    free(path);
}

char *tool_read(const char *dir, const char *name)
{
    char *path = path_join(dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *buf = read_all(f);
    fclose(f);
    free(path);
    return buf;
}

int tool_run(const char *dir, const char *tool, const char *args, char **out)
{
    char *cmd;
    assert_true(asprintf(&cmd, "cd '%s' && '%s' %s 2>&1", dir, tool, args) > 0);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *buf = read_all(p);
    int status = pclose(p);
    free(cmd);
    *out = buf;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

unsigned count_str(const char *hay, const char *needle)
{
    unsigned n = 0;
    size_t len = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + len, needle))
        n++;
    return n;
}

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void vreport(const char *kind, const char *fmt, va_list ap)
    PRINTF_LIKE(2, 0);

static void vreport(const char *kind, const char *fmt, va_list ap)
{
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, ap);
    /* One line, always: a message must not break the terminal layout. */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(stderr, "kvmpc: %s%s\n", kind, line);
}

void report_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("", fmt, ap);
    va_end(ap);
}

void report_warning(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("warning: ", fmt, ap);
    va_end(ap);
}

int read_file(const char *what, const char *path, size_t max_len,
              uint8_t **buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        report_error("cannot open %s '%s': %s", what, path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        report_error("%s '%s' is not a regular file", what, path);
        close(fd);
        return -1;
    }
    if (st.st_size == 0) {
        report_error("%s '%s' is empty", what, path);
        close(fd);
        return -1;
    }
    if ((uint64_t)st.st_size > max_len) {
        report_error("%s '%s' is too large (%lld bytes, at most %zu)", what,
                     path, (long long)st.st_size, max_len);
        close(fd);
        return -1;
    }
    uint8_t *data = malloc((size_t)st.st_size);
    if (!data) {
        report_error("out of memory reading %s '%s'", what, path);
        close(fd);
        return -1;
    }
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t n = read(fd, data + done, (size_t)st.st_size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            report_error("cannot read %s '%s': %s", what, path,
                         n < 0 ? strerror(errno) : "file shrank while reading");
            free(data);
            close(fd);
            return -1;
        }
        done += (size_t)n;
    }
    close(fd);
    *buf = data;
    *len = done;
    return 0;
}

int parse_size_mib(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return -1;
    unsigned shift = 20;
    if (*end) {
        switch (*end) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        case 't': case 'T': shift = 40; break;
        default: return -1;
        }
        end++;
        if ((*end == 'i' || *end == 'I') && (end[1] == 'B' || end[1] == 'b'))
            end += 2;
        else if (*end == 'B' || *end == 'b')
            end++;
        if (*end)
            return -1;
    }
    if (v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

uint8_t checksum8(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + p[i]);
    return (uint8_t)(0 - sum);
}

void copy_padded(void *dst, size_t dst_len, const char *src, char pad)
{
    size_t n = strlen(src);
    if (n > dst_len)
        n = dst_len;
    memcpy(dst, src, n);
    memset((char *)dst + n, pad, dst_len - n);
}

/* "key=value" options from the boot command line. */
#include "kit.h"

bool cmdline_get(const char *key, char *buf, size_t len)
{
    size_t klen = strlen(key);

    for (const char *p = kit_boot.cmdline; *p;) {
        const char *tok = p;
        size_t n = 0;

        while (tok[n] && tok[n] != ' ')
            n++;
        p = tok[n] ? tok + n + 1 : tok + n;
        if (n <= klen || strncmp(tok, key, klen) || tok[klen] != '=')
            continue;
        if (n - klen - 1 >= len)
            return false;
        memcpy(buf, tok + klen + 1, n - klen - 1);
        buf[n - klen - 1] = 0;
        return true;
    }
    return false;
}

uint64_t cmdline_u64(const char *key, uint64_t def)
{
    char buf[32];
    uint64_t v;
    size_t used;

    if (!cmdline_get(key, buf, sizeof(buf)))
        return def;
    used = kit_parse_u64(buf, &v);
    if (!used || buf[used])
        kit_fatal("bad number in %s=%s", key, buf);
    return v;
}

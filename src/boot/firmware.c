#include "boot/firmware.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "platform/layout.h"
#include "util.h"

#define RESET_VECTOR_FROM_END 16

/* The reset vector must hold a jump, as every PC BIOS has there. */
static bool has_reset_jump(const uint8_t *d, size_t len)
{
    uint8_t op = d[len - RESET_VECTOR_FROM_END];
    return op == 0xEA || op == 0xE9 || op == 0xEB;
}

int firmware_read(const char *path, bool is_default, uint8_t **data,
                  size_t *len)
{
    if (is_default && access(path, R_OK) != 0) {
        report_error("firmware %s not found (%s): install the Debian package "
                     "'seabios' or pass --firmware FILE",
                     path, strerror(errno));
        return -1;
    }
    if (read_file("firmware", path, 16 * 1024 * 1024, data, len))
        return -1;
    if (*len != FIRMWARE_SIZE_SMALL && *len != FIRMWARE_SIZE_LARGE) {
        report_error("firmware '%s': %zu bytes; a SeaBIOS-compatible image "
                     "is 128 KiB or 256 KiB", path, *len);
        goto bad;
    }
    if (!has_reset_jump(*data, *len)) {
        report_error("firmware '%s': no jump at the reset vector; not a BIOS "
                     "image", path);
        goto bad;
    }
    return 0;
bad:
    free(*data);
    *data = NULL;
    return -1;
}

uint64_t firmware_low_base(size_t len)
{
    return LAYOUT_BIOS_LOW_END - len;
}

uint64_t firmware_high_base(size_t len)
{
    return LAYOUT_4G - len;
}

int firmware_install_low(const struct guest_mem *mem, const uint8_t *data,
                         size_t len)
{
    return gmem_write(mem, firmware_low_base(len), data, len);
}

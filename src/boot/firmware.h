/* Legacy BIOS images (SeaBIOS and compatible): validation and mapping.
 * The image is linked so its last byte is 0xFFFFF. It is mapped twice:
 * a pristine read-only copy right below 4 GiB (reset vector; the source
 * of firmware's own shadow copy and reboot restore) and a writable copy in
 * low RAM at its link address, so no PAM emulation is needed. */
#ifndef KVMPC_FIRMWARE_H
#define KVMPC_FIRMWARE_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "vm/memory.h"

#define FIRMWARE_SIZE_SMALL (128 * 1024)
#define FIRMWARE_SIZE_LARGE (256 * 1024)
#define FIRMWARE_DEFAULT_NAME "bios-256k.bin"

/* Reads and checks a firmware file; reports one line and returns -1 for a
 * missing file, a wrong size or something that is not a BIOS image. With
 * is_default, a missing file names the package to install. */
int firmware_read(const char *path, bool is_default, uint8_t **data,
                  size_t *len);

/* Guest-physical base of the low (writable) copy. */
uint64_t firmware_low_base(size_t len);
/* Guest-physical base of the high (read-only) copy. */
uint64_t firmware_high_base(size_t len);

/* Copies the image to its low link address in guest RAM. */
int firmware_install_low(const struct guest_mem *mem, const uint8_t *data,
                         size_t len);

#endif

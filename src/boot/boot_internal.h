/* Format back ends of kernel.c. */
#ifndef KVMPC_BOOT_INTERNAL_H
#define KVMPC_BOOT_INTERNAL_H

#include <stdbool.h>

#include "boot/kernel.h"

bool bzimage_detect(const uint8_t *d, size_t len);
int bzimage_probe(const char *path, const uint8_t *d, size_t len,
                  struct kernel_image *k);
int bzimage_plan_kernel(const struct kernel_image *k, uint64_t lowmem,
                        struct kernel_plan *p);
int bzimage_load(const struct kernel_image *k, const struct kernel_plan *p,
                 const struct kernel_boot_info *info,
                 const struct guest_mem *mem, struct kernel_entry *entry);

bool pvh_detect(const uint8_t *d, size_t len);
int pvh_probe(const char *path, const uint8_t *d, size_t len,
              struct kernel_image *k);
int pvh_plan_kernel(const struct kernel_image *k, uint64_t lowmem,
                    struct kernel_plan *p);
int pvh_load(const struct kernel_image *k, const struct kernel_plan *p,
             const struct kernel_boot_info *info, const struct guest_mem *mem,
             struct kernel_entry *entry);

#endif

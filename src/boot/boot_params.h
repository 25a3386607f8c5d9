/* Offsets in the x86 boot protocol's boot_params (the "zero page") and
 * its setup header (Linux Documentation/arch/x86/boot.rst). Shared by the
 * loader and the test guest that checks what the loader wrote. */
#ifndef KVMPC_BOOT_PARAMS_H
#define KVMPC_BOOT_PARAMS_H

/* boot_params */
#define BP_SIZE 0x1000
#define BP_ACPI_RSDP_ADDR 0x070
#define BP_EXT_RAMDISK_IMAGE 0x0C0
#define BP_EXT_RAMDISK_SIZE 0x0C4
#define BP_EXT_CMD_LINE_PTR 0x0C8
#define BP_E820_ENTRIES 0x1E8
#define BP_E820_TABLE 0x2D0
#define BP_E820_MAX 128

/* setup header, at the same offsets in the image and in boot_params */
#define HDR_SETUP_SECTS 0x1F1
#define HDR_SYSSIZE 0x1F4
#define HDR_BOOT_FLAG 0x1FE
#define HDR_JUMP 0x200
#define HDR_MAGIC 0x202
#define HDR_VERSION 0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS 0x211
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21C
#define HDR_CMD_LINE_PTR 0x228
#define HDR_INITRD_ADDR_MAX 0x22C
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE 0x234
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260

#define HDRS_MAGIC 0x53726448u /* "HdrS" */
#define XLF_KERNEL_64 0x1
#define ENTRY_64_OFFSET 0x200

#endif

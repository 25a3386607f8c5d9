/* The boot-protocol image's setup header values (setup.S writes them,
 * bzimage.c checks that the loader passed them on) and the layout of the
 * entry state that entry_bzimage.S records for bzimage.c. */
#ifndef KIT_BZIMAGE_DEFS_H
#define KIT_BZIMAGE_DEFS_H

#define BZ_SETUP_SECTS 3           /* 512-byte sectors after the boot sector */
#define BZ_VERSION 0x020C          /* 2.12: xloadflags */
#define BZ_LOADFLAGS 0x01          /* LOADED_HIGH */
#define BZ_CODE32_START 0x100000
#define BZ_INITRD_ADDR_MAX 0x7FFFFFFF
#define BZ_KERNEL_ALIGNMENT 0x200000
#define BZ_MIN_ALIGNMENT 21        /* log2 */
#define BZ_XLOADFLAGS 0x0001       /* XLF_KERNEL_64: entry at +0x200 */
#define BZ_CMDLINE_SIZE 2047
#define BZ_PREF_ADDRESS 0x1000000
#define BZ_ENTRY64_OFFSET 0x200

/* struct bz_entry_state, offsets for the assembly side. */
#define BZ_ES_RSI 0
#define BZ_ES_CR0 8
#define BZ_ES_CR3 16
#define BZ_ES_CR4 24
#define BZ_ES_EFER 32
#define BZ_ES_RFLAGS 40
#define BZ_ES_LOAD 48
#define BZ_ES_CS 56
#define BZ_ES_DS 58
#define BZ_ES_ES 60
#define BZ_ES_SS 62
#define BZ_ES_GDTR 64 /* 2-byte limit, 8-byte base */
#define BZ_ES_SIZE 80

#endif

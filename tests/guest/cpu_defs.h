/* Selectors and sizes shared by the assembly and C parts of the kit. */
#ifndef KIT_CPU_DEFS_H
#define KIT_CPU_DEFS_H

#define KIT_CS 0x10 /* the boot protocol's __BOOT_CS/__BOOT_DS numbering */
#define KIT_DS 0x18
#define KIT_GDT_ENTRIES 4

#endif

/* Selectors, offsets and codes shared by usermode.S and test_usermode.c. */
#ifndef KIT_USERMODE_DEFS_H
#define KIT_USERMODE_DEFS_H

/* The test's GDT keeps the kit's 0x10/0x18 and adds the user segments in
 * the order SYSCALL/SYSRET need: STAR[63:48] = 0x20 gives SS 0x28 and
 * 64-bit CS 0x30 (Linux uses the same numbers). */
#define UM_USER_CS32 (0x20 | 3)
#define UM_USER_DS (0x28 | 3)
#define UM_USER_CS (0x30 | 3)
#define UM_TSS_SEL 0x38
#define UM_GDT_ENTRIES 9

#define UM_INT_VECTOR 0x80 /* a gate with DPL 3 */

/* What the SYSCALL entry records (struct um_syscall_record). */
#define UM_SC_RCX 0
#define UM_SC_R11 8
#define UM_SC_RSP 16
#define UM_SC_RAX 24
#define UM_SC_CS 32
#define UM_SC_SS 40
#define UM_SC_RFLAGS 48
#define UM_SC_COUNT 56
#define UM_SC_SYSRET 64
#define UM_SC_SIZE 72

#define UM_SYSCALL_RAX 0x5CA11
#define UM_SYSRET_RAX 0x5E7E7

/* Results handed to um_resume in RAX. */
#define UM_RES_SYSCALL 1
#define UM_RES_SYSENTER 2
#define UM_RES_INT 3    /* INT 0x80 from ring 3 */
#define UM_RES_REPORT 4 /* the UD2 that ends every user sequence */
#define UM_RES_FAULT 5  /* an exception the test did not plan for */

#endif

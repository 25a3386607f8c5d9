/* A small AML writer: appends AML byte code to a growing buffer.
 *
 * AML is prefix-encoded, so the writer is a stream: an operator call is
 * followed by the calls that emit its operands, in order. Constructs that
 * carry a PkgLength (Scope, Device, Method, If, Else, Package, Field) are
 * opened by their function and closed by aml_end(); the length is filled
 * in then. Call sites keep the equivalent ASL in a comment.
 *
 * Errors (allocation failure, nesting too deep, bad arguments) are sticky:
 * later calls do nothing and aml_finish() reports -1, so builders need not
 * check each call. */
#ifndef KVMPC_AML_H
#define KVMPC_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 16

struct aml {
    uint8_t *buf;
    size_t len, cap;
    size_t open[AML_MAX_DEPTH]; /* where each open PkgLength goes */
    unsigned depth;
    bool failed;
};

void aml_init(struct aml *a);
void aml_free(struct aml *a);
/* 0 when every construct was closed and nothing failed, else -1. */
int aml_finish(const struct aml *a);

void aml_bytes(struct aml *a, const void *data, size_t len);

/* ---- Data objects and names ------------------------------------------- */

/* Zero/One/Ones or the smallest Byte/Word/DWord/QWord constant. */
void aml_int(struct aml *a, uint64_t v);
void aml_string(struct aml *a, const char *s);
/* A NameString: "\\_SB.PCI0", "^LNKA", "_HID"; segments shorter than four
 * characters are padded with '_'. */
void aml_name(struct aml *a, const char *path);
/* EisaId("PNP0A03") as the compressed DWord. */
void aml_eisaid(struct aml *a, const char *id);
/* Buffer (len) { data } */
void aml_buffer(struct aml *a, const void *data, size_t len);
void aml_local(struct aml *a, unsigned n); /* Local0..Local7 */
void aml_arg(struct aml *a, unsigned n);   /* Arg0..Arg6 */
/* The empty Target of And/Or/...: the result is not stored. */
void aml_no_target(struct aml *a);

/* ---- Named objects and blocks (closed by aml_end) --------------------- */

void aml_name_decl(struct aml *a, const char *name); /* Name (name, <object>) */
void aml_scope(struct aml *a, const char *name);
void aml_device(struct aml *a, const char *name);
void aml_method(struct aml *a, const char *name, unsigned nargs,
                bool serialized);
void aml_if(struct aml *a); /* the predicate follows, then the body */
void aml_else(struct aml *a);
void aml_package(struct aml *a, unsigned nelems);
void aml_end(struct aml *a);

enum aml_region_space {
    AML_SYSTEM_MEMORY = 0,
    AML_SYSTEM_IO = 1,
    AML_PCI_CONFIG = 2,
};
/* OperationRegion (name, space, offset, len) */
void aml_op_region(struct aml *a, const char *name, enum aml_region_space sp,
                   uint64_t offset, uint64_t len);

enum aml_field_access {
    AML_ANY_ACC = 0,
    AML_BYTE_ACC = 1,
    AML_WORD_ACC = 2,
    AML_DWORD_ACC = 3,
};
/* Field (region, access, NoLock, Preserve) { units } */
void aml_field(struct aml *a, const char *region, enum aml_field_access acc);
void aml_field_unit(struct aml *a, const char *name, unsigned bits);

/* ---- Operators: each is followed by its operands ---------------------- */

void aml_return(struct aml *a);   /* Return (value) */
void aml_store(struct aml *a);    /* Store (source, destination) */
void aml_and(struct aml *a);      /* And (a, b, target) */
void aml_or(struct aml *a);       /* Or (a, b, target) */
void aml_lequal(struct aml *a);   /* LEqual (a, b) */
void aml_lless(struct aml *a);    /* LLess (a, b) */
/* CreateDWordField (buffer, byte index, name) */
void aml_create_dword_field(struct aml *a);

/* ---- Resource template descriptors (inside a Buffer's bytes) ---------- */

/* A resource template under construction; aml_res_end() appends the end
 * tag, after which res.buf/res.len go to aml_buffer(). */
void aml_res_io(struct aml *r, uint16_t base, uint8_t len);
void aml_res_irq_noflags(struct aml *r, unsigned irq);
/* Interrupt (ResourceConsumer, Level, ActiveHigh, Shared) { irqs } */
void aml_res_interrupt_level_high(struct aml *r, const uint32_t *irqs,
                                  unsigned n);
/* WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, ...) */
void aml_res_word_bus(struct aml *r, uint16_t min, uint16_t max);
/* WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange) */
void aml_res_word_io(struct aml *r, uint16_t min, uint16_t max);
/* DWordMemory / QWordMemory (ResourceProducer, PosDecode, MinFixed,
 * MaxFixed, Cacheable or NonCacheable, ReadWrite); max is inclusive. */
void aml_res_dword_mem(struct aml *r, uint32_t min, uint32_t max,
                       bool cacheable);
void aml_res_qword_mem(struct aml *r, uint64_t min, uint64_t max,
                       bool cacheable);
void aml_res_end(struct aml *r);

#endif

/* Recording stand-in for src/vm/irq.c, linked into the device tests only
 * while that file does not exist yet. Same contract as irq.h documents
 * for vmfd < 0: the line only records its level and rising edges. */
#include "vm/irq.h"

void irq_line_init(struct irq_line *l, int vmfd, unsigned gsi)
{
    l->vmfd = vmfd;
    l->gsi = gsi;
    l->level = 0;
    l->pulses = 0;
}

void irq_line_set(struct irq_line *l, int level)
{
    level = level != 0;
    if (level && !l->level)
        l->pulses++;
    l->level = level;
}

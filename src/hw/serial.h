/* 16550A UART (8 registers, 16-byte receive FIFO), as on COM1 of a PC.
 *
 * Transmission takes no time: a byte written to THR reaches the output
 * callback at once, so LSR reads THRE|TEMT (0x60) whenever the receiver is
 * idle and nobody ever waits for the transmitter. The receive side is fed by
 * the I/O thread through serial_receive(), which takes only what fits in the
 * FIFO; rx_ready() tells it when to offer more (flow control without
 * polling). The character timeout is modelled as zero character times:
 * received data below the FIFO trigger level is reported at once as a
 * timeout interrupt (IIR 0xCC), data at or above it as RDA (IIR 0xC4).
 *
 * The interrupt output follows "interrupt pending" as a level, gated by
 * MCR.OUT2 as on the ISA card (and forced off in loopback, where OUT2 is
 * disconnected from the pin).
 *
 * Locking: one mutex per UART, taken by every entry point. */
#ifndef KVMPC_HW_SERIAL_H
#define KVMPC_HW_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vm/bus.h"
#include "vm/irq.h"

#define SERIAL_FIFO_SIZE 16

struct serial_config {
    /* Bytes the guest transmitted, in order. Called with the UART lock
     * held (that keeps the order when several vCPUs write), so it must not
     * call back into this UART; a blocking write(2) is fine and stalls only
     * this port. NULL drops the output. */
    void (*write)(void *opaque, const void *buf, size_t len);
    /* Called without the lock, from a vCPU thread, once FIFO space frees
     * up after serial_receive() accepted less than it was offered (or
     * refused input during loopback). NULL: nobody waits. */
    void (*rx_ready)(void *opaque);
    void *opaque;
};

struct serial_fifo {
    uint8_t buf[SERIAL_FIFO_SIZE];
    unsigned head, count;
};

struct serial {
    pthread_mutex_t lock;
    struct serial_config cfg;
    struct irq_line *irq;
    uint8_t ier, lcr, mcr, scr, fcr;
    uint8_t lsr_errors; /* OE/PE/FE/BI, cleared by reading LSR */
    uint8_t msr;        /* line state (bits 7:4) and deltas (3:0) */
    uint8_t last_rx;    /* what RBR returns when the FIFO is empty */
    uint16_t divisor;
    struct serial_fifo rx;
    bool thre_pending;  /* THRE interrupt not yet acknowledged */
    bool rx_blocked;    /* serial_receive() was refused input */
};

/* The 8 registers at LAYOUT_PORT_COM1 (LAYOUT_PORT_COM_LEN ports). */
extern const struct bus_ops serial_bus_ops;

/* irq is driven by the UART alone. Returns 0, or -1 (lock creation). */
int serial_init(struct serial *s, const struct serial_config *cfg,
                struct irq_line *irq);
void serial_destroy(struct serial *s);
/* Power-on state (system reset); the FIFO contents are dropped. */
void serial_reset(struct serial *s);

/* Puts up to len host bytes into the receive FIFO; returns how many were
 * taken. Fewer than len means "full": wait for rx_ready(). */
size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len);

#endif

/* i8042 PS/2 controller with an AT keyboard that has no keys yet, at
 * LAYOUT_PORT_I8042_DATA (0x60) and LAYOUT_PORT_I8042_CMD (0x64).
 *
 * Controller: status register, command byte (0x20/0x60), self-test
 * (0xAA -> 0x55), keyboard interface test (0xAB -> 0x00), port enable and
 * disable, output port (0xD0/0xD1; the A20 bit is stored only: KVM has
 * no A20 gate), pulse-output commands 0xF0-0xFF. Any request to drive the
 * reset line low (0xFE, or 0xD1 with bit 0 clear) calls reset_request.
 *
 * Keyboard: reset (0xFF -> 0xFA 0xAA), identify (0xF2 -> 0xFA 0xAB 0x83,
 * 0x41 when the controller translates), scan code set (0xF0), LEDs
 * (0xED), typematic (0xF3), enable/disable scanning (0xF4/0xF5), echo.
 *
 * There is no auxiliary (mouse) port: aux test 0xA9 reports a stuck clock
 * line, bytes for 0xD3/0xD4 are dropped, so OSes decide quickly that no
 * mouse exists (the DSDT should declare no PNP0F13 either).
 *
 * IRQ 1 is high while the output buffer holds data and command-byte bit 0
 * is set; each further queued byte gives a fresh edge after a read.
 * Locking: one mutex; reset_request is called without it. */
#ifndef KVMPC_HW_I8042_H
#define KVMPC_HW_I8042_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vm/bus.h"
#include "vm/irq.h"

#define I8042_QUEUE_SIZE 16

struct i8042_config {
    /* The guest pulsed the CPU reset line (from a vCPU thread). */
    void (*reset_request)(void *opaque);
    void *opaque;
};

struct i8042 {
    pthread_mutex_t lock;
    struct i8042_config cfg;
    struct irq_line *irq;
    uint8_t ccb;          /* controller command byte */
    uint8_t outport;      /* output port (bit 0 reset, bit 1 A20) */
    uint8_t pending_cmd;  /* controller command waiting for its data byte */
    bool last_was_cmd;    /* status bit 3: last write went to port 0x64 */
    uint8_t queue[I8042_QUEUE_SIZE]; /* output buffer and what waits */
    unsigned head, count;
    uint8_t last_read;    /* port 0x60 when the buffer is empty */
    /* the keyboard */
    uint8_t kbd_pending;  /* keyboard command waiting for its parameter */
    uint8_t kbd_set;      /* scan code set 1-3 */
    uint8_t kbd_leds;
    uint8_t kbd_last;     /* last byte sent, for 0xFE (resend) */
    bool kbd_scanning;
};

/* One range per port: register the same ops and opaque at
 * LAYOUT_PORT_I8042_DATA and at LAYOUT_PORT_I8042_CMD. */
extern const struct bus_ops i8042_data_ops;
extern const struct bus_ops i8042_cmd_ops;

int i8042_init(struct i8042 *c, const struct i8042_config *cfg,
               struct irq_line *irq);
void i8042_destroy(struct i8042 *c);
void i8042_reset(struct i8042 *c);

#endif

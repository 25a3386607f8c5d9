/* MC146818 real-time clock with 128 bytes of CMOS, at LAYOUT_PORT_RTC
 * (index port, bit 7 = NMI mask ignored) and LAYOUT_PORT_RTC + 1 (data).
 *
 * Time: the host wall clock plus an offset the guest changes by setting
 * the clock (with register B's SET bit, or by writing a time register
 * directly). Registers 0-9 and the century (0x32, aliased at 0x37) are
 * computed on read in the mode register B selects (BCD/binary, 12/24 h);
 * the day of week is derived from the date. The guest can set any time
 * from 1900 to 2199 (others are ignored). Register B's DSE and register
 * A's divider bits are stored but have no effect.
 *
 * Flags: UIP is set for the last 244 us of each second; PF, AF and UF are
 * latched lazily from the elapsed time at every clock-register access and
 * at timer expiry; register C clears them on read; IRQF and the IRQ line
 * follow (PF&PIE)|(AF&AIE)|(UF&UIE). The device arms rtc_timer_fd() only
 * for the next event that can raise an enabled interrupt, and not at all
 * while IRQF is already set (the guest must read C first), so a guest
 * that ignores its RTC costs nothing.
 *
 * Plain CMOS bytes are memory: reading them (SeaBIOS reads 0x0F on every
 * mode switch) touches no clock. Locking: one mutex per device. */
#ifndef KVMPC_HW_RTC_H
#define KVMPC_HW_RTC_H

#include <pthread.h>
#include <stdint.h>

#include "vm/bus.h"
#include "vm/irq.h"

struct rtc_config {
    uint64_t ram_size; /* guest RAM in bytes, for the memory-size bytes */
    unsigned ncpus;    /* CMOS 0x5F = ncpus - 1 */
    /* Host wall clock in ns since the epoch; NULL means CLOCK_REALTIME.
     * Tests pass a fake one. */
    int64_t (*clock_ns)(void *opaque);
    void *clock_opaque;
};

struct rtc {
    pthread_mutex_t lock;
    struct irq_line *irq;
    int64_t (*clock_ns)(void *opaque);
    void *clock_opaque;
    int timer_fd;
    uint8_t index;
    uint8_t cmos[128];   /* time bytes here are valid only while SET */
    int64_t offset_ns;   /* guest time = host clock + offset_ns */
    int64_t last_ns;     /* guest time up to which flags are latched */
    int64_t deadline_ns; /* guest time the timer is armed for, or -1 */
};

extern const struct bus_ops rtc_bus_ops; /* LAYOUT_PORT_RTC_LEN ports */

/* Fills the CMOS from cfg (memory size, CPU count, boot order) and starts
 * the clock at host time. Returns 0, or -1 (reported). */
int rtc_init(struct rtc *r, const struct rtc_config *cfg,
             struct irq_line *irq);
void rtc_destroy(struct rtc *r);
/* System reset: the RESET pin clears PIE/AIE/UIE/SQWE and the flags in
 * C; time and CMOS contents survive, as on battery-backed hardware. */
void rtc_reset(struct rtc *r);

/* A non-blocking CLOCK_MONOTONIC timerfd: when it is readable, call
 * rtc_timer_expired() from the I/O thread. */
int rtc_timer_fd(struct rtc *r);
void rtc_timer_expired(struct rtc *r);

#endif

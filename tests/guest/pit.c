/* PIT (i8254): channel 2 as a polled one-shot for delays and timeouts,
 * channel 0 as the periodic interrupt source of the IOAPIC test. */
#include "kit.h"

#define PIT_HZ 1193182u
#define PIT_CH0 0x40
#define PIT_CH2 0x42
#define PIT_CMD 0x43
#define PORT_B 0x61 /* bit 0: channel 2 gate, bit 1: speaker, bit 5: OUT2 */
#define PIT_MAX_CHUNK_US 50000u

/* One mode-0 countdown of at most 50 ms on channel 2. */
void pit_one_shot(uint32_t us)
{
    uint32_t count = (uint32_t)((uint64_t)us * PIT_HZ / 1000000u);
    uint8_t b = inb(PORT_B) & ~0x03;

    if (count < 2)
        count = 2;
    outb(PORT_B, b);             /* gate low, speaker off */
    outb(PIT_CMD, 0xB0);         /* channel 2, lo/hi byte, mode 0, binary */
    outb(PIT_CH2, (uint8_t)count);
    outb(PIT_CH2, (uint8_t)(count >> 8));
    outb(PORT_B, b | 0x01);      /* gate high: count down */
}

bool pit_one_shot_done(void)
{
    return inb(PORT_B) & 0x20;
}

void pit_delay_us(uint32_t us)
{
    while (us) {
        uint32_t chunk = us < PIT_MAX_CHUNK_US ? us : PIT_MAX_CHUNK_US;
        pit_one_shot(chunk);
        while (!pit_one_shot_done())
            cpu_relax();
        us -= chunk;
    }
}

bool pit_wait_ms(uint32_t ms, bool (*done)(void *), void *arg)
{
    for (uint32_t left = ms * 1000; left;) {
        uint32_t chunk = left < PIT_MAX_CHUNK_US ? left : PIT_MAX_CHUNK_US;
        pit_one_shot(chunk);
        while (!pit_one_shot_done())
            if (done(arg))
                return true;
        left -= chunk;
    }
    return done(arg);
}

void pit_start_periodic(uint32_t hz)
{
    uint32_t div = PIT_HZ / hz;
    outb(PIT_CMD, 0x34); /* channel 0, lo/hi byte, mode 2 (rate generator) */
    outb(PIT_CH0, (uint8_t)div);
    outb(PIT_CH0, (uint8_t)(div >> 8));
}

void pit_stop(void)
{
    /* Mode 0 with a count stops the periodic output after one edge. */
    outb(PIT_CMD, 0x30);
    outb(PIT_CH0, 0xFF);
    outb(PIT_CH0, 0xFF);
}

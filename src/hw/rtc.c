#include "hw/rtc.h"

#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "platform/layout.h"
#include "util.h"

#define NS_PER_SEC 1000000000LL
#define SECS_PER_DAY 86400LL
#define UIP_NS 244000LL /* UIP rises this long before each update */
/* Settable range, 1900-01-01 .. 2199-12-31: guest time in int64 ns then
 * never overflows. Settings outside it are ignored. */
#define MIN_SEC (-2208988800LL)
#define MAX_SEC 7258118399LL
/* deadline_ns value that makes rearm() program the timer whatever it
 * computes (after expiry, or when the guest moved the clock). */
#define DEADLINE_STALE (-2)

/* Clock registers and CMOS bytes with a meaning to us. */
enum {
    REG_SEC = 0x00,
    REG_SEC_ALARM = 0x01,
    REG_MIN = 0x02,
    REG_MIN_ALARM = 0x03,
    REG_HOUR = 0x04,
    REG_HOUR_ALARM = 0x05,
    REG_WDAY = 0x06,
    REG_MDAY = 0x07,
    REG_MONTH = 0x08,
    REG_YEAR = 0x09,
    REG_A = 0x0A,
    REG_B = 0x0B,
    REG_C = 0x0C,
    REG_D = 0x0D,
    CMOS_SHUTDOWN = 0x0F,
    CMOS_FLOPPY = 0x10,
    CMOS_EQUIPMENT = 0x14,
    CMOS_BASE_MEM = 0x15,   /* KiB below 640 KiB, 2 bytes */
    CMOS_EXT_MEM = 0x17,    /* KiB above 1 MiB, 2 bytes */
    CMOS_EXT_MEM2 = 0x30,   /* same, 2 bytes */
    CMOS_CENTURY = 0x32,
    CMOS_MEM_16M = 0x34,    /* 64 KiB units above 16 MiB, 2 bytes */
    CMOS_CENTURY2 = 0x37,   /* PS/2 location, aliased to 0x32 */
    CMOS_BOOT_FLAG1 = 0x38,
    CMOS_BOOT_ORDER = 0x3D,
    CMOS_MEM_4G = 0x5B,     /* 64 KiB units above 4 GiB, 3 bytes */
    CMOS_CPUS = 0x5F,       /* CPU count - 1 */
};

#define A_UIP 0x80
#define A_RATE 0x0F
#define B_SET 0x80
#define B_PIE 0x40
#define B_AIE 0x20
#define B_UIE 0x10
#define B_SQWE 0x08
#define B_BINARY 0x04
#define B_24H 0x02
#define C_IRQF 0x80
#define C_PF 0x40
#define C_AF 0x20
#define C_UF 0x10
#define D_VRT 0x80
#define ALARM_DONT_CARE 0xC0
#define HOUR_PM 0x80

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
    return a - floor_div(a, b) * b;
}

static int64_t host_realtime_ns(void *opaque)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static int64_t guest_now(const struct rtc *r)
{
    return r->clock_ns(r->clock_opaque) + r->offset_ns;
}

/* ---- Register encoding ------------------------------------------------- */

static uint8_t to_reg(const struct rtc *r, unsigned v)
{
    if (r->cmos[REG_B] & B_BINARY)
        return (uint8_t)v;
    return (uint8_t)((v / 10 % 10) << 4 | v % 10);
}

static unsigned from_reg(const struct rtc *r, uint8_t v)
{
    if (r->cmos[REG_B] & B_BINARY)
        return v;
    return (v >> 4) * 10u + (v & 0x0F);
}

static uint8_t hour_to_reg(const struct rtc *r, unsigned h)
{
    if (r->cmos[REG_B] & B_24H)
        return to_reg(r, h);
    unsigned h12 = h % 12 ? h % 12 : 12;
    return (uint8_t)(to_reg(r, h12) | (h >= 12 ? HOUR_PM : 0));
}

static unsigned hour_from_reg(const struct rtc *r, uint8_t v)
{
    if (r->cmos[REG_B] & B_24H)
        return from_reg(r, v);
    return from_reg(r, v & (uint8_t)~HOUR_PM) % 12 + (v & HOUR_PM ? 12 : 0);
}

/* The value of clock register idx at guest second sec. */
static uint8_t clock_reg(const struct rtc *r, unsigned idx, int64_t sec)
{
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return 0;
    unsigned year = (unsigned)tm.tm_year + 1900;
    switch (idx) {
    case REG_SEC:
        return to_reg(r, (unsigned)tm.tm_sec);
    case REG_MIN:
        return to_reg(r, (unsigned)tm.tm_min);
    case REG_HOUR:
        return hour_to_reg(r, (unsigned)tm.tm_hour);
    case REG_WDAY:
        return to_reg(r, (unsigned)tm.tm_wday + 1); /* Sunday = 1 */
    case REG_MDAY:
        return to_reg(r, (unsigned)tm.tm_mday);
    case REG_MONTH:
        return to_reg(r, (unsigned)tm.tm_mon + 1);
    case REG_YEAR:
        return to_reg(r, year % 100);
    default: /* century */
        return to_reg(r, year / 100 % 100);
    }
}

static bool is_clock_reg(unsigned idx)
{
    return (idx <= REG_YEAR && idx != REG_SEC_ALARM &&
            idx != REG_MIN_ALARM && idx != REG_HOUR_ALARM) ||
           idx == CMOS_CENTURY || idx == CMOS_CENTURY2;
}

static const uint8_t clock_regs[] = {REG_SEC,   REG_MIN,   REG_HOUR,
                                     REG_WDAY,  REG_MDAY,  REG_MONTH,
                                     REG_YEAR,  CMOS_CENTURY};

/* SET rises: the time registers stop and become plain storage. */
static void freeze_time(struct rtc *r, int64_t now)
{
    int64_t sec = floor_div(now, NS_PER_SEC);
    for (unsigned i = 0; i < ARRAY_SIZE(clock_regs); i++)
        r->cmos[clock_regs[i]] = clock_reg(r, clock_regs[i], sec);
}

/* The clock restarts from the stored registers (hostile values included:
 * timegm() normalises whatever they decode to). The phase within the
 * second is kept, so periodic ticks stay aligned. */
static void thaw_time(struct rtc *r, int64_t now)
{
    struct tm tm = {
        .tm_sec = (int)from_reg(r, r->cmos[REG_SEC]),
        .tm_min = (int)from_reg(r, r->cmos[REG_MIN]),
        .tm_hour = (int)hour_from_reg(r, r->cmos[REG_HOUR]),
        .tm_mday = (int)from_reg(r, r->cmos[REG_MDAY]),
        .tm_mon = (int)from_reg(r, r->cmos[REG_MONTH]) - 1,
        .tm_year = (int)(from_reg(r, r->cmos[CMOS_CENTURY]) * 100 +
                         from_reg(r, r->cmos[REG_YEAR])) - 1900,
    };
    errno = 0;
    time_t sec = timegm(&tm);
    if ((sec == (time_t)-1 && errno) || sec < MIN_SEC || sec > MAX_SEC)
        return;
    int64_t target = (int64_t)sec * NS_PER_SEC + floor_mod(now, NS_PER_SEC);
    r->offset_ns += target - now;
    r->last_ns = target; /* setting the clock is not an elapsed period */
    r->deadline_ns = DEADLINE_STALE;
}

/* ---- Flags and the timer ----------------------------------------------- */

/* Periodic interrupt frequency in Hz for the 32.768 kHz time base. */
static unsigned periodic_hz(const struct rtc *r)
{
    unsigned rs = r->cmos[REG_A] & A_RATE;
    if (rs == 0)
        return 0;
    return rs <= 2 ? 65536u >> (rs + 7) : 65536u >> rs;
}

static int64_t tick_index(int64_t t, unsigned hz)
{
    return floor_div(t, NS_PER_SEC) * hz +
           floor_mod(t, NS_PER_SEC) * hz / NS_PER_SEC;
}

static int64_t next_tick(int64_t t, unsigned hz)
{
    int64_t idx = tick_index(t, hz) + 1;
    int64_t frac = floor_mod(idx, hz);
    return floor_div(idx, hz) * NS_PER_SEC +
           (frac * NS_PER_SEC + hz - 1) / hz;
}

static bool alarm_matches(const struct rtc *r, int64_t sec)
{
    int64_t tod = floor_mod(sec, SECS_PER_DAY);
    uint8_t now[3] = {to_reg(r, (unsigned)(tod % 60)),
                      to_reg(r, (unsigned)(tod / 60 % 60)),
                      hour_to_reg(r, (unsigned)(tod / 3600))};
    static const uint8_t alarm_regs[3] = {REG_SEC_ALARM, REG_MIN_ALARM,
                                          REG_HOUR_ALARM};
    for (unsigned i = 0; i < 3; i++) {
        uint8_t a = r->cmos[alarm_regs[i]];
        if ((a & ALARM_DONT_CARE) != ALARM_DONT_CARE && a != now[i])
            return false;
    }
    return true;
}

/* Was there a second in (from, to] at which the alarm matched? Alarms
 * repeat daily at most, so one day of seconds decides. */
static bool alarm_in(const struct rtc *r, int64_t from, int64_t to)
{
    if (to - from > SECS_PER_DAY)
        from = to - SECS_PER_DAY;
    for (int64_t s = from + 1; s <= to; s++)
        if (alarm_matches(r, s))
            return true;
    return false;
}

/* Latches the flags for everything that happened since last_ns. */
static void sync_flags(struct rtc *r, int64_t now)
{
    int64_t last = r->last_ns;
    r->last_ns = now;
    if (now <= last)
        return; /* host clock stepped back: nothing elapsed */
    int64_t from = floor_div(last, NS_PER_SEC), to = floor_div(now, NS_PER_SEC);
    if (!(r->cmos[REG_B] & B_SET) && to > from) {
        r->cmos[REG_C] |= C_UF;
        if (alarm_in(r, from, to))
            r->cmos[REG_C] |= C_AF;
    }
    /* The divider keeps running while SET holds the updates. */
    unsigned hz = periodic_hz(r);
    if (hz && tick_index(now, hz) > tick_index(last, hz))
        r->cmos[REG_C] |= C_PF;
}

static void update_irq(struct rtc *r)
{
    uint8_t b = r->cmos[REG_B], c = r->cmos[REG_C];
    bool irqf = c & b & (C_PF | C_AF | C_UF); /* same bit positions */
    r->cmos[REG_C] = (uint8_t)(irqf ? c | C_IRQF : c & ~C_IRQF);
    irq_line_set(r->irq, irqf);
}

/* Guest time of the next event that could raise the line, or -1. */
static int64_t next_deadline(const struct rtc *r, int64_t now)
{
    uint8_t b = r->cmos[REG_B];
    int64_t next = -1;
    if (r->cmos[REG_C] & C_IRQF)
        return -1; /* nothing changes the line until C is read */
    unsigned hz = periodic_hz(r);
    if ((b & B_PIE) && hz)
        next = next_tick(now, hz);
    if ((b & (B_UIE | B_AIE)) && !(b & B_SET)) {
        int64_t update = (floor_div(now, NS_PER_SEC) + 1) * NS_PER_SEC;
        if (next < 0 || update < next)
            next = update;
    }
    return next;
}

static void rearm(struct rtc *r, int64_t now)
{
    int64_t deadline = next_deadline(r, now);
    if (deadline == r->deadline_ns)
        return;
    r->deadline_ns = deadline;
    struct itimerspec its = {0};
    if (deadline >= 0) {
        int64_t delay = deadline > now ? deadline - now : 1;
        its.it_value.tv_sec = delay / NS_PER_SEC;
        its.it_value.tv_nsec = delay % NS_PER_SEC;
    }
    if (r->timer_fd >= 0)
        timerfd_settime(r->timer_fd, 0, &its, NULL);
}

/* Brings flags, line and timer up to date; with the lock held. */
static void refresh(struct rtc *r, int64_t now)
{
    sync_flags(r, now);
    update_irq(r);
    rearm(r, now);
}

/* ---- Register access --------------------------------------------------- */

static uint8_t read_clock_reg(struct rtc *r, unsigned idx, int64_t now)
{
    if (idx == CMOS_CENTURY2)
        idx = CMOS_CENTURY;
    if (r->cmos[REG_B] & B_SET)
        return r->cmos[idx];
    return clock_reg(r, idx, floor_div(now, NS_PER_SEC));
}

static uint8_t read_reg(struct rtc *r, unsigned idx)
{
    if (idx > REG_D && !is_clock_reg(idx))
        return r->cmos[idx]; /* plain CMOS: no clock work */
    int64_t now = guest_now(r);
    sync_flags(r, now);
    uint8_t v;
    if (is_clock_reg(idx)) {
        v = read_clock_reg(r, idx, now);
    } else if (idx == REG_A) {
        bool uip = !(r->cmos[REG_B] & B_SET) &&
                   floor_mod(now, NS_PER_SEC) >= NS_PER_SEC - UIP_NS;
        v = (uint8_t)(r->cmos[REG_A] | (uip ? A_UIP : 0));
    } else if (idx == REG_C) {
        update_irq(r);
        v = r->cmos[REG_C];
        r->cmos[REG_C] = 0;
    } else if (idx == REG_D) {
        v = D_VRT;
    } else {
        v = r->cmos[idx];
    }
    update_irq(r);
    rearm(r, now);
    return v;
}

static void write_b(struct rtc *r, uint8_t val, int64_t now)
{
    uint8_t old = r->cmos[REG_B];
    if (val & B_SET)
        val &= (uint8_t)~B_UIE; /* SET clears UIE */
    if ((old & B_SET) && !(val & B_SET))
        thaw_time(r, now); /* decoded in the mode they were written in */
    r->cmos[REG_B] = val;
    if (!(old & B_SET) && (val & B_SET))
        freeze_time(r, now);
}

/* A time register written while the clock runs sets that field now. */
static void write_clock_reg(struct rtc *r, unsigned idx, uint8_t val,
                            int64_t now)
{
    if (idx == CMOS_CENTURY2)
        idx = CMOS_CENTURY;
    if (r->cmos[REG_B] & B_SET) {
        r->cmos[idx] = val;
        return;
    }
    freeze_time(r, now);
    r->cmos[idx] = val;
    thaw_time(r, now);
}

static void write_reg(struct rtc *r, unsigned idx, uint8_t val)
{
    if (idx > REG_D && !is_clock_reg(idx)) {
        r->cmos[idx] = val;
        return;
    }
    int64_t now = guest_now(r);
    sync_flags(r, now);
    if (is_clock_reg(idx))
        write_clock_reg(r, idx, val, now);
    else if (idx == REG_A)
        r->cmos[REG_A] = val & (uint8_t)~A_UIP;
    else if (idx == REG_B)
        write_b(r, val, now);
    else if (idx != REG_C && idx != REG_D) /* C and D are read-only */
        r->cmos[idx] = val;
    now = guest_now(r); /* the offset may have moved */
    update_irq(r);
    rearm(r, now);
}

static void rtc_bus_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct rtc *r = opaque;
    uint8_t *out = data;
    pthread_mutex_lock(&r->lock);
    for (unsigned i = 0; i < len; i++)
        out[i] = off + i == 1 ? read_reg(r, r->index) : 0xFF;
    pthread_mutex_unlock(&r->lock);
}

static void rtc_bus_write(void *opaque, uint64_t off, const void *data,
                          unsigned len)
{
    struct rtc *r = opaque;
    const uint8_t *in = data;
    pthread_mutex_lock(&r->lock);
    for (unsigned i = 0; i < len; i++) {
        if (off + i == 0)
            r->index = in[i] & 0x7F; /* bit 7 masks NMI: no meaning here */
        else if (off + i == 1)
            write_reg(r, r->index, in[i]);
    }
    pthread_mutex_unlock(&r->lock);
}

const struct bus_ops rtc_bus_ops = {
    .read = rtc_bus_read,
    .write = rtc_bus_write,
};

/* ---- Setup ------------------------------------------------------------- */

static void put_cmos16(uint8_t *cmos, unsigned idx, uint64_t v)
{
    v = MIN(v, 0xFFFFu);
    cmos[idx] = (uint8_t)v;
    cmos[idx + 1] = (uint8_t)(v >> 8);
}

/* The memory-size bytes firmware falls back on without etc/e820. */
static void init_memory_bytes(uint8_t *cmos, uint64_t ram)
{
    uint64_t low = layout_lowmem(ram), high = layout_highmem(ram);
    put_cmos16(cmos, CMOS_BASE_MEM, LAYOUT_LOW_RAM_END / KiB);
    uint64_t ext_kib = low > LAYOUT_HIGH_MEM_START
                           ? (low - LAYOUT_HIGH_MEM_START) / KiB : 0;
    put_cmos16(cmos, CMOS_EXT_MEM, ext_kib);
    put_cmos16(cmos, CMOS_EXT_MEM2, ext_kib);
    put_cmos16(cmos, CMOS_MEM_16M,
               low > 16 * MiB ? (low - 16 * MiB) / (64 * KiB) : 0);
    uint64_t high_units = MIN(high / (64 * KiB), 0xFFFFFFu);
    cmos[CMOS_MEM_4G] = (uint8_t)high_units;
    cmos[CMOS_MEM_4G + 1] = (uint8_t)(high_units >> 8);
    cmos[CMOS_MEM_4G + 2] = (uint8_t)(high_units >> 16);
}

static void init_cmos(uint8_t *cmos, const struct rtc_config *cfg)
{
    /* Every byte not set here reads 0: 0xFF in 0x5F would make firmware
     * wait for 256 CPUs, non-zero in 0x10 would announce floppies. */
    memset(cmos, 0, 128);
    cmos[REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz periodic rate */
    cmos[REG_B] = B_24H;
    cmos[CMOS_SHUTDOWN] = 0;
    cmos[CMOS_FLOPPY] = 0;
    cmos[CMOS_EQUIPMENT] = 0x02; /* FPU; no floppy, no PS/2 mouse */
    init_memory_bytes(cmos, cfg->ram_size);
    /* Hard disk before every other class, with or without floppies;
     * a fw_cfg "bootorder" file still takes precedence. */
    cmos[CMOS_BOOT_ORDER] = 0x02;
    cmos[CMOS_BOOT_FLAG1] = 0x00;
    unsigned cpus = cfg->ncpus ? cfg->ncpus : 1;
    cmos[CMOS_CPUS] = (uint8_t)MIN(cpus - 1, 0xFFu);
}

int rtc_init(struct rtc *r, const struct rtc_config *cfg,
             struct irq_line *irq)
{
    memset(r, 0, sizeof(*r));
    r->irq = irq;
    r->clock_ns = cfg->clock_ns ? cfg->clock_ns : host_realtime_ns;
    r->clock_opaque = cfg->clock_opaque;
    r->deadline_ns = -1;
    init_cmos(r->cmos, cfg);
    r->last_ns = guest_now(r);
    r->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (r->timer_fd < 0) {
        report_error("cannot create the RTC timer: %s", strerror(errno));
        return -1;
    }
    if (pthread_mutex_init(&r->lock, NULL)) {
        report_error("cannot create the RTC lock");
        close(r->timer_fd);
        return -1;
    }
    return 0;
}

void rtc_destroy(struct rtc *r)
{
    close(r->timer_fd);
    r->timer_fd = -1;
    pthread_mutex_destroy(&r->lock);
}

void rtc_reset(struct rtc *r)
{
    pthread_mutex_lock(&r->lock);
    int64_t now = guest_now(r);
    sync_flags(r, now);
    r->cmos[REG_B] &= (uint8_t)~(B_PIE | B_AIE | B_UIE | B_SQWE);
    r->cmos[REG_C] = 0;
    refresh(r, now);
    pthread_mutex_unlock(&r->lock);
}

int rtc_timer_fd(struct rtc *r)
{
    return r->timer_fd;
}

void rtc_timer_expired(struct rtc *r)
{
    uint64_t expirations;
    /* Non-blocking: nothing to drain when called early (or by tests). */
    if (read(r->timer_fd, &expirations, sizeof(expirations)) < 0 &&
        errno != EAGAIN)
        return;
    pthread_mutex_lock(&r->lock);
    r->deadline_ns = DEADLINE_STALE; /* one-shot: it is disarmed now */
    refresh(r, guest_now(r));
    pthread_mutex_unlock(&r->lock);
}

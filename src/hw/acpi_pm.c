#include "hw/acpi_pm.h"

#include <string.h>
#include <time.h>

#include "platform/acpi.h"
#include "platform/layout.h"
#include "util.h"

/* Register offsets inside the block. */
#define OFF_PM1_STS (LAYOUT_PORT_PM1A_EVT - LAYOUT_PORT_PM_BASE)
#define OFF_PM1_EN (OFF_PM1_STS + 2)
#define OFF_PM1_CNT (LAYOUT_PORT_PM1A_CNT - LAYOUT_PORT_PM_BASE)
#define OFF_PM_TMR (LAYOUT_PORT_PM_TMR - LAYOUT_PORT_PM_BASE)
#define OFF_GPE0_STS (LAYOUT_PORT_GPE0 - LAYOUT_PORT_PM_BASE)
#define OFF_GPE0_EN (OFF_GPE0_STS + LAYOUT_PORT_GPE0_LEN / 2)

#define TMR_STS 0x0001
#define BM_STS 0x0010
#define GBL_STS 0x0020
#define PWRBTN_STS 0x0100
#define SLPBTN_STS 0x0200
#define RTC_STS 0x0400
#define WAK_STS 0x8000
#define PM1_STS_BITS (TMR_STS | BM_STS | GBL_STS | PWRBTN_STS | SLPBTN_STS | \
                      RTC_STS | WAK_STS)
/* Enable bits sit at the positions of the status bits they gate. */
#define PM1_EN_BITS (TMR_STS | GBL_STS | PWRBTN_STS | SLPBTN_STS | RTC_STS)

#define SCI_EN 0x0001
#define BM_RLD 0x0002
#define SLP_TYP_SHIFT 10
#define SLP_TYP_MASK 0x1C00
#define SLP_EN 0x2000
#define PM1_CNT_STORED (BM_RLD | SLP_TYP_MASK) /* GBL_RLS, SLP_EN: write-only */

#define PM_TIMER_HZ 3579545ULL
#define PM_TIMER_MASK 0xFFFFFFu
#define NS_PER_SEC 1000000000ULL

static int64_t host_monotonic_ns(void *opaque)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * (int64_t)NS_PER_SEC + ts.tv_nsec;
}

static uint64_t timer_ticks(const struct acpi_pm *pm)
{
    int64_t ns = pm->cfg.clock_ns(pm->cfg.clock_opaque) - pm->timer_start_ns;
    uint64_t n = ns > 0 ? (uint64_t)ns : 0;
    return n / NS_PER_SEC * PM_TIMER_HZ + n % NS_PER_SEC * PM_TIMER_HZ /
                                              NS_PER_SEC;
}

/* TMR_STS: set each time bit 23 of the counter has toggled. */
static uint32_t sample_timer(struct acpi_pm *pm)
{
    uint64_t ticks = timer_ticks(pm);
    if (ticks >> 23 != pm->timer_half_periods) {
        pm->timer_half_periods = ticks >> 23;
        pm->pm1_sts |= TMR_STS;
    }
    return (uint32_t)ticks & PM_TIMER_MASK;
}

static void update_sci(struct acpi_pm *pm)
{
    bool level = (pm->pm1_sts & pm->pm1_en & PM1_EN_BITS) ||
                 (pm->gpe0_sts & pm->gpe0_en);
    irq_line_set(pm->sci, level);
}

/* The value of the register starting at offset reg; tmr is the timer
 * sampled once for the whole access. */
static uint32_t read_reg(const struct acpi_pm *pm, unsigned reg, uint32_t tmr)
{
    switch (reg) {
    case OFF_PM1_STS: return pm->pm1_sts;
    case OFF_PM1_EN: return pm->pm1_en;
    case OFF_PM1_CNT: return pm->pm1_cnt | SCI_EN;
    case OFF_PM_TMR: return tmr;
    case OFF_GPE0_STS: return pm->gpe0_sts;
    case OFF_GPE0_EN: return pm->gpe0_en;
    default: return 0;
    }
}

static unsigned reg_of(unsigned off)
{
    if (off >= OFF_PM_TMR && off < OFF_PM_TMR + LAYOUT_PORT_PM_TMR_LEN)
        return OFF_PM_TMR;
    return off & ~1u;
}


/* Returns true when the write asked for power-off. */
static bool write_cnt(struct acpi_pm *pm, uint16_t val, uint16_t mask)
{
    uint16_t cnt = (uint16_t)((pm->pm1_cnt & ~mask) | (val & mask));
    pm->pm1_cnt = cnt & PM1_CNT_STORED;
    if (!(val & mask & SLP_EN))
        return false;
    unsigned typ = (cnt & SLP_TYP_MASK) >> SLP_TYP_SHIFT;
    return typ == ACPI_S5_SLP_TYP; /* S1-S4 are not offered */
}

/* val/mask: the bytes of a 16-bit register the access covered. */
static bool write_reg16(struct acpi_pm *pm, unsigned reg, uint16_t val,
                        uint16_t mask)
{
    uint16_t set = val & mask;
    switch (reg) {
    case OFF_PM1_STS:
        pm->pm1_sts &= (uint16_t)~(set & PM1_STS_BITS);
        break;
    case OFF_PM1_EN:
        pm->pm1_en = (uint16_t)(((pm->pm1_en & ~mask) | set) & PM1_EN_BITS);
        break;
    case OFF_PM1_CNT:
        return write_cnt(pm, val, mask);
    case OFF_GPE0_STS:
        pm->gpe0_sts &= (uint16_t)~set;
        break;
    case OFF_GPE0_EN:
        pm->gpe0_en = (uint16_t)((pm->gpe0_en & ~mask) | set);
        break;
    default: /* the timer is read-only; the rest of the block is empty */
        break;
    }
    return false;
}

static void pm_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct acpi_pm *pm = opaque;
    uint8_t *out = data;
    unsigned reg = ~0u;
    uint32_t val = 0;
    pthread_mutex_lock(&pm->lock);
    uint32_t tmr = sample_timer(pm); /* also latches TMR_STS */
    for (unsigned i = 0; i < len; i++) {
        if (off + i >= LAYOUT_PORT_PM_LEN) {
            out[i] = 0;
            continue;
        }
        unsigned o = (unsigned)(off + i);
        if (reg_of(o) != reg) {
            reg = reg_of(o);
            val = read_reg(pm, reg, tmr);
        }
        out[i] = (uint8_t)(val >> (8 * (o - reg)));
    }
    update_sci(pm); /* TMR_STS may have been latched */
    pthread_mutex_unlock(&pm->lock);
}

static void pm_write(void *opaque, uint64_t off, const void *data,
                     unsigned len)
{
    struct acpi_pm *pm = opaque;
    const uint8_t *in = data;
    bool poweroff = false;
    pthread_mutex_lock(&pm->lock);
    sample_timer(pm); /* a TMR_STS clear must not be undone by a late latch */
    /* Group the bytes by 16-bit register, then apply each once. */
    for (unsigned i = 0; i < len && off + i < LAYOUT_PORT_PM_LEN;) {
        unsigned reg = (unsigned)(off + i) & ~1u;
        uint16_t val = 0, mask = 0;
        for (; i < len && ((off + i) & ~1u) == reg; i++) {
            unsigned shift = 8 * ((unsigned)(off + i) - reg);
            val |= (uint16_t)(in[i] << shift);
            mask |= (uint16_t)(0xFF << shift);
        }
        poweroff |= write_reg16(pm, reg, val, mask);
    }
    update_sci(pm);
    pthread_mutex_unlock(&pm->lock);
    if (poweroff && pm->cfg.poweroff_request)
        pm->cfg.poweroff_request(pm->cfg.opaque);
}

const struct bus_ops acpi_pm_bus_ops = {.read = pm_read, .write = pm_write};

int acpi_pm_init(struct acpi_pm *pm, const struct acpi_pm_config *cfg,
                 struct irq_line *sci)
{
    memset(pm, 0, sizeof(*pm));
    if (pthread_mutex_init(&pm->lock, NULL)) {
        report_error("cannot create the ACPI PM lock");
        return -1;
    }
    if (cfg)
        pm->cfg = *cfg;
    if (!pm->cfg.clock_ns)
        pm->cfg.clock_ns = host_monotonic_ns;
    pm->sci = sci;
    pm->timer_start_ns = pm->cfg.clock_ns(pm->cfg.clock_opaque);
    update_sci(pm);
    return 0;
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
    pthread_mutex_destroy(&pm->lock);
}

void acpi_pm_reset(struct acpi_pm *pm)
{
    pthread_mutex_lock(&pm->lock);
    pm->pm1_sts = pm->pm1_en = pm->pm1_cnt = 0;
    pm->gpe0_sts = pm->gpe0_en = 0;
    pm->timer_half_periods = timer_ticks(pm) >> 23;
    update_sci(pm);
    pthread_mutex_unlock(&pm->lock);
}

void acpi_pm_power_button(struct acpi_pm *pm)
{
    pthread_mutex_lock(&pm->lock);
    pm->pm1_sts |= PWRBTN_STS;
    update_sci(pm);
    pthread_mutex_unlock(&pm->lock);
}

void acpi_pm_raise_gpe(struct acpi_pm *pm, unsigned bit)
{
    if (bit >= 16)
        return;
    pthread_mutex_lock(&pm->lock);
    pm->gpe0_sts |= (uint16_t)(1u << bit);
    update_sci(pm);
    pthread_mutex_unlock(&pm->lock);
}

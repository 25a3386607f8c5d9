#include "hw/serial.h"

#include <string.h>

#include "util.h"

/* Register offsets. With LCR.DLAB set, 0 and 1 are the divisor latch. */
enum {
    REG_RBR_THR = 0,
    REG_IER = 1,
    REG_IIR_FCR = 2,
    REG_LCR = 3,
    REG_MCR = 4,
    REG_LSR = 5,
    REG_MSR = 6,
    REG_SCR = 7,
};

#define IER_RDA 0x01
#define IER_THRE 0x02
#define IER_RLS 0x04
#define IER_MSI 0x08
#define IER_MASK 0x0F /* the upper nibble reads 0 on a 16550A */

#define IIR_MSI 0x00
#define IIR_NONE 0x01
#define IIR_THRE 0x02
#define IIR_RDA 0x04
#define IIR_RLS 0x06
#define IIR_TIMEOUT 0x0C
#define IIR_FIFO_ON 0xC0

#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define FCR_KEPT 0xC9 /* trigger level, DMA mode, enable */

#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1F

#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_DELTAS 0x0F
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80
/* What the far end presents when not in loopback: a terminal that is
 * present and always ready (no hardware flow control stalls). */
#define MSR_LINES_EXTERNAL (MSR_CTS | MSR_DSR | MSR_DCD)

static bool fifo_enabled(const struct serial *s)
{
    return s->fcr & FCR_ENABLE;
}

static unsigned rx_capacity(const struct serial *s)
{
    return fifo_enabled(s) ? SERIAL_FIFO_SIZE : 1;
}

static unsigned rx_trigger(const struct serial *s)
{
    static const unsigned levels[4] = {1, 4, 8, 14};
    return fifo_enabled(s) ? levels[s->fcr >> 6] : 1;
}

static bool rx_push(struct serial *s, uint8_t b)
{
    if (s->rx.count >= rx_capacity(s))
        return false;
    s->rx.buf[(s->rx.head + s->rx.count) % SERIAL_FIFO_SIZE] = b;
    s->rx.count++;
    return true;
}

static uint8_t rx_pop(struct serial *s)
{
    if (s->rx.count == 0)
        return s->last_rx;
    s->last_rx = s->rx.buf[s->rx.head];
    s->rx.head = (s->rx.head + 1) % SERIAL_FIFO_SIZE;
    s->rx.count--;
    return s->last_rx;
}

static void rx_clear(struct serial *s)
{
    s->rx.head = 0;
    s->rx.count = 0;
}

/* The highest-priority pending interrupt, as IIR bits 3:0. */
static uint8_t pending_id(const struct serial *s)
{
    if ((s->ier & IER_RLS) && s->lsr_errors)
        return IIR_RLS;
    if ((s->ier & IER_RDA) && s->rx.count)
        return s->rx.count >= rx_trigger(s) ? IIR_RDA : IIR_TIMEOUT;
    if ((s->ier & IER_THRE) && s->thre_pending)
        return IIR_THRE;
    if ((s->ier & IER_MSI) && (s->msr & MSR_DELTAS))
        return IIR_MSI;
    return IIR_NONE;
}

static void update_irq(struct serial *s)
{
    bool wired = (s->mcr & (MCR_OUT2 | MCR_LOOP)) == MCR_OUT2;
    irq_line_set(s->irq, wired && pending_id(s) != IIR_NONE);
}

/* Recomputes the modem status lines and latches their deltas. */
static void update_msr(struct serial *s)
{
    uint8_t lines = MSR_LINES_EXTERNAL;
    if (s->mcr & MCR_LOOP) {
        lines = 0;
        if (s->mcr & MCR_RTS)
            lines |= MSR_CTS;
        if (s->mcr & MCR_DTR)
            lines |= MSR_DSR;
        if (s->mcr & MCR_OUT1)
            lines |= MSR_RI;
        if (s->mcr & MCR_OUT2)
            lines |= MSR_DCD;
    }
    uint8_t old = s->msr & 0xF0, changed = old ^ lines, deltas = 0;
    if (changed & MSR_CTS)
        deltas |= MSR_DCTS;
    if (changed & MSR_DSR)
        deltas |= MSR_DDSR;
    if ((old & MSR_RI) && !(lines & MSR_RI))
        deltas |= MSR_TERI;
    if (changed & MSR_DCD)
        deltas |= MSR_DDCD;
    s->msr = lines | ((s->msr | deltas) & MSR_DELTAS);
}

static void transmit(struct serial *s, uint8_t b)
{
    if (s->mcr & MCR_LOOP) {
        if (!rx_push(s, b))
            s->lsr_errors |= LSR_OE;
    } else if (s->cfg.write) {
        s->cfg.write(s->cfg.opaque, &b, 1);
    }
    /* The byte left at once: THR is empty again and says so. */
    s->thre_pending = true;
}

static void write_fcr(struct serial *s, uint8_t val)
{
    if ((val ^ s->fcr) & FCR_ENABLE)
        rx_clear(s); /* switching FIFO mode resets the FIFOs */
    if (!(val & FCR_ENABLE)) {
        s->fcr = 0;
        return;
    }
    if (val & FCR_CLEAR_RX)
        rx_clear(s);
    s->fcr = val & FCR_KEPT;
}

static void write_ier(struct serial *s, uint8_t val)
{
    uint8_t old = s->ier;
    s->ier = val & IER_MASK;
    /* Enabling the THRE interrupt while THR is empty raises it at once;
     * Linux's probe and SeaBIOS's detection both depend on that. */
    if ((s->ier & IER_THRE) && !(old & IER_THRE))
        s->thre_pending = true;
}

static void write_mcr(struct serial *s, uint8_t val)
{
    s->mcr = val & MCR_MASK;
    update_msr(s);
}

static void write_reg(struct serial *s, unsigned reg, uint8_t val)
{
    bool dlab = s->lcr & LCR_DLAB;
    switch (reg) {
    case REG_RBR_THR:
        if (dlab)
            s->divisor = (uint16_t)((s->divisor & 0xFF00) | val);
        else
            transmit(s, val);
        break;
    case REG_IER:
        if (dlab)
            s->divisor = (uint16_t)((s->divisor & 0x00FF) | val << 8);
        else
            write_ier(s, val);
        break;
    case REG_IIR_FCR:
        write_fcr(s, val);
        break;
    case REG_LCR:
        s->lcr = val;
        break;
    case REG_MCR:
        write_mcr(s, val);
        break;
    case REG_SCR:
        s->scr = val;
        break;
    default: /* LSR and MSR are read-only */
        break;
    }
    update_irq(s);
}

static uint8_t read_iir(struct serial *s)
{
    uint8_t id = pending_id(s);
    if (id == IIR_THRE)
        s->thre_pending = false; /* reading IIR acknowledges THRE */
    return (uint8_t)(id | (fifo_enabled(s) ? IIR_FIFO_ON : 0));
}

static uint8_t read_lsr(struct serial *s)
{
    uint8_t v = (uint8_t)(s->lsr_errors | LSR_THRE | LSR_TEMT |
                          (s->rx.count ? LSR_DR : 0));
    s->lsr_errors = 0;
    return v;
}

static uint8_t read_msr(struct serial *s)
{
    uint8_t v = s->msr;
    s->msr &= (uint8_t)~MSR_DELTAS;
    return v;
}

static uint8_t read_reg(struct serial *s, unsigned reg)
{
    bool dlab = s->lcr & LCR_DLAB;
    uint8_t v = 0;
    switch (reg) {
    case REG_RBR_THR:
        v = dlab ? (uint8_t)s->divisor : rx_pop(s);
        break;
    case REG_IER:
        v = dlab ? (uint8_t)(s->divisor >> 8) : s->ier;
        break;
    case REG_IIR_FCR:
        v = read_iir(s);
        break;
    case REG_LCR:
        v = s->lcr;
        break;
    case REG_MCR:
        v = s->mcr;
        break;
    case REG_LSR:
        v = read_lsr(s);
        break;
    case REG_MSR:
        v = read_msr(s);
        break;
    case REG_SCR:
        v = s->scr;
        break;
    }
    update_irq(s);
    return v;
}

/* With the lock held: whether a refused writer should be told now. */
static bool take_rx_ready(struct serial *s)
{
    if (!s->rx_blocked || (s->mcr & MCR_LOOP) ||
        s->rx.count >= rx_capacity(s))
        return false;
    s->rx_blocked = false;
    return true;
}

static void notify_rx_ready(struct serial *s)
{
    if (s->cfg.rx_ready)
        s->cfg.rx_ready(s->cfg.opaque);
}

/* Wider accesses are taken as consecutive byte accesses. */
static void serial_bus_read(void *opaque, uint64_t off, void *data,
                            unsigned len)
{
    struct serial *s = opaque;
    uint8_t *out = data;
    pthread_mutex_lock(&s->lock);
    for (unsigned i = 0; i < len; i++)
        out[i] = off + i < 8 ? read_reg(s, (unsigned)(off + i)) : 0xFF;
    bool notify = take_rx_ready(s);
    pthread_mutex_unlock(&s->lock);
    if (notify)
        notify_rx_ready(s);
}

static void serial_bus_write(void *opaque, uint64_t off, const void *data,
                             unsigned len)
{
    struct serial *s = opaque;
    const uint8_t *in = data;
    pthread_mutex_lock(&s->lock);
    for (unsigned i = 0; i < len && off + i < 8; i++)
        write_reg(s, (unsigned)(off + i), in[i]);
    bool notify = take_rx_ready(s);
    pthread_mutex_unlock(&s->lock);
    if (notify)
        notify_rx_ready(s);
}

const struct bus_ops serial_bus_ops = {
    .read = serial_bus_read,
    .write = serial_bus_write,
};

static void reset_locked(struct serial *s)
{
    s->ier = 0;
    s->lcr = 0;
    s->mcr = 0;
    s->scr = 0;
    s->fcr = 0;
    s->lsr_errors = 0;
    s->last_rx = 0;
    s->divisor = 12; /* 9600 baud; the value is only stored */
    s->thre_pending = false;
    rx_clear(s);
    s->msr = MSR_LINES_EXTERNAL;
    update_irq(s);
}

int serial_init(struct serial *s, const struct serial_config *cfg,
                struct irq_line *irq)
{
    memset(s, 0, sizeof(*s));
    if (pthread_mutex_init(&s->lock, NULL)) {
        report_error("cannot create the UART lock");
        return -1;
    }
    if (cfg)
        s->cfg = *cfg;
    s->irq = irq;
    reset_locked(s);
    return 0;
}

void serial_destroy(struct serial *s)
{
    pthread_mutex_destroy(&s->lock);
}

void serial_reset(struct serial *s)
{
    pthread_mutex_lock(&s->lock);
    reset_locked(s);
    bool notify = take_rx_ready(s);
    pthread_mutex_unlock(&s->lock);
    if (notify)
        notify_rx_ready(s);
}

size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len)
{
    size_t n = 0;
    pthread_mutex_lock(&s->lock);
    /* In loopback the receiver listens to the transmitter only; the host's
     * bytes wait instead of being lost. */
    if (!(s->mcr & MCR_LOOP))
        while (n < len && rx_push(s, buf[n]))
            n++;
    if (n < len)
        s->rx_blocked = true;
    update_irq(s);
    pthread_mutex_unlock(&s->lock);
    return n;
}

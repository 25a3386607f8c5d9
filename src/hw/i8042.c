#include "hw/i8042.h"

#include <string.h>

#include "util.h"

#define STS_OBF 0x01
#define STS_SYS 0x04
#define STS_CMD 0x08
#define STS_UNLOCKED 0x10 /* keyboard lock switch open */

#define CCB_KBDINT 0x01
#define CCB_SYS 0x04
#define CCB_KBDDIS 0x10
#define CCB_AUXDIS 0x20
#define CCB_XLATE 0x40
/* What firmware leaves behind: translated keyboard with interrupts, no
 * mouse. Direct-boot guests find it like that too. */
#define CCB_POWER_ON (CCB_XLATE | CCB_AUXDIS | CCB_KBDINT)

#define OUTPORT_RESET 0x01 /* active low: 0 holds the CPU in reset */
#define OUTPORT_A20 0x02
#define OUTPORT_POWER_ON (OUTPORT_RESET | OUTPORT_A20)

enum {
    CMD_READ_CCB = 0x20,
    CMD_WRITE_CCB = 0x60,
    CMD_AUX_DISABLE = 0xA7,
    CMD_AUX_ENABLE = 0xA8,
    CMD_AUX_TEST = 0xA9,
    CMD_SELF_TEST = 0xAA,
    CMD_KBD_TEST = 0xAB,
    CMD_KBD_DISABLE = 0xAD,
    CMD_KBD_ENABLE = 0xAE,
    CMD_READ_INPORT = 0xC0,
    CMD_READ_OUTPORT = 0xD0,
    CMD_WRITE_OUTPORT = 0xD1,
    CMD_WRITE_KBD_OBUF = 0xD2,
    CMD_WRITE_AUX_OBUF = 0xD3,
    CMD_WRITE_AUX = 0xD4,
    CMD_A20_OFF = 0xDD,
    CMD_A20_ON = 0xDF,
    CMD_READ_TEST = 0xE0,
    CMD_PULSE_FIRST = 0xF0,
};

#define SELF_TEST_OK 0x55
#define AUX_CLOCK_STUCK_HIGH 0x02

enum {
    KBD_SET_LEDS = 0xED,
    KBD_ECHO = 0xEE,
    KBD_SCAN_SET = 0xF0,
    KBD_IDENTIFY = 0xF2,
    KBD_TYPEMATIC = 0xF3,
    KBD_ENABLE = 0xF4,
    KBD_DISABLE = 0xF5,
    KBD_DEFAULTS = 0xF6,
    KBD_SET3_LAST = 0xFD,
    KBD_RESEND = 0xFE,
    KBD_RESET = 0xFF,
};

#define KBD_ACK 0xFA
#define KBD_BAT_OK 0xAA
#define KBD_NAK 0xFE
#define KBD_ID1 0xAB
#define KBD_ID2 0x83

/* ---- Output buffer and IRQ --------------------------------------------- */

static void update_irq(struct i8042 *c)
{
    irq_line_set(c->irq, c->count && (c->ccb & CCB_KBDINT));
}

static void queue_byte(struct i8042 *c, uint8_t b)
{
    if (c->count == I8042_QUEUE_SIZE)
        return; /* a guest that never reads loses the newest bytes */
    c->queue[(c->head + c->count) % I8042_QUEUE_SIZE] = b;
    c->count++;
}

static uint8_t read_data(struct i8042 *c)
{
    if (c->count) {
        c->last_read = c->queue[c->head];
        c->head = (c->head + 1) % I8042_QUEUE_SIZE;
        c->count--;
        /* Drop the line so that the next byte is a new edge. */
        irq_line_set(c->irq, 0);
    }
    return c->last_read;
}

static uint8_t read_status(const struct i8042 *c)
{
    uint8_t v = STS_UNLOCKED;
    if (c->count)
        v |= STS_OBF;
    if (c->ccb & CCB_SYS)
        v |= STS_SYS;
    if (c->last_was_cmd)
        v |= STS_CMD;
    return v;
}

/* ---- Keyboard ---------------------------------------------------------- */

/* The few keyboard replies below 0x80 that the controller's set 2 -> set
 * 1 translation changes. */
static uint8_t translate(const struct i8042 *c, uint8_t b)
{
    if (!(c->ccb & CCB_XLATE))
        return b;
    switch (b) {
    case 0x01: return 0x43;
    case 0x02: return 0x41;
    case 0x03: return 0x3F;
    case 0x83: return 0x41;
    default: return b;
    }
}

static void kbd_send(struct i8042 *c, uint8_t b)
{
    c->kbd_last = b;
    queue_byte(c, translate(c, b));
}

static void kbd_defaults(struct i8042 *c)
{
    c->kbd_set = 2;
    c->kbd_leds = 0;
    c->kbd_pending = 0;
}

static void kbd_parameter(struct i8042 *c, uint8_t cmd, uint8_t val)
{
    if (cmd == KBD_SCAN_SET) {
        if (val > 3) {
            kbd_send(c, KBD_NAK);
            return;
        }
        kbd_send(c, KBD_ACK);
        if (val == 0)
            kbd_send(c, c->kbd_set);
        else
            c->kbd_set = val;
        return;
    }
    if (cmd == KBD_SET_LEDS)
        c->kbd_leds = val & 0x07;
    kbd_send(c, KBD_ACK); /* LEDs, typematic rate */
}

static void kbd_write(struct i8042 *c, uint8_t val)
{
    if (c->kbd_pending) {
        uint8_t cmd = c->kbd_pending;
        c->kbd_pending = 0;
        kbd_parameter(c, cmd, val);
        return;
    }
    switch (val) {
    case KBD_SET_LEDS:
    case KBD_SCAN_SET:
    case KBD_TYPEMATIC:
        c->kbd_pending = val;
        kbd_send(c, KBD_ACK);
        break;
    case KBD_ECHO:
        kbd_send(c, KBD_ECHO);
        break;
    case KBD_IDENTIFY:
        kbd_send(c, KBD_ACK);
        kbd_send(c, KBD_ID1);
        kbd_send(c, KBD_ID2);
        break;
    case KBD_ENABLE:
    case KBD_DISABLE:
    case KBD_DEFAULTS:
        if (val != KBD_ENABLE)
            kbd_defaults(c);
        if (val != KBD_DEFAULTS)
            c->kbd_scanning = val == KBD_ENABLE;
        kbd_send(c, KBD_ACK);
        break;
    case KBD_RESEND:
        queue_byte(c, translate(c, c->kbd_last));
        break;
    case KBD_RESET:
        kbd_defaults(c);
        c->kbd_scanning = true;
        kbd_send(c, KBD_ACK);
        kbd_send(c, KBD_BAT_OK);
        break;
    default:
        if (val > KBD_DEFAULTS && val <= KBD_SET3_LAST)
            kbd_send(c, KBD_ACK); /* set-3 key modes: accepted, unused */
        else
            kbd_send(c, KBD_NAK);
        break;
    }
}

/* ---- Controller -------------------------------------------------------- */

/* Returns true when the CPU reset line was pulled. */
static bool write_outport(struct i8042 *c, uint8_t val)
{
    c->outport = val | OUTPORT_RESET;
    return !(val & OUTPORT_RESET);
}

static uint8_t outport_value(const struct i8042 *c)
{
    return (uint8_t)(c->outport | (c->count ? 0x10 : 0));
}

/* The data byte that completes a two-byte controller command. */
static bool controller_data(struct i8042 *c, uint8_t cmd, uint8_t val)
{
    switch (cmd) {
    case CMD_WRITE_CCB:
        c->ccb = val & 0x7F;
        break;
    case CMD_WRITE_OUTPORT:
        return write_outport(c, val);
    case CMD_WRITE_KBD_OBUF:
        queue_byte(c, val);
        break;
    default: /* aux output buffer / aux device, internal RAM: none here */
        break;
    }
    return false;
}

static bool takes_data(uint8_t cmd)
{
    return (cmd >= CMD_WRITE_CCB && cmd <= 0x7F) ||
           (cmd >= CMD_WRITE_OUTPORT && cmd <= CMD_WRITE_AUX);
}

/* Returns true when the CPU reset line was pulled. */
static bool controller_command(struct i8042 *c, uint8_t cmd)
{
    c->pending_cmd = 0;
    if (takes_data(cmd)) {
        c->pending_cmd = cmd;
        return false;
    }
    if (cmd >= CMD_PULSE_FIRST) /* bits 3:0 low = pulse that line */
        return !(cmd & OUTPORT_RESET);
    if (cmd >= CMD_READ_CCB && cmd < CMD_WRITE_CCB) {
        queue_byte(c, cmd == CMD_READ_CCB ? c->ccb : 0);
        return false;
    }
    switch (cmd) {
    case CMD_AUX_DISABLE: c->ccb |= CCB_AUXDIS; break;
    case CMD_AUX_ENABLE: c->ccb &= (uint8_t)~CCB_AUXDIS; break;
    case CMD_AUX_TEST: queue_byte(c, AUX_CLOCK_STUCK_HIGH); break;
    case CMD_SELF_TEST:
        c->ccb |= CCB_SYS;
        queue_byte(c, SELF_TEST_OK);
        break;
    case CMD_KBD_TEST: queue_byte(c, 0x00); break;
    case CMD_KBD_DISABLE: c->ccb |= CCB_KBDDIS; break;
    case CMD_KBD_ENABLE: c->ccb &= (uint8_t)~CCB_KBDDIS; break;
    case CMD_READ_INPORT: queue_byte(c, 0x80); break; /* not inhibited */
    case CMD_READ_OUTPORT: queue_byte(c, outport_value(c)); break;
    case CMD_A20_OFF: c->outport &= (uint8_t)~OUTPORT_A20; break;
    case CMD_A20_ON: c->outport |= OUTPORT_A20; break;
    case CMD_READ_TEST: queue_byte(c, 0x00); break;
    default: break; /* unknown commands are ignored, as on hardware */
    }
    return false;
}

static void request_reset(struct i8042 *c)
{
    if (c->cfg.reset_request)
        c->cfg.reset_request(c->cfg.opaque);
}

static void data_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct i8042 *c = opaque;
    pthread_mutex_lock(&c->lock);
    uint8_t v = read_data(c);
    update_irq(c);
    pthread_mutex_unlock(&c->lock);
    memset(data, 0xFF, len);
    *(uint8_t *)data = v;
}

static void data_write(void *opaque, uint64_t off, const void *data,
                       unsigned len)
{
    struct i8042 *c = opaque;
    uint8_t val = *(const uint8_t *)data;
    bool reset = false;
    pthread_mutex_lock(&c->lock);
    c->last_was_cmd = false;
    if (c->pending_cmd) {
        uint8_t cmd = c->pending_cmd;
        c->pending_cmd = 0;
        reset = controller_data(c, cmd, val);
    } else {
        kbd_write(c, val);
    }
    update_irq(c);
    pthread_mutex_unlock(&c->lock);
    if (reset)
        request_reset(c);
}

static void cmd_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct i8042 *c = opaque;
    pthread_mutex_lock(&c->lock);
    uint8_t v = read_status(c);
    pthread_mutex_unlock(&c->lock);
    memset(data, 0xFF, len);
    *(uint8_t *)data = v;
}

static void cmd_write(void *opaque, uint64_t off, const void *data,
                      unsigned len)
{
    struct i8042 *c = opaque;
    pthread_mutex_lock(&c->lock);
    c->last_was_cmd = true;
    bool reset = controller_command(c, *(const uint8_t *)data);
    update_irq(c);
    pthread_mutex_unlock(&c->lock);
    if (reset)
        request_reset(c);
}

const struct bus_ops i8042_data_ops = {.read = data_read, .write = data_write};
const struct bus_ops i8042_cmd_ops = {.read = cmd_read, .write = cmd_write};

static void reset_locked(struct i8042 *c)
{
    c->ccb = CCB_POWER_ON;
    c->outport = OUTPORT_POWER_ON;
    c->pending_cmd = 0;
    c->last_was_cmd = false;
    c->head = c->count = 0;
    c->last_read = 0;
    kbd_defaults(c);
    c->kbd_last = 0;
    c->kbd_scanning = true;
    update_irq(c);
}

int i8042_init(struct i8042 *c, const struct i8042_config *cfg,
               struct irq_line *irq)
{
    memset(c, 0, sizeof(*c));
    if (pthread_mutex_init(&c->lock, NULL)) {
        report_error("cannot create the i8042 lock");
        return -1;
    }
    if (cfg)
        c->cfg = *cfg;
    c->irq = irq;
    reset_locked(c);
    return 0;
}

void i8042_destroy(struct i8042 *c)
{
    pthread_mutex_destroy(&c->lock);
}

void i8042_reset(struct i8042 *c)
{
    pthread_mutex_lock(&c->lock);
    reset_locked(c);
    pthread_mutex_unlock(&c->lock);
}

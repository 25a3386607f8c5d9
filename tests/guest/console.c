/* Polled 16550 output on COM1, every byte mirrored to the debug port, and
 * a small printf (%s %c %d %u %x with l/ll, width and zero padding). */
#include <stdarg.h>

#include "kit.h"

#define UART_THR 0
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_LSR_THRE 0x20
#define UART_LCR_DLAB 0x80

void console_init(void)
{
    const uint16_t com = LAYOUT_PORT_COM1;

    outb(com + UART_IER, 0);
    outb(com + UART_LCR, UART_LCR_DLAB);
    outb(com + 0, 1); /* divisor 1: 115200 baud */
    outb(com + 1, 0);
    outb(com + UART_LCR, 0x03); /* 8N1 */
    outb(com + UART_FCR, 0x07); /* FIFOs on and cleared */
    outb(com + UART_MCR, 0x03); /* DTR, RTS */
}

void console_putc(char c)
{
    const uint16_t com = LAYOUT_PORT_COM1;
    /* Bounded wait: a UART that never drains must not hang the guest. */
    for (unsigned i = 0; i < 100000; i++)
        if (inb(com + UART_LSR) & UART_LSR_THRE)
            break;
    outb(com + UART_THR, (uint8_t)c);
    outb(LAYOUT_PORT_DEBUGCON, (uint8_t)c);
}

static void put_str(const char *s, int width)
{
    int n = (int)strlen(s);
    for (; width > n; width--)
        console_putc(' ');
    while (*s)
        console_putc(*s++);
}

static void put_num(uint64_t v, unsigned base, bool neg, int width, char pad)
{
    char buf[24];
    int n = 0;

    do {
        buf[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (neg)
        buf[n++] = '-';
    for (; width > n; width--)
        console_putc(pad);
    while (n)
        console_putc(buf[--n]);
}

static uint64_t take_unsigned(va_list *ap, int longs)
{
    if (longs)
        return va_arg(*ap, uint64_t);
    return va_arg(*ap, unsigned);
}

static void format_one(char conv, va_list *ap, int longs, int width, char pad)
{
    switch (conv) {
    case 's':
        put_str(va_arg(*ap, const char *), width);
        break;
    case 'c':
        console_putc((char)va_arg(*ap, int));
        break;
    case 'd': {
        int64_t v = longs ? va_arg(*ap, int64_t) : va_arg(*ap, int);
        put_num(v < 0 ? -(uint64_t)v : (uint64_t)v, 10, v < 0, width, pad);
        break;
    }
    case 'u':
        put_num(take_unsigned(ap, longs), 10, false, width, pad);
        break;
    case 'x':
        put_num(take_unsigned(ap, longs), 16, false, width, pad);
        break;
    default:
        console_putc('%');
        console_putc(conv);
        break;
    }
}

static void kit_vprintf(const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    for (; *fmt; fmt++) {
        int width = 0, longs = 0;
        char pad = ' ';

        if (*fmt != '%') {
            console_putc(*fmt);
            continue;
        }
        fmt++;
        if (*fmt == '0')
            pad = '0';
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') {
            longs++;
            fmt++;
        }
        if (!*fmt)
            break;
        format_one(*fmt, &cp, longs, width, pad);
    }
    va_end(cp);
}

void kit_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kit_vprintf(fmt, ap);
    va_end(ap);
}

/* kit_info/kit_check live here too: they need the va_list printer. */
static unsigned failures;

void kit_info(const char *key, const char *fmt, ...)
{
    va_list ap;
    kit_printf("INFO %s ", key);
    va_start(ap, fmt);
    kit_vprintf(fmt, ap);
    va_end(ap);
    console_putc('\n');
}

bool kit_check(bool ok, const char *name, const char *fmt, ...)
{
    va_list ap;
    kit_printf("TEST %s %s ", name, ok ? "PASS" : "FAIL");
    va_start(ap, fmt);
    kit_vprintf(fmt, ap);
    va_end(ap);
    console_putc('\n');
    if (!ok)
        failures++;
    return ok;
}

unsigned kit_failures(void)
{
    return failures;
}

void kit_fatal(const char *fmt, ...)
{
    va_list ap;
    kit_printf("FATAL ");
    va_start(ap, fmt);
    kit_vprintf(fmt, ap);
    va_end(ap);
    console_putc('\n');
    kit_triple_fault();
}

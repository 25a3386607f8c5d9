/* libFuzzer harness for fw_cfg, the DMA path above all: the input fills
 * guest memory, writes descriptors and drives the ports. Guest memory is
 * several separately allocated regions (RAM, a hole, ROM, RAM again, and
 * one at the very top of the address space), so ASan sees any host access
 * outside them; the harness itself checks that ROM never changes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "platform/fw_cfg.h"
#include "platform/layout.h"
#include "util.h"

#define RAM0 0x0ULL
#define RAM0_SIZE 0x2000
#define ROM 0x3000ULL /* after a hole */
#define ROM_SIZE 0x1000
#define RAM1 0x4000ULL /* right after ROM */
#define RAM1_SIZE 0x1000
#define TOP (UINT64_MAX - 0x1FFF) /* ends one byte below 2^64 */
#define TOP_SIZE 0x1000
#define ROM_BYTE 0xC3
#define DMA_OFF (LAYOUT_PORT_FW_CFG_DMA - LAYOUT_PORT_FW_CFG)

struct input {
    const uint8_t *p;
    size_t left;
};

static uint64_t take(struct input *in, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes && in->left; i++, in->left--)
        v |= (uint64_t)*in->p++ << (8 * i);
    return v;
}

/* Addresses near the interesting places, or anything at all. */
static uint64_t take_gpa(struct input *in)
{
    static const uint64_t bases[] = {RAM0, RAM0 + RAM0_SIZE, ROM, RAM1,
                                     RAM1 + RAM1_SIZE, TOP, 0};
    uint8_t how = (uint8_t)take(in, 1);
    if (how & 0x80)
        return take(in, 8);
    uint64_t base = bases[how % ARRAY_SIZE(bases)];
    return base + (uint64_t)(int16_t)take(in, 2);
}

struct machine {
    uint8_t *ram0, *rom, *ram1, *top;
    struct guest_mem mem;
    struct fw_cfg cfg;
};

static void add_items(struct fw_cfg *c)
{
    static uint8_t big[5000];
    memset(big, 0x42, sizeof(big));
    if (fw_cfg_add_file(c, "etc/e820", big, 20) < 0 ||
        fw_cfg_add_file(c, "bootorder", NULL, 0) < 0 ||
        fw_cfg_add_file(c, "etc/table-loader", big, 4096) < 0 ||
        fw_cfg_add_file(c, "genroms/big.bin", big, sizeof(big)) < 0 ||
        fw_cfg_add_u16(c, 0x05, 2) < 0 || fw_cfg_add_u32(c, 0x8002, 0) < 0)
        abort();
}

static void machine_init(struct machine *m, struct input *in)
{
    m->ram0 = calloc(1, RAM0_SIZE);
    m->rom = malloc(ROM_SIZE);
    m->ram1 = calloc(1, RAM1_SIZE);
    m->top = calloc(1, TOP_SIZE);
    if (!m->ram0 || !m->rom || !m->ram1 || !m->top)
        abort();
    memset(m->rom, ROM_BYTE, ROM_SIZE);
    memset(&m->mem, 0, sizeof(m->mem));
    if (gmem_add(&m->mem, RAM0, RAM0_SIZE, m->ram0, false) ||
        gmem_add(&m->mem, ROM, ROM_SIZE, m->rom, true) ||
        gmem_add(&m->mem, RAM1, RAM1_SIZE, m->ram1, false) ||
        gmem_add(&m->mem, TOP, TOP_SIZE, m->top, false))
        abort();
    if (fw_cfg_init(&m->cfg, &m->mem))
        abort();
    add_items(&m->cfg);
    /* The first input bytes are the initial RAM contents. */
    size_t n = MIN(in->left, (size_t)256);
    memcpy(m->ram0, in->p, n);
    in->p += n;
    in->left -= n;
}

static void machine_check_and_free(struct machine *m)
{
    for (unsigned i = 0; i < ROM_SIZE; i++)
        if (m->rom[i] != ROM_BYTE)
            abort(); /* a device wrote to ROM */
    fw_cfg_destroy(&m->cfg);
    free(m->ram0);
    free(m->rom);
    free(m->ram1);
    free(m->top);
}

static void port_write(struct machine *m, uint64_t off, uint64_t v,
                       unsigned len)
{
    uint8_t b[8];
    put_le64(b, v);
    fw_cfg_bus_ops.write(&m->cfg, off, b, len);
}

static void dma_kick(struct machine *m, uint64_t gpa)
{
    uint8_t b[4];
    put_be32(b, (uint32_t)(gpa >> 32));
    fw_cfg_bus_ops.write(&m->cfg, DMA_OFF, b, 4);
    put_be32(b, (uint32_t)gpa);
    fw_cfg_bus_ops.write(&m->cfg, DMA_OFF + 4, b, 4);
}

/* A descriptor written where the guest would put it (RAM only). */
static void put_descriptor(struct machine *m, struct input *in)
{
    uint64_t at = take_gpa(in);
    uint8_t d[16];
    put_be32(d, (uint32_t)take(in, 4));
    put_be32(d + 4, (uint32_t)take(in, 4));
    put_be64(d + 8, take_gpa(in));
    if (gmem_write(&m->mem, at, d, sizeof(d)) == 0)
        dma_kick(m, at);
}

static void step(struct machine *m, struct input *in)
{
    uint8_t buf[16];
    switch (take(in, 1) % 7) {
    case 0: /* select */
        port_write(m, 0, take(in, 2), 2);
        break;
    case 1: /* string read from the data port */
        for (unsigned n = (unsigned)take(in, 1); n; n--)
            fw_cfg_bus_ops.read(&m->cfg, 1, buf, 1);
        break;
    case 2: /* descriptor + kick */
        put_descriptor(m, in);
        break;
    case 3: /* kick at any address */
        dma_kick(m, take_gpa(in));
        break;
    case 4: { /* raw port write, any offset and width */
        uint64_t off = take(in, 1) % LAYOUT_PORT_FW_CFG_LEN;
        unsigned len = 1u << (take(in, 1) % 3);
        if (off + len <= LAYOUT_PORT_FW_CFG_LEN)
            port_write(m, off, take(in, 4), len);
        break;
    }
    case 5: { /* raw port read */
        uint64_t off = take(in, 1) % LAYOUT_PORT_FW_CFG_LEN;
        unsigned len = 1u << (take(in, 1) % 3);
        if (off + len <= LAYOUT_PORT_FW_CFG_LEN)
            fw_cfg_bus_ops.read(&m->cfg, off, buf, len);
        break;
    }
    default:
        fw_cfg_reset(&m->cfg);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {data, size};
    struct machine m;
    machine_init(&m, &in);
    for (unsigned ops = 0; in.left && ops < 256; ops++)
        step(&m, &in);
    machine_check_and_free(&m);
    return 0;
}

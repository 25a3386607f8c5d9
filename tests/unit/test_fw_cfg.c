#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "platform/fw_cfg.h"
#include "platform/layout.h"
#include "util.h"

#define RAM_SIZE 0x10000
#define ROM_BASE 0xF0000ULL
#define ROM_SIZE 0x10000
#define DESC 0x1000ULL   /* where tests put descriptors */
#define BUF 0x2000ULL    /* where tests put buffers */
#define DMA_OFF (LAYOUT_PORT_FW_CFG_DMA - LAYOUT_PORT_FW_CFG)

struct fixture {
    struct fw_cfg cfg;
    struct guest_mem mem;
    uint8_t ram[RAM_SIZE];
    uint8_t rom[ROM_SIZE];
};

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    memset(f.rom, 0x5A, sizeof(f.rom));
    assert_int_equal(gmem_add(&f.mem, 0, RAM_SIZE, f.ram, false), 0);
    assert_int_equal(gmem_add(&f.mem, ROM_BASE, ROM_SIZE, f.rom, true), 0);
    assert_int_equal(fw_cfg_init(&f.cfg, &f.mem), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fw_cfg_destroy(&((struct fixture *)*state)->cfg);
    return 0;
}

static void select_pio(struct fixture *f, uint16_t key)
{
    uint8_t b[2];
    put_le16(b, key);
    fw_cfg_bus_ops.write(&f->cfg, 0, b, 2);
}

static uint8_t data_pio(struct fixture *f)
{
    uint8_t v = 0xAA;
    fw_cfg_bus_ops.read(&f->cfg, 1, &v, 1);
    return v;
}

static void read_pio(struct fixture *f, void *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        ((uint8_t *)buf)[i] = data_pio(f);
}

/* Writes the address the way firmware does: two big-endian halves, the
 * low one last. */
static void dma_kick(struct fixture *f, uint64_t gpa)
{
    uint8_t hi[4], lo[4];
    put_be32(hi, (uint32_t)(gpa >> 32));
    put_be32(lo, (uint32_t)gpa);
    fw_cfg_bus_ops.write(&f->cfg, DMA_OFF, hi, 4);
    fw_cfg_bus_ops.write(&f->cfg, DMA_OFF + 4, lo, 4);
}

static void put_desc(struct fixture *f, uint64_t at, uint32_t control,
                     uint32_t len, uint64_t addr)
{
    put_be32(f->ram + at, control);
    put_be32(f->ram + at + 4, len);
    put_be64(f->ram + at + 8, addr);
}

/* Runs one descriptor at DESC and returns the control word left there. */
static uint32_t dma(struct fixture *f, uint32_t control, uint32_t len,
                    uint64_t addr)
{
    put_desc(f, DESC, control, len, addr);
    dma_kick(f, DESC);
    return get_be32(f->ram + DESC);
}

static uint32_t select_read(uint16_t key)
{
    return (uint32_t)key << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ;
}

static void test_signature_and_id_by_pio(void **state)
{
    struct fixture *f = *state;
    char sig[5];
    select_pio(f, FW_CFG_SIGNATURE);
    read_pio(f, sig, 5);
    assert_memory_equal(sig, "QEMU\0", 5); /* past the end: 0 */
    uint8_t id[4];
    select_pio(f, FW_CFG_ID);
    read_pio(f, id, 4);
    assert_int_equal(get_le32(id), 3);
    /* Selection rewinds. */
    select_pio(f, FW_CFG_SIGNATURE);
    assert_int_equal(data_pio(f), 'Q');
}

static void test_dma_port_reads_signature(void **state)
{
    struct fixture *f = *state;
    char sig[8];
    for (unsigned i = 0; i < 8; i++)
        fw_cfg_bus_ops.read(&f->cfg, DMA_OFF + i, &sig[i], 1);
    assert_memory_equal(sig, "QEMU CFG", 8);
    uint8_t w[4];
    fw_cfg_bus_ops.read(&f->cfg, DMA_OFF + 4, w, 4);
    assert_memory_equal(w, " CFG", 4);
}

static void test_directory_format(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(fw_cfg_add_file(&f->cfg, "etc/b", "bbb", 3), 0x20);
    assert_int_equal(fw_cfg_add_file(&f->cfg, "etc/a", "aaaaa", 5), 0x21);
    assert_int_equal(fw_cfg_add_file(&f->cfg, "bootorder", NULL, 0), 0x22);
    uint8_t dir[4 + 3 * 64 + 4];
    select_pio(f, FW_CFG_FILE_DIR);
    read_pio(f, dir, sizeof(dir));
    assert_int_equal(get_be32(dir), 3);
    static const struct { const char *name; uint32_t size; uint16_t key; }
        want[] = {{"bootorder", 0, 0x22}, {"etc/a", 5, 0x21},
                  {"etc/b", 3, 0x20}};
    for (unsigned i = 0; i < 3; i++) {
        const uint8_t *e = dir + 4 + i * 64;
        assert_int_equal(get_be32(e), want[i].size);
        assert_int_equal(get_be16(e + 4), want[i].key);
        assert_int_equal(get_be16(e + 6), 0);
        char name[56] = {0};
        strcpy(name, want[i].name);
        assert_memory_equal(e + 8, name, 56); /* NUL-padded */
    }
    assert_int_equal(get_be32(dir + 4 + 3 * 64), 0); /* past the end */
    /* The files read back through their keys. */
    char buf[5];
    select_pio(f, 0x21);
    read_pio(f, buf, 5);
    assert_memory_equal(buf, "aaaaa", 5);
}

static void test_empty_directory(void **state)
{
    struct fixture *f = *state;
    uint8_t n[4];
    select_pio(f, FW_CFG_FILE_DIR);
    read_pio(f, n, 4);
    assert_int_equal(get_be32(n), 0);
}

static void test_dma_select_and_read(void **state)
{
    struct fixture *f = *state;
    int key = fw_cfg_add_file(&f->cfg, "etc/e820", "0123456789", 10);
    memset(f->ram + BUF, 0xAA, 16);
    assert_int_equal(dma(f, select_read((uint16_t)key), 4, BUF), 0);
    assert_memory_equal(f->ram + BUF, "0123", 4);
    assert_int_equal(f->ram[BUF + 4], 0xAA); /* no more than asked */
    /* Continue reading the current item, past its end: zeros. */
    assert_int_equal(dma(f, FW_CFG_DMA_READ, 8, BUF), 0);
    assert_memory_equal(f->ram + BUF, "456789\0\0", 8);
}

static void test_offset_shared_between_pio_and_dma(void **state)
{
    struct fixture *f = *state;
    int key = fw_cfg_add_file(&f->cfg, "f", "abcdef", 6);
    select_pio(f, (uint16_t)key);
    assert_int_equal(data_pio(f), 'a');
    assert_int_equal(data_pio(f), 'b');
    assert_int_equal(dma(f, FW_CFG_DMA_READ, 2, BUF), 0);
    assert_memory_equal(f->ram + BUF, "cd", 2);
    assert_int_equal(data_pio(f), 'e');
}

static void test_dma_skip(void **state)
{
    struct fixture *f = *state;
    int key = fw_cfg_add_file(&f->cfg, "f", "abcdef", 6);
    uint32_t sel = (uint32_t)key << 16 | FW_CFG_DMA_SELECT;
    assert_int_equal(dma(f, sel | FW_CFG_DMA_SKIP, 3, 0), 0);
    assert_int_equal(data_pio(f), 'd');
    assert_int_equal(dma(f, FW_CFG_DMA_SKIP, 100, 0), 0); /* clamps */
    assert_int_equal(data_pio(f), 0);
    assert_int_equal(dma(f, sel, 0, 0), 0); /* select alone */
    assert_int_equal(data_pio(f), 'a');
}

static void test_unknown_key_reads_zeros(void **state)
{
    struct fixture *f = *state;
    memset(f->ram + BUF, 0xAA, 8);
    assert_int_equal(dma(f, select_read(0x1234), 8, BUF), 0);
    assert_memory_equal(f->ram + BUF, "\0\0\0\0\0\0\0\0", 8);
    select_pio(f, 0x7FFF);
    assert_int_equal(data_pio(f), 0);
}

static void test_numeric_items(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(fw_cfg_add_u16(&f->cfg, 0x05, 2), 0);
    assert_int_equal(fw_cfg_add_u32(&f->cfg, 0x8002, 0), 0);
    assert_int_equal(fw_cfg_add_u64(&f->cfg, 0x03, 0x1122334455667788ULL),
                     0);
    uint8_t b[8];
    select_pio(f, 0x05);
    read_pio(f, b, 3);
    assert_memory_equal(b, "\x02\x00\x00", 3);
    select_pio(f, 0x03);
    read_pio(f, b, 8);
    assert_int_equal(get_le64(b), 0x1122334455667788ULL);
    /* Replacing an item while it is being read keeps the offset sane. */
    select_pio(f, 0x03);
    read_pio(f, b, 6);
    assert_int_equal(fw_cfg_add_u16(&f->cfg, 0x03, 0xBEEF), 0);
    assert_int_equal(data_pio(f), 0);
    select_pio(f, 0x03);
    assert_int_equal(data_pio(f), 0xEF);
}

static void test_reserved_keys_and_bad_files_are_refused(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(fw_cfg_add_u32(&f->cfg, FW_CFG_SIGNATURE, 0), -1);
    assert_int_equal(fw_cfg_add_u32(&f->cfg, FW_CFG_ID, 0), -1);
    assert_int_equal(fw_cfg_add_u32(&f->cfg, FW_CFG_FILE_DIR, 0), -1);
    assert_int_equal(fw_cfg_add_u32(&f->cfg, FW_CFG_FILE_FIRST, 0), -1);
    assert_int_equal(fw_cfg_add_u32(&f->cfg, 0x4000, 0), -1);
    char name[57];
    memset(name, 'n', 56);
    name[56] = 0;
    assert_int_equal(fw_cfg_add_file(&f->cfg, name, "x", 1), -1);
    name[55] = 0;
    assert_int_equal(fw_cfg_add_file(&f->cfg, name, "x", 1), 0x20);
    assert_int_equal(fw_cfg_add_file(&f->cfg, name, "y", 1), -1);
    assert_int_equal(fw_cfg_add_file(&f->cfg, "", "y", 1), -1);
    uint8_t n[4];
    select_pio(f, FW_CFG_FILE_DIR);
    read_pio(f, n, 4);
    assert_int_equal(get_be32(n), 1);
}

static void test_write_is_refused(void **state)
{
    struct fixture *f = *state;
    int key = fw_cfg_add_file(&f->cfg, "f", "abc", 3);
    memset(f->ram + BUF, 'Z', 3);
    uint32_t c = (uint32_t)key << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_WRITE;
    assert_int_equal(dma(f, c, 3, BUF), FW_CFG_DMA_ERROR);
    select_pio(f, (uint16_t)key);
    assert_int_equal(data_pio(f), 'a');
    uint8_t z = 'Z';
    fw_cfg_bus_ops.write(&f->cfg, 1, &z, 1); /* PIO data write: ignored */
    assert_int_equal(data_pio(f), 'b');
}

static void test_hostile_buffer_addresses(void **state)
{
    struct fixture *f = *state;
    int key = fw_cfg_add_file(&f->cfg, "f", "0123456789abcdef", 16);
    uint32_t c = select_read((uint16_t)key);
    /* Outside RAM entirely. */
    assert_int_equal(dma(f, c, 16, 0x20000), FW_CFG_DMA_ERROR);
    /* Crossing the end of RAM: the part inside may be written, but the
     * request fails and nothing lands outside (the next byte is ROM
     * far away; ASan would flag a host overrun). */
    assert_int_equal(dma(f, c, 16, RAM_SIZE - 4), FW_CFG_DMA_ERROR);
    /* Into ROM. */
    assert_int_equal(dma(f, c, 16, ROM_BASE + 0x100), FW_CFG_DMA_ERROR);
    for (unsigned i = 0; i < ROM_SIZE; i++)
        assert_int_equal(f->rom[i], 0x5A);
    /* Wrapping around the address space. */
    assert_int_equal(dma(f, c, 0x20, UINT64_MAX - 0xF), FW_CFG_DMA_ERROR);
    /* A huge length: the item, then zeros until RAM ends, then ERROR. */
    memset(f->ram + 0x8000, 0xAA, RAM_SIZE - 0x8000);
    assert_int_equal(dma(f, c, 0xFFFFFFFF, 0x8000), FW_CFG_DMA_ERROR);
    assert_memory_equal(f->ram + 0x8000, "0123456789abcdef", 16);
    assert_int_equal(f->ram[RAM_SIZE - 1], 0);
    /* A zero-fill that starts in RAM and runs into nothing. */
    assert_int_equal(dma(f, FW_CFG_DMA_READ, 0x100, RAM_SIZE - 0x10),
                     FW_CFG_DMA_ERROR);
}

static void test_hostile_descriptor_addresses(void **state)
{
    struct fixture *f = *state;
    int key = fw_cfg_add_file(&f->cfg, "f", "abc", 3);
    uint32_t c = select_read((uint16_t)key);
    select_pio(f, FW_CFG_SIGNATURE);
    /* Outside RAM, crossing its end, wrapping, in ROM: dropped. */
    dma_kick(f, 0x30000);
    dma_kick(f, UINT64_MAX - 3);
    put_desc(f, RAM_SIZE - 16, c, 3, BUF);
    memmove(f->ram + RAM_SIZE - 8, f->ram + RAM_SIZE - 16, 8); /* torn */
    dma_kick(f, RAM_SIZE - 8);
    assert_int_equal(get_be32(f->ram + RAM_SIZE - 8), c);
    put_be32(f->rom + 0x10, c);
    put_be32(f->rom + 0x14, 3);
    put_be64(f->rom + 0x18, BUF);
    memset(f->ram + BUF, 0xAA, 3);
    dma_kick(f, ROM_BASE + 0x10);
    assert_int_equal(get_be32(f->rom + 0x10), c); /* ROM untouched */
    assert_int_equal(f->ram[BUF], 0xAA);          /* not executed */
    /* None of it changed the selection. */
    assert_int_equal(data_pio(f), 'Q');
}

static void test_descriptor_in_last_bytes_of_ram(void **state)
{
    struct fixture *f = *state;
    int key = fw_cfg_add_file(&f->cfg, "f", "abc", 3);
    put_desc(f, RAM_SIZE - 16, select_read((uint16_t)key), 3, BUF);
    dma_kick(f, RAM_SIZE - 16);
    assert_int_equal(get_be32(f->ram + RAM_SIZE - 16), 0);
    assert_memory_equal(f->ram + BUF, "abc", 3);
}

static void test_dma_latch(void **state)
{
    struct fixture *f = *state;
    int key = fw_cfg_add_file(&f->cfg, "f", "abc", 3);
    put_desc(f, DESC, select_read((uint16_t)key), 3, BUF);
    /* The high half alone does nothing. */
    uint8_t hi[4] = {0, 0, 0, 1}, lo[4];
    fw_cfg_bus_ops.write(&f->cfg, DMA_OFF, hi, 4);
    assert_int_equal(get_be32(f->ram + DESC), select_read((uint16_t)key));
    /* With it, the low half points above 4 GiB: nothing there. */
    put_be32(lo, (uint32_t)DESC);
    fw_cfg_bus_ops.write(&f->cfg, DMA_OFF + 4, lo, 4);
    assert_int_equal(get_be32(f->ram + DESC), select_read((uint16_t)key));
    /* The latch is clear again: the low half alone now works. */
    fw_cfg_bus_ops.write(&f->cfg, DMA_OFF + 4, lo, 4);
    assert_int_equal(get_be32(f->ram + DESC), 0);
    assert_memory_equal(f->ram + BUF, "abc", 3);
}

static void test_reset(void **state)
{
    struct fixture *f = *state;
    select_pio(f, FW_CFG_ID);
    uint8_t hi[4] = {0, 0, 0, 1};
    fw_cfg_bus_ops.write(&f->cfg, DMA_OFF, hi, 4);
    fw_cfg_reset(&f->cfg);
    assert_int_equal(data_pio(f), 'Q');
    put_desc(f, DESC, FW_CFG_DMA_READ, 1, BUF);
    uint8_t lo[4];
    put_be32(lo, (uint32_t)DESC);
    fw_cfg_bus_ops.write(&f->cfg, DMA_OFF + 4, lo, 4);
    assert_int_equal(get_be32(f->ram + DESC), 0);
    assert_int_equal(f->ram[BUF], 'E');
}

static void test_no_guest_memory_means_no_dma(void **state)
{
    struct fw_cfg c;
    assert_int_equal(fw_cfg_init(&c, NULL), 0);
    uint8_t b[2] = {FW_CFG_ID, 0}, id = 0;
    fw_cfg_bus_ops.write(&c, 0, b, 2);
    fw_cfg_bus_ops.read(&c, 1, &id, 1);
    assert_int_equal(id, 1);
    uint8_t lo[4] = {0, 0, 0x10, 0};
    fw_cfg_bus_ops.write(&c, DMA_OFF + 4, lo, 4);
    fw_cfg_destroy(&c);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_signature_and_id_by_pio),
        T(test_dma_port_reads_signature),
        T(test_directory_format),
        T(test_empty_directory),
        T(test_dma_select_and_read),
        T(test_offset_shared_between_pio_and_dma),
        T(test_dma_skip),
        T(test_unknown_key_reads_zeros),
        T(test_numeric_items),
        T(test_reserved_keys_and_bad_files_are_refused),
        T(test_write_is_refused),
        T(test_hostile_buffer_addresses),
        T(test_hostile_descriptor_addresses),
        T(test_descriptor_in_last_bytes_of_ram),
        T(test_dma_latch),
        T(test_reset),
        cmocka_unit_test(test_no_guest_memory_means_no_dma),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

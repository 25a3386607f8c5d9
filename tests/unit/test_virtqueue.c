#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "virtio/queue.h"
#include "vring_driver.h"

#define RAM_SIZE 0x40000
#define ROM_GPA 0x100000
#define QSIZE 8
#define RING_BASE 0x1000
#define BUF 0x10000 /* data buffers from here */

static uint8_t ram[RAM_SIZE];
static uint8_t rom[0x1000];

struct fixture {
    struct guest_mem mem;
    struct virtqueue vq;
    struct test_ring tr;
    struct iovec iov[64];
    struct vq_chain chain;
};

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    memset(ram, 0, sizeof(ram));
    assert_int_equal(gmem_add(&f.mem, 0, RAM_SIZE, ram, false), 0);
    assert_int_equal(gmem_add(&f.mem, ROM_GPA, sizeof(rom), rom, true), 0);
    vq_init(&f.vq, &f.mem, QSIZE);
    tr_init(&f.tr, ram, RING_BASE, QSIZE);
    f.vq.desc_gpa = f.tr.desc;
    f.vq.avail_gpa = f.tr.avail;
    f.vq.used_gpa = f.tr.used;
    *state = &f;
    return 0;
}

static int pop(struct fixture *f)
{
    return vq_pop(&f->vq, &f->chain, f->iov, 64);
}

static void enable(struct fixture *f)
{
    assert_int_equal(vq_enable(&f->vq), 0);
}

/* ---- enable-time validation ------------------------------------------ */

static void test_enable_accepts_good_rings(void **state)
{
    struct fixture *f = *state;
    enable(f);
    assert_true(f->vq.ready);
    assert_int_equal(pop(f), VQ_EMPTY);
}

static void test_enable_rejects_bad_size(void **state)
{
    struct fixture *f = *state;
    f->vq.size = 6;
    assert_int_equal(vq_enable(&f->vq), -1);
    f->vq.size = 16; /* > max */
    assert_int_equal(vq_enable(&f->vq), -1);
    f->vq.size = 0;
    assert_int_equal(vq_enable(&f->vq), -1);
    assert_false(f->vq.ready);
    f->vq.size = 4; /* smaller is fine */
    assert_int_equal(vq_enable(&f->vq), 0);
}

static void test_enable_rejects_misalignment(void **state)
{
    struct fixture *f = *state;
    f->vq.desc_gpa += 8;
    assert_int_equal(vq_enable(&f->vq), -1);
    f->vq.desc_gpa -= 8;
    f->vq.avail_gpa += 1;
    assert_int_equal(vq_enable(&f->vq), -1);
    f->vq.avail_gpa -= 1;
    f->vq.used_gpa += 2;
    assert_int_equal(vq_enable(&f->vq), -1);
}

static void test_enable_rejects_rings_outside_ram(void **state)
{
    struct fixture *f = *state;
    uint64_t used = f->vq.used_gpa;
    f->vq.used_gpa = RAM_SIZE - 16; /* runs off the end */
    assert_int_equal(vq_enable(&f->vq), -1);
    f->vq.used_gpa = ROM_GPA; /* inside guest memory but read-only */
    assert_int_equal(vq_enable(&f->vq), -1);
    f->vq.used_gpa = used;
    f->vq.desc_gpa = 0xFFFFFFFFFFFFFFF0ULL; /* wraps */
    assert_int_equal(vq_enable(&f->vq), -1);
    f->vq.desc_gpa = 0x80000000;
    assert_int_equal(vq_enable(&f->vq), -1);
    f->vq.desc_gpa = ROM_GPA; /* reading descriptors from ROM is fine */
    assert_int_equal(vq_enable(&f->vq), 0);
}

static void test_legacy_layout(void **state)
{
    struct fixture *f = *state;
    f->vq.size = 256;
    vq_set_legacy_layout(&f->vq, 0x12);
    assert_int_equal(f->vq.desc_gpa, 0x12000);
    assert_int_equal(f->vq.avail_gpa, 0x12000 + 256 * 16);
    /* avail ends at 0x13000 + 6 + 512 = 0x13206 -> next page */
    assert_int_equal(f->vq.used_gpa, 0x14000);
}

/* ---- chains ----------------------------------------------------------- */

static void test_pop_simple_chain(void **state)
{
    struct fixture *f = *state;
    enable(f);
    tr_desc(&f->tr, 3, BUF, 16, VQ_DESC_F_NEXT, 5);
    tr_desc(&f->tr, 5, BUF + 0x100, 512, VQ_DESC_F_NEXT | VQ_DESC_F_WRITE,
            1);
    tr_desc(&f->tr, 1, BUF + 0x400, 1, VQ_DESC_F_WRITE, 0);
    tr_publish(&f->tr, 3);
    assert_int_equal(pop(f), VQ_CHAIN);
    assert_int_equal(f->chain.head, 3);
    assert_int_equal(f->chain.n_read, 1);
    assert_int_equal(f->chain.n_write, 2);
    assert_int_equal(f->chain.read_len, 16);
    assert_int_equal(f->chain.write_len, 513);
    assert_ptr_equal(f->iov[0].iov_base, ram + BUF);
    assert_ptr_equal(f->iov[1].iov_base, ram + BUF + 0x100);
    assert_int_equal(f->iov[2].iov_len, 1);
    assert_int_equal(pop(f), VQ_EMPTY);

    vq_push(&f->vq, 3, 513);
    assert_int_equal(tr_used_idx(&f->tr), 1);
    uint32_t id, len;
    tr_used_elem(&f->tr, 0, &id, &len);
    assert_int_equal(id, 3);
    assert_int_equal(len, 513);
}

static void test_many_chains_wrap_around(void **state)
{
    struct fixture *f = *state;
    enable(f);
    tr_desc(&f->tr, 0, BUF, 4, 0, 0);
    for (unsigned i = 0; i < 3 * QSIZE; i++) {
        tr_publish(&f->tr, 0);
        assert_int_equal(pop(f), VQ_CHAIN);
        vq_push(&f->vq, 0, 0);
    }
    assert_int_equal(tr_used_idx(&f->tr), 3 * QSIZE);
}

static void test_avail_idx_jump_breaks_queue(void **state)
{
    struct fixture *f = *state;
    enable(f);
    tr_desc(&f->tr, 0, BUF, 4, 0, 0);
    tr_set_avail_idx(&f->tr, QSIZE + 1);
    assert_int_equal(pop(f), VQ_BROKEN);
    assert_true(f->vq.broken);
    /* Broken stays broken, even if the index is put right. */
    tr_set_avail_idx(&f->tr, 1);
    assert_int_equal(pop(f), VQ_BROKEN);
}

static void test_avail_idx_exactly_size_is_fine(void **state)
{
    struct fixture *f = *state;
    enable(f);
    for (unsigned i = 0; i < QSIZE; i++) {
        tr_desc(&f->tr, (uint16_t)i, BUF, 4, 0, 0);
        tr_publish(&f->tr, (uint16_t)i);
    }
    for (unsigned i = 0; i < QSIZE; i++)
        assert_int_equal(pop(f), VQ_CHAIN);
    assert_int_equal(pop(f), VQ_EMPTY);
}

static void test_head_out_of_range(void **state)
{
    struct fixture *f = *state;
    enable(f);
    tr_publish(&f->tr, QSIZE);
    assert_int_equal(pop(f), VQ_BROKEN);
}

static void test_next_out_of_range(void **state)
{
    struct fixture *f = *state;
    enable(f);
    tr_desc(&f->tr, 0, BUF, 4, VQ_DESC_F_NEXT, QSIZE);
    tr_publish(&f->tr, 0);
    assert_int_equal(pop(f), VQ_BROKEN);
}

static void test_loop_is_detected(void **state)
{
    struct fixture *f = *state;
    enable(f);
    tr_desc(&f->tr, 0, BUF, 4, VQ_DESC_F_NEXT, 1);
    tr_desc(&f->tr, 1, BUF, 4, VQ_DESC_F_NEXT, 0);
    tr_publish(&f->tr, 0);
    assert_int_equal(pop(f), VQ_BROKEN);
}

static void test_self_loop_is_detected(void **state)
{
    struct fixture *f = *state;
    enable(f);
    tr_desc(&f->tr, 2, BUF, 4, VQ_DESC_F_NEXT, 2);
    tr_publish(&f->tr, 2);
    assert_int_equal(pop(f), VQ_BROKEN);
}

static void test_loop_of_empty_buffers_is_detected(void **state)
{
    struct fixture *f = *state;
    enable(f);
    /* Zero-length buffers take no iov entry: only the hop limit stops it. */
    tr_desc(&f->tr, 0, 0, 0, VQ_DESC_F_NEXT, 1);
    tr_desc(&f->tr, 1, 0, 0, VQ_DESC_F_NEXT, 0);
    tr_publish(&f->tr, 0);
    assert_int_equal(pop(f), VQ_BROKEN);
}

static void test_chain_of_queue_size_is_fine(void **state)
{
    struct fixture *f = *state;
    enable(f);
    for (uint16_t i = 0; i < QSIZE; i++)
        tr_desc(&f->tr, i, BUF + i, 1,
                i + 1 < QSIZE ? VQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
    tr_publish(&f->tr, 0);
    assert_int_equal(pop(f), VQ_CHAIN);
    assert_int_equal(f->chain.n_read, QSIZE);
}

static void test_readable_after_writable_breaks(void **state)
{
    struct fixture *f = *state;
    enable(f);
    tr_desc(&f->tr, 0, BUF, 4, VQ_DESC_F_NEXT | VQ_DESC_F_WRITE, 1);
    tr_desc(&f->tr, 1, BUF + 8, 4, 0, 0);
    tr_publish(&f->tr, 0);
    assert_int_equal(pop(f), VQ_BROKEN);
}

static void test_buffer_outside_ram_breaks(void **state)
{
    struct fixture *f = *state;
    enable(f);
    tr_desc(&f->tr, 0, RAM_SIZE - 8, 16, 0, 0); /* crosses the end */
    tr_publish(&f->tr, 0);
    assert_int_equal(pop(f), VQ_BROKEN);
}

static void test_buffer_address_wrap_breaks(void **state)
{
    struct fixture *f = *state;
    enable(f);
    tr_desc(&f->tr, 0, 0xFFFFFFFFFFFFFFF0ULL, 0x20, 0, 0);
    tr_publish(&f->tr, 0);
    assert_int_equal(pop(f), VQ_BROKEN);
}

static void test_writable_buffer_in_rom_breaks(void **state)
{
    struct fixture *f = *state;
    enable(f);
    tr_desc(&f->tr, 0, ROM_GPA, 16, VQ_DESC_F_WRITE, 0);
    tr_publish(&f->tr, 0);
    assert_int_equal(pop(f), VQ_BROKEN);
}

static void test_readable_buffer_in_rom_is_fine(void **state)
{
    struct fixture *f = *state;
    enable(f);
    tr_desc(&f->tr, 0, ROM_GPA, 16, 0, 0);
    tr_publish(&f->tr, 0);
    assert_int_equal(pop(f), VQ_CHAIN);
    assert_ptr_equal(f->iov[0].iov_base, rom);
}

static void test_zero_length_buffer_takes_no_iov(void **state)
{
    struct fixture *f = *state;
    enable(f);
    tr_desc(&f->tr, 0, 0xDEAD00000000ULL, 0, VQ_DESC_F_NEXT, 1);
    tr_desc(&f->tr, 1, BUF, 8, 0, 0);
    tr_publish(&f->tr, 0);
    assert_int_equal(pop(f), VQ_CHAIN);
    assert_int_equal(f->chain.n_read, 1);
    assert_int_equal(f->chain.read_len, 8);
}

static void test_iov_capacity_is_respected(void **state)
{
    struct fixture *f = *state;
    enable(f);
    tr_desc(&f->tr, 0, BUF, 4, VQ_DESC_F_NEXT, 1);
    tr_desc(&f->tr, 1, BUF, 4, VQ_DESC_F_NEXT, 2);
    tr_desc(&f->tr, 2, BUF, 4, 0, 0);
    tr_publish(&f->tr, 0);
    assert_int_equal(vq_pop(&f->vq, &f->chain, f->iov, 2), VQ_BROKEN);
}

static void test_total_length_must_fit_u32(void **state)
{
    struct fixture *f = *state;
    /* A big region that is never touched: only its bounds matter. */
    size_t big = 3ULL << 30;
    void *host = mmap(NULL, big, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(host != MAP_FAILED);
    assert_int_equal(gmem_add(&f->mem, 1ULL << 32, big, host, false), 0);
    enable(f);
    tr_desc(&f->tr, 0, 1ULL << 32, 0x80000000U, VQ_DESC_F_NEXT, 1);
    tr_desc(&f->tr, 1, 1ULL << 32, 0x7FFFFFFFU, 0, 0);
    tr_publish(&f->tr, 0);
    assert_int_equal(pop(f), VQ_CHAIN);
    assert_int_equal(f->chain.read_len, 0xFFFFFFFFU);
    tr_desc(&f->tr, 1, 1ULL << 32, 0x80000000U, 0, 0);
    tr_publish(&f->tr, 0);
    assert_int_equal(pop(f), VQ_BROKEN);
    munmap(host, big);
}

/* ---- indirect tables --------------------------------------------------- */

#define TABLE 0x8000

static void table_desc(uint16_t i, uint64_t addr, uint32_t len,
                       uint16_t flags, uint16_t next)
{
    tr_desc_at(ram + TABLE + 16 * i, addr, len, flags, next);
}

static void test_indirect_chain(void **state)
{
    struct fixture *f = *state;
    f->vq.indirect = true;
    enable(f);
    table_desc(0, BUF, 16, VQ_DESC_F_NEXT, 2);
    table_desc(2, BUF + 0x100, 1024, VQ_DESC_F_NEXT, 1);
    table_desc(1, BUF + 0x800, 1, VQ_DESC_F_WRITE, 0);
    /* One direct buffer, then the table. */
    tr_desc(&f->tr, 4, BUF + 0x1000, 8, VQ_DESC_F_NEXT, 6);
    tr_desc(&f->tr, 6, TABLE, 3 * 16, VQ_DESC_F_INDIRECT, 0);
    tr_publish(&f->tr, 4);
    assert_int_equal(pop(f), VQ_CHAIN);
    assert_int_equal(f->chain.head, 4);
    assert_int_equal(f->chain.n_read, 3);
    assert_int_equal(f->chain.n_write, 1);
    assert_int_equal(f->chain.read_len, 8 + 16 + 1024);
    assert_ptr_equal(f->iov[3].iov_base, ram + BUF + 0x800);
}

static void test_indirect_needs_negotiation(void **state)
{
    struct fixture *f = *state;
    enable(f);
    table_desc(0, BUF, 16, 0, 0);
    tr_desc(&f->tr, 0, TABLE, 16, VQ_DESC_F_INDIRECT, 0);
    tr_publish(&f->tr, 0);
    assert_int_equal(pop(f), VQ_BROKEN);
}

static void expect_broken_table(struct fixture *f, uint64_t addr,
                                uint32_t len, uint16_t flags)
{
    f->vq.indirect = true;
    enable(f);
    tr_desc(&f->tr, 0, addr, len, flags, 0);
    tr_publish(&f->tr, 0);
    assert_int_equal(pop(f), VQ_BROKEN);
}

static void test_indirect_len_not_multiple_of_16(void **state)
{
    table_desc(0, BUF, 16, 0, 0);
    expect_broken_table(*state, TABLE, 24, VQ_DESC_F_INDIRECT);
}

static void test_indirect_len_zero(void **state)
{
    expect_broken_table(*state, TABLE, 0, VQ_DESC_F_INDIRECT);
}

static void test_indirect_table_outside_ram(void **state)
{
    expect_broken_table(*state, RAM_SIZE - 16, 32, VQ_DESC_F_INDIRECT);
}

static void test_indirect_with_next_flag(void **state)
{
    table_desc(0, BUF, 16, 0, 0);
    expect_broken_table(*state, TABLE, 16,
                        VQ_DESC_F_INDIRECT | VQ_DESC_F_NEXT);
}

static void test_nested_indirect(void **state)
{
    table_desc(0, TABLE + 0x100, 16, VQ_DESC_F_INDIRECT, 0);
    table_desc(16, BUF, 16, 0, 0);
    expect_broken_table(*state, TABLE, 16, VQ_DESC_F_INDIRECT);
}

static void test_indirect_next_beyond_table(void **state)
{
    table_desc(0, BUF, 16, VQ_DESC_F_NEXT, 2); /* table has 2 entries */
    table_desc(1, BUF, 16, 0, 0);
    expect_broken_table(*state, TABLE, 32, VQ_DESC_F_INDIRECT);
}

static void test_indirect_loop(void **state)
{
    table_desc(0, BUF, 16, VQ_DESC_F_NEXT, 1);
    table_desc(1, BUF, 16, VQ_DESC_F_NEXT, 0);
    expect_broken_table(*state, TABLE, 32, VQ_DESC_F_INDIRECT);
}

static void test_indirect_counts_toward_hop_limit(void **state)
{
    struct fixture *f = *state;
    /* QSIZE + 1 entries chained in a table: longer than the queue. */
    for (uint16_t i = 0; i <= QSIZE; i++)
        table_desc(i, BUF, 1, i < QSIZE ? VQ_DESC_F_NEXT : 0,
                   (uint16_t)(i + 1));
    expect_broken_table(f, TABLE, (QSIZE + 1) * 16, VQ_DESC_F_INDIRECT);
}

static void test_indirect_table_of_queue_size_is_fine(void **state)
{
    struct fixture *f = *state;
    f->vq.indirect = true;
    enable(f);
    for (uint16_t i = 0; i < QSIZE; i++)
        table_desc(i, BUF, 1, i + 1 < QSIZE ? VQ_DESC_F_NEXT : 0,
                   (uint16_t)(i + 1));
    tr_desc(&f->tr, 0, TABLE, QSIZE * 16, VQ_DESC_F_INDIRECT, 0);
    tr_publish(&f->tr, 0);
    assert_int_equal(pop(f), VQ_CHAIN);
    assert_int_equal(f->chain.n_read, QSIZE);
}

static void test_indirect_direction_rule_spans_table(void **state)
{
    struct fixture *f = *state;
    f->vq.indirect = true;
    enable(f);
    table_desc(0, BUF, 16, 0, 0); /* readable after a writable direct one */
    tr_desc(&f->tr, 0, BUF, 4, VQ_DESC_F_NEXT | VQ_DESC_F_WRITE, 1);
    tr_desc(&f->tr, 1, TABLE, 16, VQ_DESC_F_INDIRECT, 0);
    tr_publish(&f->tr, 0);
    assert_int_equal(pop(f), VQ_BROKEN);
}

/* ---- interrupt and notification suppression -------------------------- */

static void push_one(struct fixture *f)
{
    tr_desc(&f->tr, 0, BUF, 4, 0, 0);
    tr_publish(&f->tr, 0);
    assert_int_equal(pop(f), VQ_CHAIN);
    vq_push(&f->vq, 0, 0);
}

static void test_no_interrupt_flag(void **state)
{
    struct fixture *f = *state;
    enable(f);
    push_one(f);
    assert_true(vq_should_notify(&f->vq));
    assert_false(vq_should_notify(&f->vq)); /* nothing new */
    tr_set_avail_flags(&f->tr, VQ_AVAIL_F_NO_INTERRUPT);
    push_one(f);
    assert_false(vq_should_notify(&f->vq));
}

static void test_event_idx_interrupts(void **state)
{
    struct fixture *f = *state;
    f->vq.event_idx = true;
    enable(f);
    tr_set_avail_flags(&f->tr, VQ_AVAIL_F_NO_INTERRUPT); /* ignored */
    tr_set_used_event(&f->tr, 0);
    push_one(f); /* used.idx 0 -> 1 crosses used_event 0 */
    assert_true(vq_should_notify(&f->vq));
    tr_set_used_event(&f->tr, 2);
    push_one(f); /* 1 -> 2: not past 2 */
    assert_false(vq_should_notify(&f->vq));
    push_one(f); /* 2 -> 3: past 2 */
    assert_true(vq_should_notify(&f->vq));
    /* Two pushes in one batch that jump over the event. */
    tr_set_used_event(&f->tr, 3);
    push_one(f);
    push_one(f);
    assert_true(vq_should_notify(&f->vq));
}

static void test_event_idx_avail_event(void **state)
{
    struct fixture *f = *state;
    f->vq.event_idx = true;
    enable(f);
    push_one(f);
    push_one(f);
    assert_true(vq_enable_notify(&f->vq));
    assert_int_equal(tr_avail_event(&f->tr), 2);
    tr_publish(&f->tr, 0);
    assert_false(vq_enable_notify(&f->vq)); /* one raced in */
}

static void test_no_notify_flag(void **state)
{
    struct fixture *f = *state;
    enable(f);
    vq_disable_notify(&f->vq);
    assert_int_equal(tr_used_flags(&f->tr), VQ_USED_F_NO_NOTIFY);
    assert_true(vq_enable_notify(&f->vq));
    assert_int_equal(tr_used_flags(&f->tr), 0);
}

static void test_reset_forgets_everything(void **state)
{
    struct fixture *f = *state;
    f->vq.size = 4;
    enable(f);
    push_one(f);
    vq_reset(&f->vq);
    assert_false(f->vq.ready);
    assert_int_equal(f->vq.size, QSIZE);
    assert_int_equal(f->vq.desc_gpa, 0);
    assert_int_equal(f->vq.last_avail, 0);
    assert_int_equal(pop(f), VQ_EMPTY);
}

/* ---- cursors ----------------------------------------------------------- */

static void make_scattered_chain(struct fixture *f)
{
    /* readable: 3 + 5 bytes; writable: 2 + 4 + 1 bytes */
    memcpy(ram + BUF, "abc", 3);
    memcpy(ram + BUF + 0x10, "defgh", 5);
    tr_desc(&f->tr, 0, BUF, 3, VQ_DESC_F_NEXT, 1);
    tr_desc(&f->tr, 1, BUF + 0x10, 5, VQ_DESC_F_NEXT, 2);
    tr_desc(&f->tr, 2, BUF + 0x20, 2, VQ_DESC_F_NEXT | VQ_DESC_F_WRITE, 3);
    tr_desc(&f->tr, 3, BUF + 0x30, 4, VQ_DESC_F_NEXT | VQ_DESC_F_WRITE, 4);
    tr_desc(&f->tr, 4, BUF + 0x40, 1, VQ_DESC_F_WRITE, 0);
    tr_publish(&f->tr, 0);
    enable(f);
    assert_int_equal(pop(f), VQ_CHAIN);
}

static void test_reader_crosses_buffers(void **state)
{
    struct fixture *f = *state;
    make_scattered_chain(f);
    struct vq_reader r;
    vq_reader_init(&r, &f->chain);
    char buf[16] = {0};
    assert_int_equal(vq_read(&r, buf, 2), 2);
    assert_int_equal(vq_read(&r, buf + 2, 4), 4);
    assert_memory_equal(buf, "abcdef", 6);
    assert_int_equal(vq_reader_remaining(&r), 2);
    assert_int_equal(vq_read(&r, buf, 10), 2); /* short */
    assert_memory_equal(buf, "gh", 2);
    assert_int_equal(vq_read(&r, buf, 1), 0);
}

static void test_writer_and_last_byte(void **state)
{
    struct fixture *f = *state;
    make_scattered_chain(f);
    struct vq_writer w;
    vq_writer_init(&w, &f->chain);
    uint8_t *status = vq_writer_take_last_byte(&w);
    assert_ptr_equal(status, ram + BUF + 0x40);
    assert_int_equal(vq_writer_remaining(&w), 6);
    assert_int_equal(vq_write(&w, "123456789", 9), 6);
    assert_memory_equal(ram + BUF + 0x20, "12", 2);
    assert_memory_equal(ram + BUF + 0x30, "3456", 4);
    assert_int_equal(ram[BUF + 0x40], 0);
}

static void test_last_byte_inside_a_buffer(void **state)
{
    struct fixture *f = *state;
    tr_desc(&f->tr, 0, BUF, 10, VQ_DESC_F_WRITE, 0);
    tr_publish(&f->tr, 0);
    enable(f);
    assert_int_equal(pop(f), VQ_CHAIN);
    struct vq_writer w;
    vq_writer_init(&w, &f->chain);
    assert_int_equal(vq_writer_skip(&w, 3), 3);
    assert_ptr_equal(vq_writer_take_last_byte(&w), ram + BUF + 9);
    assert_ptr_equal(vq_writer_take_last_byte(&w), ram + BUF + 8);
    assert_int_equal(vq_writer_remaining(&w), 5);
}

static void test_iov_slices(void **state)
{
    struct fixture *f = *state;
    make_scattered_chain(f);
    struct vq_reader r;
    vq_reader_init(&r, &f->chain);
    vq_reader_skip(&r, 1);
    struct iovec out[4];
    assert_int_equal(vq_reader_iov(&r, 8, out, 4), -1); /* only 7 left */
    assert_int_equal(vq_reader_iov(&r, 4, out, 1), -1); /* cap too small */
    assert_int_equal(vq_reader_iov(&r, 4, out, 4), 2);
    assert_ptr_equal(out[0].iov_base, ram + BUF + 1);
    assert_int_equal(out[0].iov_len, 2);
    assert_ptr_equal(out[1].iov_base, ram + BUF + 0x10);
    assert_int_equal(out[1].iov_len, 2);
    assert_int_equal(vq_reader_remaining(&r), 3);
    char rest[3];
    assert_int_equal(vq_read(&r, rest, 3), 3);
    assert_memory_equal(rest, "fgh", 3);
}

static void test_iov_slice_in_place(void **state)
{
    struct fixture *f = *state;
    make_scattered_chain(f);
    struct vq_writer w;
    vq_writer_init(&w, &f->chain);
    vq_writer_take_last_byte(&w);
    /* Into the chain's own array, as virtio-blk does. */
    assert_int_equal(vq_writer_iov(&w, 6, f->iov, 64), 2);
    assert_ptr_equal(f->iov[0].iov_base, ram + BUF + 0x20);
    assert_int_equal(f->iov[0].iov_len, 2);
    assert_ptr_equal(f->iov[1].iov_base, ram + BUF + 0x30);
    assert_int_equal(f->iov[1].iov_len, 4);
}

#define T(fn) cmocka_unit_test_setup(fn, setup)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_enable_accepts_good_rings),
        T(test_enable_rejects_bad_size),
        T(test_enable_rejects_misalignment),
        T(test_enable_rejects_rings_outside_ram),
        T(test_legacy_layout),
        T(test_pop_simple_chain),
        T(test_many_chains_wrap_around),
        T(test_avail_idx_jump_breaks_queue),
        T(test_avail_idx_exactly_size_is_fine),
        T(test_head_out_of_range),
        T(test_next_out_of_range),
        T(test_loop_is_detected),
        T(test_self_loop_is_detected),
        T(test_loop_of_empty_buffers_is_detected),
        T(test_chain_of_queue_size_is_fine),
        T(test_readable_after_writable_breaks),
        T(test_buffer_outside_ram_breaks),
        T(test_buffer_address_wrap_breaks),
        T(test_writable_buffer_in_rom_breaks),
        T(test_readable_buffer_in_rom_is_fine),
        T(test_zero_length_buffer_takes_no_iov),
        T(test_iov_capacity_is_respected),
        T(test_total_length_must_fit_u32),
        T(test_indirect_chain),
        T(test_indirect_needs_negotiation),
        T(test_indirect_len_not_multiple_of_16),
        T(test_indirect_len_zero),
        T(test_indirect_table_outside_ram),
        T(test_indirect_with_next_flag),
        T(test_nested_indirect),
        T(test_indirect_next_beyond_table),
        T(test_indirect_loop),
        T(test_indirect_counts_toward_hop_limit),
        T(test_indirect_table_of_queue_size_is_fine),
        T(test_indirect_direction_rule_spans_table),
        T(test_no_interrupt_flag),
        T(test_event_idx_interrupts),
        T(test_event_idx_avail_event),
        T(test_no_notify_flag),
        T(test_reset_forgets_everything),
        T(test_reader_crosses_buffers),
        T(test_writer_and_last_byte),
        T(test_last_byte_inside_a_buffer),
        T(test_iov_slices),
        T(test_iov_slice_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

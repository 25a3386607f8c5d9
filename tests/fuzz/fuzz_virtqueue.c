/* libFuzzer harness for the split virtqueue: the input becomes guest RAM
 * (rings, descriptors, indirect tables, buffers) plus the queue set-up.
 * Every chain the queue hands out must point inside guest memory with
 * the right access, and nothing may write to the read-only region.
 *
 * Input: byte 0 flags (bit0 EVENT_IDX, bit1 INDIRECT_DESC, bits 2-3 ring
 * placement), byte 1 log2 of the queue size, byte 2 rounds, rest: RAM. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "virtio/queue.h"

#define RAM_SIZE 0x4000
#define ROM_GPA 0x10000
#define ROM_SIZE 0x1000
#define MAX_SIZE 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct env {
    struct guest_mem mem;
    uint8_t *ram, *rom;
    uint8_t rom_copy[ROM_SIZE];
};

static bool inside(const uint8_t *base, size_t len, const struct iovec *v)
{
    const uint8_t *p = v->iov_base;
    return p >= base && v->iov_len <= len && (size_t)(p - base) <= len -
                                                 v->iov_len;
}

/* The oracle: each buffer lies in RAM or (readable only) in the ROM. */
static void check_chain(const struct env *e, const struct vq_chain *c)
{
    unsigned n = c->n_read + c->n_write;
    uint64_t rlen = 0, wlen = 0;
    for (unsigned i = 0; i < n; i++) {
        const struct iovec *v = &c->iov[i];
        bool ok = inside(e->ram, RAM_SIZE, v) ||
                  (i < c->n_read && inside(e->rom, ROM_SIZE, v));
        if (!ok || v->iov_len == 0)
            abort();
        *(i < c->n_read ? &rlen : &wlen) += v->iov_len;
    }
    if (rlen != c->read_len || wlen != c->write_len)
        abort();
}

/* Consumes the chain through the cursors the way devices do. */
static void consume(struct vq_chain *c)
{
    uint8_t buf[512];
    struct vq_reader r;
    struct vq_writer w;
    vq_reader_init(&r, c);
    vq_writer_init(&w, c);
    vq_read(&r, buf, 16);
    uint8_t *last = vq_writer_take_last_byte(&w);
    if (last)
        *last = 0xA5;
    struct iovec slice[MAX_SIZE];
    if (vq_reader_iov(&r, vq_reader_remaining(&r) / 2, slice, MAX_SIZE) < 0)
        abort();
    while (vq_read(&r, buf, sizeof(buf)) > 0)
        ;
    memset(buf, 0x5A, sizeof(buf));
    vq_write(&w, buf, 7);
    if (vq_writer_iov(&w, vq_writer_remaining(&w), c->iov, MAX_SIZE) < 0)
        abort();
}

static void place_rings(struct virtqueue *vq, unsigned how)
{
    uint16_t n = vq->size;
    switch (how) {
    case 0: /* legacy layout at page 1 */
        vq_set_legacy_layout(vq, 1);
        break;
    case 1: /* packed back to back */
        vq->desc_gpa = 0x100;
        vq->avail_gpa = 0x100 + 16ULL * n;
        vq->used_gpa = ALIGN_UP(vq->avail_gpa + 6 + 2ULL * n, 4ULL);
        break;
    case 2: /* descriptors in the ROM */
        vq->desc_gpa = ROM_GPA;
        vq->avail_gpa = 0x3000;
        vq->used_gpa = 0x3400;
        break;
    default: /* near the end of RAM */
        vq->desc_gpa = RAM_SIZE - 16ULL * n;
        vq->avail_gpa = 0x40;
        vq->used_gpa = 0x800;
        break;
    }
}

static void run(struct env *e, uint8_t flags, uint8_t size_log2,
                uint8_t rounds)
{
    struct virtqueue vq;
    vq_init(&vq, &e->mem, MAX_SIZE);
    vq.size = (uint16_t)(1u << (size_log2 % 9));
    vq.event_idx = flags & 1;
    vq.indirect = flags & 2;
    place_rings(&vq, (flags >> 2) & 3);
    if (vq_enable(&vq) < 0)
        return;
    struct iovec iov[MAX_SIZE];
    struct vq_chain c;
    for (unsigned round = 0; round <= rounds % 4; round++) {
        vq_disable_notify(&vq);
        for (unsigned i = 0; i < 2u * MAX_SIZE; i++) {
            enum vq_pop_result res = vq_pop(&vq, &c, iov, MAX_SIZE);
            if (res != VQ_CHAIN)
                break;
            check_chain(e, &c);
            consume(&c);
            vq_push(&vq, c.head, c.write_len);
        }
        vq_should_notify(&vq);
        vq_enable_notify(&vq);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    struct env e = {0};
    /* Exact-size heap blocks, so ASan sees any stray access. */
    e.ram = calloc(1, RAM_SIZE);
    e.rom = malloc(ROM_SIZE);
    if (!e.ram || !e.rom)
        abort();
    size_t n = size - 3 < RAM_SIZE ? size - 3 : RAM_SIZE;
    memcpy(e.ram, data + 3, n);
    for (size_t i = 0; i < ROM_SIZE; i++)
        e.rom[i] = e.ram[i % RAM_SIZE] ^ 0x55;
    memcpy(e.rom_copy, e.rom, ROM_SIZE);
    if (gmem_add(&e.mem, 0, RAM_SIZE, e.ram, false) < 0 ||
        gmem_add(&e.mem, ROM_GPA, ROM_SIZE, e.rom, true) < 0)
        abort();
    run(&e, data[0], data[1], data[2]);
    if (memcmp(e.rom, e.rom_copy, ROM_SIZE) != 0)
        abort(); /* something wrote to read-only guest memory */
    free(e.ram);
    free(e.rom);
    return 0;
}

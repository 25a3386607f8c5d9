#!/usr/bin/env python3
"""Writes seed inputs for the virtio fuzz harnesses.

usage: make-seeds.py OUTDIR   (creates OUTDIR/fuzz_virtqueue/, ...)

Each seed is a well-formed starting point the fuzzer mutates: the header
bytes the harness reads, then guest RAM from gpa 0 with split rings in the
legacy layout at gpa 0x1000 (descriptors, available ring, used ring at the
next 4 KiB boundary) and the requests' buffers above them.
"""
import os
import struct
import sys

RING = 0x1000
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4


class Ram:
    def __init__(self, size):
        self.b = bytearray(size)

    def put(self, gpa, data):
        self.b[gpa:gpa + len(data)] = data


class Ring:
    def __init__(self, ram, size):
        self.ram, self.size = ram, size
        self.desc = RING
        self.avail = RING + 16 * size
        self.used = (self.avail + 6 + 2 * size + 4095) & ~4095
        self.next_desc = 0
        self.avail_idx = 0

    def desc_at(self, idx, addr, length, flags, nxt):
        self.ram.put(self.desc + 16 * idx,
                     struct.pack('<QIHH', addr, length, flags, nxt))

    def chain(self, bufs):
        """bufs: list of (gpa, len, writable). Returns the head."""
        head = self.next_desc
        for i, (gpa, length, writable) in enumerate(bufs):
            idx = self.next_desc
            self.next_desc += 1
            last = i == len(bufs) - 1
            flags = (0 if last else F_NEXT) | (F_WRITE if writable else 0)
            self.desc_at(idx, gpa, length, flags, 0 if last else idx + 1)
        self.publish(head)
        return head

    def indirect(self, table_gpa, bufs):
        for i, (gpa, length, writable) in enumerate(bufs):
            last = i == len(bufs) - 1
            flags = (0 if last else F_NEXT) | (F_WRITE if writable else 0)
            self.ram.put(table_gpa + 16 * i,
                         struct.pack('<QIHH', gpa, length, flags,
                                     0 if last else i + 1))
        idx = self.next_desc
        self.next_desc += 1
        self.desc_at(idx, table_gpa, 16 * len(bufs), F_INDIRECT, 0)
        self.publish(idx)

    def publish(self, head):
        slot = self.avail_idx % self.size
        self.ram.put(self.avail + 4 + 2 * slot, struct.pack('<H', head))
        self.avail_idx += 1
        self.ram.put(self.avail + 2, struct.pack('<H', self.avail_idx))


def virtqueue_seeds():
    seeds = {}
    for name, flags in (('plain', 0x0), ('event-indirect', 0x3)):
        ram = Ram(0x4000)
        ring = Ring(ram, 8)
        ring.chain([(0x2000, 16, False), (0x2100, 512, True),
                    (0x2400, 1, True)])
        ring.chain([(0x2500, 64, False)])
        if flags & 2:
            ring.indirect(0x3800, [(0x2600, 16, False), (0x2700, 32, True)])
        seeds[name] = bytes([flags, 3, 1]) + bytes(ram.b)
    return seeds


def blk_header(rtype, sector):
    return struct.pack('<IIQ', rtype, 0, sector)


def virtio_blk_seeds():
    seeds = {}
    ram = Ram(0x10000)
    ring = Ring(ram, 16)
    hdr, data, status = 0x4000, 0x6000, 0x5000
    reqs = [  # type, sector, data len, data device-writable
        (0, 0, 1024, True),   # read
        (1, 8, 512, False),   # write
        (4, 0, 0, False),     # flush
        (8, 0, 20, True),     # get id
        (11, 0, 16, False),   # discard
        (13, 0, 16, False),   # write zeroes
        (99, 0, 0, False),    # unsupported
    ]
    for i, (rtype, sector, length, writable) in enumerate(reqs):
        h = hdr + 16 * i
        ram.put(h, blk_header(rtype, sector))
        d = data + 0x800 * i
        if rtype in (11, 13):
            ram.put(d, struct.pack('<QII', 16, 8, 1 if rtype == 13 else 0))
        bufs = [(h, 16, False)]
        if length:
            bufs.append((d, length, writable))
        bufs.append((status + i, 1, True))
        ring.chain(bufs)
    body = bytes(ram.b)
    # modern + FLUSH + DISCARD + WRITE_ZEROES; legacy; modern with
    # EVENT_IDX/INDIRECT and a reset in flight; read-only disk.
    for name, flags in (('modern', 0x33), ('legacy', 0x00),
                        ('reset', 0xBF), ('readonly', 0x41)):
        seeds[name] = bytes([flags, 4, 1]) + body
    return seeds


def emulate_seed(mode, insn, rdi=0x20000):
    """fuzz_emulate input: mode, mode bits, GPRs, RIP, RFLAGS, XCR0 and
    XSTATE_BV choices, the exit's instruction bytes, then guest memory:
    4-level tables at 0x1000 identity-mapping 2 MiB, code at 0x10000."""
    head = bytes([mode]) + struct.pack('<I', 0)
    for i in range(16):
        value = rdi if i == 7 else 0x8000 if i == 4 else 0
        head += b'\x01' + struct.pack('<Q', value)
    head += struct.pack('<I', 0x10000)[:3] + struct.pack('<H', 0)
    head += bytes([0xE7, 0x7, len(insn)]) + insn
    ram = Ram(0x40000)
    ram.put(0x1000, struct.pack('<Q', 0x2003))
    ram.put(0x2000, struct.pack('<Q', 0x3003))
    ram.put(0x3000, struct.pack('<Q', 0x83))
    ram.put(0x10000, insn)
    return head + bytes(ram.b)


def emulate_seeds():
    insns = {
        'vmovdqu': bytes.fromhex('c5fa6f07'),
        'vmovdqu64-disp8': bytes.fromhex('62f1fe487f4701'),
        'xsave64': bytes.fromhex('480fae27'),
        'xrstor64': bytes.fromhex('480fae2f'),
        'xsavec64': bytes.fromhex('480fc727'),
        'cmpxchg16b': bytes.fromhex('f0480fc70f'),
        'int3': bytes.fromhex('cc'),
        'popcnt': bytes.fromhex('f3480fb807'),
        'crc32': bytes.fromhex('f2480f38f107'),
    }
    seeds = {}
    for name, insn in insns.items():
        seeds['long-' + name] = emulate_seed(4, insn)
        seeds['compat-' + name] = emulate_seed(6, insn)
    return seeds


def main():
    out = sys.argv[1]
    for harness, seeds in (('fuzz_virtqueue', virtqueue_seeds()),
                           ('fuzz_virtio_blk', virtio_blk_seeds()),
                           ('fuzz_emulate', emulate_seeds())):
        d = os.path.join(out, harness)
        os.makedirs(d, exist_ok=True)
        for name, blob in seeds.items():
            with open(os.path.join(d, name), 'wb') as f:
                f.write(blob)


if __name__ == '__main__':
    main()

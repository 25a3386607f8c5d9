#!/usr/bin/env python3
"""Builds the boot-protocol test image: the setup sectors (a flat binary
from setup.S) followed by the payload, flattened from its ELF program
headers. Fills the two header fields that depend on the payload: syssize
(file size in 16-byte units) and init_size (memory from the load address
the payload needs, .bss included)."""
import struct
import sys

HDR_SETUP_SECTS = 0x1F1
HDR_SYSSIZE = 0x1F4
HDR_BOOT_FLAG = 0x1FE
HDR_MAGIC = 0x202
HDR_INIT_SIZE = 0x260
PT_LOAD = 1


def flatten(elf):
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        sys.exit("mkbzimage: payload is not a 64-bit ELF")
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    image, mem_end = bytearray(), 0
    for i in range(phnum):
        p_type, _, off, vaddr, _, filesz, memsz, _ = struct.unpack_from(
            "<IIQQQQQQ", elf, phoff + i * phentsize)
        if p_type != PT_LOAD:
            continue
        mem_end = max(mem_end, vaddr + memsz)
        if not filesz:
            continue
        if len(image) < vaddr + filesz:
            image.extend(bytes(vaddr + filesz - len(image)))
        image[vaddr:vaddr + filesz] = elf[off:off + filesz]
    return image, mem_end


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: mkbzimage.py SETUP.bin PAYLOAD.elf OUTPUT")
    setup = bytearray(open(sys.argv[1], "rb").read())
    payload, mem_end = flatten(open(sys.argv[2], "rb").read())
    sects = setup[HDR_SETUP_SECTS]
    if (len(setup) != (sects + 1) * 512 or
            setup[HDR_BOOT_FLAG:HDR_BOOT_FLAG + 2] != b"\x55\xaa" or
            setup[HDR_MAGIC:HDR_MAGIC + 4] != b"HdrS"):
        sys.exit("mkbzimage: setup binary has no valid setup header")
    payload.extend(bytes(-len(payload) % 16))
    init_size = (mem_end + 4095) & ~4095
    struct.pack_into("<I", setup, HDR_SYSSIZE, len(payload) // 16)
    struct.pack_into("<I", setup, HDR_INIT_SIZE, init_size)
    with open(sys.argv[3], "wb") as f:
        f.write(setup + payload)


if __name__ == "__main__":
    main()

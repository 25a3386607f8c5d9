"""Tiny test guests assembled on the fly with the host's gcc and ld:
a boot-sector disk (16-bit code at 0x7C00) and a PVH kernel (32-bit code
at 1 MiB with the Xen PVH entry note)."""
import os
import subprocess

PVH_LINKER_SCRIPT = ('ENTRY(_start)\nPHDRS { text PT_LOAD; note PT_NOTE; }\n'
                     'SECTIONS { . = 0x100000; .text : { *(.text) } :text\n'
                     '  .note : { *(.note.Xen) } :text :note }\n')
PVH_NOTE = '''
    .section .note.Xen, "a"
    .long 4, 4, 18
    .asciz "Xen"
    .long _start
'''


def _assemble(d, name, source):
    src = os.path.join(d, name + '.S')
    with open(src, 'w') as f:
        f.write(source)
    return src


def boot_sector_disk(d, source, name='sector', size=1 << 20):
    """Assembles a boot sector (the source ends with .org 510 / 0xaa55)
    and returns a raw disk image of size bytes holding it."""
    src = _assemble(d, name, source)
    obj, binf = os.path.join(d, name + '.o'), os.path.join(d, name + '.bin')
    subprocess.run(['gcc', '-c', src, '-o', obj], check=True)
    subprocess.run(['ld', '-Ttext=0x7c00', '--oformat', 'binary', '-o', binf,
                    obj], check=True)
    disk = os.path.join(d, name + '.img')
    with open(disk, 'wb') as f, open(binf, 'rb') as b:
        f.write(b.read())
        f.truncate(size)
    return disk


def pvh_kernel(d, code32, name='pvh'):
    """Builds an ELF kernel whose PVH entry runs code32 (`_start` label
    supplied here) in flat 32-bit protected mode."""
    src = _assemble(d, name, PVH_NOTE + '    .text\n    .code32\n'
                    '    .globl _start\n_start:\n' + code32)
    lds = os.path.join(d, name + '.ld')
    with open(lds, 'w') as f:
        f.write(PVH_LINKER_SCRIPT)
    obj, elf = os.path.join(d, name + '.o'), os.path.join(d, name + '.elf')
    subprocess.run(['gcc', '-m32', '-c', src, '-o', obj], check=True)
    subprocess.run(['ld', '-m', 'elf_i386', '-T', lds, obj, '-o', elf],
                   check=True)
    return elf

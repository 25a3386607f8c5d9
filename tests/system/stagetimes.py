#!/usr/bin/env python3
"""Wall time of each boot stage, across a test run.

System tests call record() for each boot; the times go, one JSON line per
boot, to the file named by $KVMPC_STAGE_TIMES (nothing is recorded when it
is unset). `stagetimes.py FILE` prints them as one table: the time at
which each stage was first seen.
"""
import json
import os
import sys

ORDER = ['firmware', 'boot', 'bootloader', 'kernel', 'initramfs',
         'userspace', 'summary', 'poweroff']


def record(title, stages, seconds, outcome):
    path = os.environ.get('KVMPC_STAGE_TIMES')
    if not path:
        return
    with open(path, 'a') as f:
        f.write(json.dumps({'title': title, 'stages': stages,
                            'end': round(seconds, 1),
                            'outcome': outcome}) + '\n')


def table(rows):
    names = [n for n in ORDER if any(n in r['stages'] for r in rows)]
    names += sorted({n for r in rows for n in r['stages']} - set(names))
    width = max([len(r['title']) for r in rows] + [10])
    head = '%-*s' % (width, 'boot') + ''.join('%11s' % n[:10] for n in names)
    lines = [head + '%9s  outcome' % 'end', '-' * (len(head) + 20)]
    for r in rows:
        cells = []
        for n in names:
            t = r['stages'].get(n)
            if t is None:
                cells.append('%11s' % '-')
            else:
                cells.append('%11.1f' % t)
        lines.append('%-*s' % (width, r['title'][:width]) + ''.join(cells) +
                     '%9.1f  %s' % (r['end'], r['outcome']))
    return '\n'.join(lines)


def main():
    path = sys.argv[1]
    if not os.path.exists(path):
        return 0
    rows = [json.loads(l) for l in open(path) if l.strip()]
    if rows:
        print('Boot stages (seconds from start at which each was first '
              'seen):')
        print(table(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())

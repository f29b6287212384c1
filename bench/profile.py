"""Summarise a py-spy raw (collapsed stacks) profile: where the samples are, by function.

    python -m bench.profile FILE.raw [--top 25] [--match gateway/] [--within send_batch]

--within keeps only the stacks through a function (e.g. the worker's job, not its idle threads).
"""
from __future__ import annotations

import argparse
import re
from collections import Counter

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def _frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for frame in stack.split(";"):
        m = _FRAME.match(frame.strip())
        if m:
            path = m["file"]
            for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
                if marker in path:
                    path = path.split(marker, 1)[1]
            out.append((m["func"], path))
        else:
            out.append((frame.strip(), ""))
    return out


def summarise(path: str, top: int = 25, match: str | None = None, within: str | None = None) -> str:
    """Self and inclusive sample shares per function; `match` restricts the inclusive list."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = _frames(stack)
            if within and not any(within in f"{fn} ({p})" for fn, p in frames):
                continue
            total += n
            if not frames:
                continue
            leaf = frames[-1]
            self_c[f"{leaf[0]} ({leaf[1]})"] += n
            for name in {f"{fn} ({p})" for fn, p in frames}:
                if match is None or match in name:
                    incl[name] += n
    total = max(total, 1)
    lines = [f"{total} samples" + (f" through {within}" if within else ""), "", "inclusive:" + (f" (matching {match})" if match else "")]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in incl.most_common(top)]
    lines += ["", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in self_c.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("file")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--match")
    ap.add_argument("--within")
    args = ap.parse_args()
    print(summarise(args.file, args.top, args.match, args.within))


if __name__ == "__main__":
    main()

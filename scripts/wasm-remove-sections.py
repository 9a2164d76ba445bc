#!/usr/bin/env python3
"""Copies a WebAssembly module without the custom sections whose names match the patterns.

usage: wasm-remove-sections.py IN OUT PATTERN...   (fnmatch patterns, e.g. 'component-type:*foo*')

`make wasm` uses it to drop `component-type` sections the component does not need: the `wasi`
crate's own three worlds (the crate, which spin-sdk depends on, embeds them; they only repeat
interfaces other sections describe) and spin-sdk's description of the whole Spin platform, of
which the component imports only `fermyon:spin/variables`, described by the component's own
small section (src/lib.rs). What is left describes every import, so Spin still makes a
component of the module (crates/cli/tests/component.rs checks the result). Every other
section is copied byte for byte, in order.
"""
import fnmatch
import sys


def leb128(data, pos):
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__.strip().splitlines()[2])
    source, target, patterns = sys.argv[1], sys.argv[2], sys.argv[3:]
    data = open(source, "rb").read()
    if data[:4] != b"\0asm" or data[4:8] != b"\x01\0\0\0":
        sys.exit(f"{source}: not a WebAssembly core module")
    out = bytearray(data[:8])
    pos = 8
    removed = []
    while pos < len(data):
        start = pos
        section_id = data[pos]
        size, body = leb128(data, pos + 1)
        end = body + size
        if end > len(data):
            sys.exit(f"{source}: truncated section at byte {start}")
        if section_id == 0:
            name_len, name_at = leb128(data, body)
            name = data[name_at:name_at + name_len].decode("utf-8")
            if any(fnmatch.fnmatchcase(name, p) for p in patterns):
                removed.append((name, end - start))
                pos = end
                continue
        out += data[start:end]
        pos = end
    with open(target, "wb") as f:
        f.write(out)
    for name, size in removed:
        print(f"removed custom section `{name}` ({size} bytes)")
    if not removed:
        print(f"no custom section matched {' '.join(patterns)}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the seed of the e5_file_parse fuzz target: the smallest complete
E5S1 container that E5File::parse accepts (hidden size 32, one layer, one
head, feed-forward 32, eight pieces, three positions, one token type, a
three-entry normaliser table, every tensor the encoder needs; weights are
zeros). The layout is the one crates/metachat-engine/src/e5_file.rs reads.

Usage: fuzz/make_e5_seed.py  (writes fuzz/corpus/e5_file_parse/seed-tiny-e5s1)
"""
import os
import struct

HIDDEN, LAYERS, HEADS, FFN, VOCAB, POS, TYPES = 32, 1, 1, 32, 8, 3, 1
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "\u2581", "\u2581a", "b", "\u00e9"]
SCORES = [0.0, 0.0, 0.0, 0.0, -2.0, -3.0, -4.0, -5.0]
NORMALISER = [(0x09, [0x20]), (0x0B, []), (0xFB01, [0x66, 0x69])]

F32, Q4 = 0, 1


def tensors():
    t = [
        ("emb.word", Q4, VOCAB * HIDDEN),
        ("emb.pos", F32, POS * HIDDEN),
        ("emb.type", F32, TYPES * HIDDEN),
        ("emb.ln.w", F32, HIDDEN),
        ("emb.ln.b", F32, HIDDEN),
    ]
    for l in range(LAYERS):
        for n, dt, size in [
            ("q.w", Q4, HIDDEN * HIDDEN), ("k.w", Q4, HIDDEN * HIDDEN),
            ("v.w", Q4, HIDDEN * HIDDEN), ("ao.w", Q4, HIDDEN * HIDDEN),
            ("fi.w", Q4, FFN * HIDDEN), ("fo.w", Q4, HIDDEN * FFN),
            ("q.b", F32, HIDDEN), ("k.b", F32, HIDDEN), ("v.b", F32, HIDDEN),
            ("ao.b", F32, HIDDEN), ("fi.b", F32, FFN), ("fo.b", F32, HIDDEN),
            ("aln.w", F32, HIDDEN), ("aln.b", F32, HIDDEN),
            ("oln.w", F32, HIDDEN), ("oln.b", F32, HIDDEN),
        ]:
            t.append((f"l{l}.{n}", dt, size))
    return t


def nbytes(dtype, elements):
    return elements * 4 if dtype == F32 else elements // 32 * 18


def main():
    out = bytearray(b"E5S1")
    out += struct.pack("<I", 1)
    out += struct.pack("<7i", HIDDEN, LAYERS, HEADS, FFN, VOCAB, POS, TYPES)
    out += struct.pack("<f", 1e-12)
    out += struct.pack("<i", 32)
    blobs = [p.encode() for p in PIECES]
    out += struct.pack("<i", len(PIECES))
    out += struct.pack("<4i", 0, 2, 1, 3)
    blob = b"".join(blobs)
    out += struct.pack("<Q", len(blob))
    off = 0
    for b in [b""] + blobs:
        off += len(b)
        out += struct.pack("<I", off)
    out += struct.pack(f"<{len(SCORES)}f", *SCORES)
    out += blob
    norm = bytearray()
    for cp, to in NORMALISER:
        norm += struct.pack("<IB", cp, len(to)) + struct.pack(f"<{len(to)}I", *to)
    out += struct.pack("<iI", len(NORMALISER), len(norm)) + norm
    ts = tensors()
    out += struct.pack("<i", len(ts))
    directory_len = sum(2 + len(n) + 1 + 4 + 8 + 8 for n, _, _ in ts)
    data_at = len(out) + directory_len
    data = bytearray()
    for name, dtype, elements in ts:
        size = nbytes(dtype, elements)
        out += struct.pack("<H", len(name)) + name.encode()
        out += struct.pack("<BIQQ", dtype, elements, data_at + len(data), size)
        data += bytes(size)
    out += data
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "corpus", "e5_file_parse", "seed-tiny-e5s1")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(out)
    print(f"{path}: {len(out)} bytes")


if __name__ == "__main__":
    main()

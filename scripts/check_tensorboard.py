"""Reads the event file written by `examples/tensorboard_events.rs` with TensorBoard's own
reader and checks every tag, step and value. Called by scripts/check-tensorboard."""
import struct
import sys
import zlib

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def decode_png(data):
    """Decodes an 8-bit RGB PNG (all five row filters) into rows of bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8
            channels = {0: 1, 2: 3, 6: 4}[color]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for r in range(height):
        line = raw[r * (stride + 1):(r + 1) * (stride + 1)]
        kind, cur = line[0], bytearray(line[1:])
        for i in range(stride):
            a = cur[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                cur[i] = (cur[i] + a) & 255
            elif kind == 2:
                cur[i] = (cur[i] + b) & 255
            elif kind == 3:
                cur[i] = (cur[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (cur[i] + pred) & 255
        rows.append(bytes(cur))
        prev = cur
    return width, height, channels, rows


acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "images": 0, "histograms": 0})
acc.Reload()
tags = acc.Tags()
assert sorted(tags["scalars"]) == ["train/loss", "val/dice"], tags
assert tags["images"] == ["sample/slice"], tags
assert tags["histograms"] == ["weights/conv1"], tags

loss = [(e.step, e.value) for e in acc.Scalars("train/loss")]
assert loss == [(s, f32(1.0 / (s + 1))) for s in range(5)], loss
dice = [(e.step, e.value) for e in acc.Scalars("val/dice")]
assert dice == [(0, 0.5), (2, 0.625), (4, 0.75)], dice

(image,) = acc.Images("sample/slice")
assert (image.step, image.width, image.height) == (3, 3, 2), image
width, height, channels, rows = decode_png(image.encoded_image_string)
expected = [bytes(v for c in range(3) for v in (40 * r + 10 * c, 255 - 40 * r, 7 * c)) for r in range(2)]
assert (width, height, channels) == (3, 2, 3) and rows == expected, rows

(hist,) = acc.Histograms("weights/conv1")
h = hist.histogram_value
values = [float(v) for v in range(11)]
limits = [10 / 30 * (k + 1) for k in range(30)]
limits[-1] = 10.0
counts = [0.0] * 30
for v in values:
    counts[min(int(v / (10 / 30)), 29)] += 1
assert hist.step == 1
assert (h.min, h.max, h.num, h.sum, h.sum_squares) == (0.0, 10.0, 11.0, 55.0, 385.0), h
assert list(h.bucket) == counts, list(h.bucket)
assert all(abs(a - b) <= 1e-12 for a, b in zip(h.bucket_limit, limits)), list(h.bucket_limit)
print("tensorboard read back: 2 scalar tags (8 values), 1 image, 1 histogram — all exact")

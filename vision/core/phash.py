"""A perceptual hash of a photo: what tells a re-encoded, resized or re-tagged copy of one photo
from another photo, where sha256 only tells the same bytes.

pHash: the image in grey at 32x32, its 2-D DCT, the 8x8 lowest frequencies but the DC term compared
with their median: 64 bits, written as 16 hex digits. A copy saved again at another JPEG quality,
scaled, or with its EXIF rewritten stays within a few bits; two photos of different scenes differ
in about half of them. Measured on 40 garbage-cn photos: saved again at half size and JPEG quality
60, 0-2 bits; 10 px cut off each edge, 0-10; 10 % brighter, 0-4; any two of the 40, 18 or more
(mean 32). Pure: no clock, no storage.

Finding the stored hashes near one without reading them all: the 64 bits are cut into three bands
(22, 21 and 21 bits). Two hashes at most `NEAR_IDENTICAL_BITS` (8) apart differ in at most 2 bits
of at least one band (3 bands of 3 or more would make 9), so every stored hash within 8 bits has,
in some band, one of the 254 / 232 / 232 values within 2 bits of the query's: indexed lookups
that touch about 1 row in 3,000 of random photos, checked whole afterwards (`band_neighbours`;
`LookIndex` does the same in memory).

`KnownImages` holds images that may not be taken again (the frozen holdout, images already queued)
by bytes and by look, so that a re-encoded or resized copy is known as well as the file itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from itertools import combinations

import cv2
import numpy as np

HASH_SIDE = 32  # the grey thumbnail the DCT runs on
LOW = 8  # the low-frequency block kept: LOW x LOW bits
NEAR_IDENTICAL_BITS = 8  # at most this many differing bits: the same photo (see tests/test_reuse.py)
BAND_BITS = (22, 21, 21)  # the hash cut into indexed bands, most significant first


def perceptual_hash(image: np.ndarray) -> str:
    """The 64-bit pHash of a BGR or grey uint8 image, as 16 lowercase hex digits."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    small = cv2.resize(grey, (HASH_SIDE, HASH_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:LOW, :LOW].flatten()
    bits = low > np.median(low[1:])
    return f"{int(''.join('1' if bit else '0' for bit in bits), 2):016x}"


def hash_distance(first: str, second: str) -> int:
    """Differing bits of two hashes of `perceptual_hash`."""
    return (int(first, 16) ^ int(second, 16)).bit_count()


def near_identical(first: str, second: str, bits: int = NEAR_IDENTICAL_BITS) -> bool:
    return hash_distance(first, second) <= bits


def hash_bands(phash: str) -> tuple[int, ...]:
    """The hash's bands (`BAND_BITS`, most significant first) as integers, the values stored indexed."""
    value, bands, shift = int(phash, 16), [], 64
    for width in BAND_BITS:
        shift -= width
        bands.append((value >> shift) & ((1 << width) - 1))
    return tuple(bands)


def band_neighbours(phash: str, bits: int = NEAR_IDENTICAL_BITS) -> tuple[list[int], ...]:
    """For each band, every value within `bits // len(BAND_BITS)` bits of the hash's: a stored hash
    within `bits` of this one has its band value in at least one of these lists (pigeonhole)."""
    spread = bits // len(BAND_BITS)
    return tuple(
        [value ^ mask for mask in flip_masks(width, spread)]
        for value, width in zip(hash_bands(phash), BAND_BITS, strict=True)
    )


@cache
def flip_masks(width: int, spread: int) -> tuple[int, ...]:
    """Every mask of at most `spread` set bits among `width`, 0 first (the value itself)."""
    return tuple(
        sum(1 << p for p in positions)
        for flips in range(spread + 1)
        for positions in combinations(range(width), flips)
    )


@dataclass
class LookIndex:
    """Hashes held by key (a sha256), found near a query through their bands (`band_neighbours`)
    instead of comparing the query with every one."""

    looks: dict[str, str] = field(default_factory=dict)  # key -> perceptual hash
    bands: tuple[dict[int, list[str]], ...] = field(default_factory=lambda: tuple({} for _ in BAND_BITS))

    def add(self, key: str, phash: str) -> None:
        self.looks[key] = phash
        for index, value in zip(self.bands, hash_bands(phash), strict=True):
            index.setdefault(value, []).append(key)

    def near(self, phash: str, bits: int = NEAR_IDENTICAL_BITS) -> list[tuple[int, str]]:
        """(differing bits, key) of every held hash at most `bits` from this one, nearest first."""
        keys = {
            key
            for index, values in zip(self.bands, band_neighbours(phash, bits), strict=True)
            for value in values
            for key in index.get(value, ())
        }
        return sorted(
            (distance, key) for key in keys if (distance := hash_distance(phash, self.looks[key])) <= bits
        )


@dataclass
class KnownImages:
    """Images known by their bytes (sha256) or by their look (perceptual hash), each with why.

    Where sha256 alone was checked, a photo of the frozen holdout saved again at another quality,
    scaled or turned by its EXIF had other bytes and was taken into training data as a new photo.
    The looks are held in a `LookIndex`: a queue of N candidates checked against the holdout and a
    bureau's datasets costs N indexed lookups, not N times every stored look."""

    by_sha256: dict[str, str] = field(default_factory=dict)  # sha256 -> why it is known
    copy_reasons: dict[str, str] = field(default_factory=dict)  # perceptual hash -> why a copy is known
    looks: LookIndex = field(default_factory=LookIndex)  # each held hash under itself as key

    def add_look(self, phash: str, why: str) -> None:
        """Know copies of an image by its look; a look known already keeps its first reason."""
        if phash not in self.copy_reasons:
            self.copy_reasons[phash] = why
            self.looks.add(phash, phash)

    def update(self, other: KnownImages) -> None:
        """Know the images `other` knows too (its reasons for bytes known to both win)."""
        self.by_sha256.update(other.by_sha256)
        for phash, why in other.copy_reasons.items():
            self.add_look(phash, why)

    def why(self, sha256: str, phash: str | None = None) -> str | None:
        """Why the image is known (the same bytes, else the nearest look within NEAR_IDENTICAL_BITS),
        or None."""
        if sha256 in self.by_sha256:
            return self.by_sha256[sha256]
        if phash is not None and (near := self.looks.near(phash)):
            bits, look = near[0]
            return f"{self.copy_reasons[look]} (perceptual hash {bits} of 64 bits apart)"
        return None

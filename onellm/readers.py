"""Guarded readers for the two kinds of user file that several modalities share: a .npy
array and a PIL image. Each refuses an absurd declared size from the header, before anything
is decoded or allocated, and turns every failure, whatever the decoder raised, into a
BadInputError naming the file."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import numpy as np
from numpy.lib import format as npy_format
from PIL import Image

from .errors import BadInputError, describe
from .sources import FileSource, MemoryFile, readable

# 50 megapixels: more than a camera's default output (a 48 MP phone sensor) or a 7000x7000
# scan, while decoding a 16-bit depth map that large, with its float copies, stays near 1 GB.
MAX_PIXELS = 50_000_000
# 100 million values (400 MB as float32): a 16-million-point coloured cloud or a 50-megapixel
# depth map fits; a header that declares more belongs to a damaged or hostile file.
MAX_ARRAY_VALUES = 100_000_000
# Wider panoramas are rarely over 12:1; at 100:1 a 224-pixel short side makes 5 megapixels.
MAX_ASPECT = 100


def read_npy(path: FileSource) -> np.ndarray:
    """The numbers of a .npy file as float32 (never a pickle). The header is read first,
    through a memory map, so a giant declared shape is refused before anything is allocated."""
    try:
        mapped = _map_npy(path)
        if not isinstance(mapped, np.ndarray):  # np.load opens a zip as an .npz archive
            mapped.close()
            raise BadInputError(path, "an .npz archive, not a .npy array")
        if mapped.size > MAX_ARRAY_VALUES:
            raise BadInputError(
                path, f"declares an array of shape {list(mapped.shape)}, over the {MAX_ARRAY_VALUES:,}-value limit"
            )
        if mapped.dtype.kind not in "biuf":  # complex would lose its imaginary part with a warning
            raise BadInputError(path, f"holds {mapped.dtype} values, not real numbers")
        return np.array(mapped, dtype=np.float32)  # a copy: the map closes with `mapped`
    except BadInputError:
        raise
    except Exception as err:  # numpy's header parser raises tokenize.TokenError and SyntaxError too
        raise BadInputError(path, f"not a readable .npy array ({describe(err)})") from err


def npy_shape(path: FileSource) -> tuple[int, ...] | None:
    """The shape a .npy header declares, or None when the file is no readable .npy array."""
    try:
        mapped = _map_npy(path)
    except Exception:
        return None
    return tuple(mapped.shape) if isinstance(mapped, np.ndarray) else None


# The header readers of the .npy format versions np.load reads; 3.0 differs from 2.0 only in
# allowing UTF-8 field names, which no array of numbers has.
_NPY_HEADERS = {
    (1, 0): npy_format.read_array_header_1_0,
    (2, 0): npy_format.read_array_header_2_0,
    (3, 0): npy_format.read_array_header_2_0,
}


def _map_npy(path: FileSource) -> np.ndarray | np.lib.npyio.NpzFile:
    """np.load's memory map of a .npy file; for bytes in memory, the same read-only view over
    them, which fails where the map would (a declared size larger than the data) and copies
    nothing. Anything else goes to np.load, which opens an .npz and refuses a pickle."""
    if not isinstance(path, MemoryFile):
        return np.load(path, mmap_mode="r", allow_pickle=False)
    f = path.open("rb")
    if not path.data.startswith(npy_format.MAGIC_PREFIX):
        return np.load(f, allow_pickle=False)
    shape, fortran, dtype = _npy_header(f)
    return np.ndarray(shape, dtype, buffer=path.data, offset=f.tell(), order="F" if fortran else "C")


def _npy_header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = npy_format.read_magic(f)
    if version not in _NPY_HEADERS:
        raise ValueError(f"unsupported .npy format version {version}")
    return _NPY_HEADERS[version](f)


@contextmanager
def open_image(path: FileSource) -> Iterator[Image.Image]:
    """PIL's lazy Image.open, refused before a pixel is decoded when the header declares more
    than MAX_PIXELS. Any error while the caller decodes the image inside the block becomes a
    BadInputError naming the file too: PIL raises OSError, SyntaxError, ValueError and more."""
    try:
        with warnings.catch_warnings():
            # PIL warns from 89 megapixels; our lower limit refuses those images right after.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(readable(path))
        with image:
            check_pixels(path, *image.size)
            yield image
    except BadInputError:
        raise
    except Image.DecompressionBombError as err:  # PIL's own refusal, at twice its warning size
        raise BadInputError(path, f"too large, over the {MAX_PIXELS // 10**6}-megapixel limit ({err})") from err
    except Exception as err:
        raise BadInputError(path, f"not a readable image ({describe(err)})") from err


def check_pixels(path: FileSource, width: int, height: int) -> None:
    """Refuse a picture (an image, a video frame) that would take unbounded memory: more than
    MAX_PIXELS to decode, or so elongated that scaling its short side to the model's size
    blows up the long side (a 1x40000 strip would become 224x9 million pixels)."""
    if width * height > MAX_PIXELS:
        raise BadInputError(
            path, f"{width}x{height} pixels is too large, over the {MAX_PIXELS // 10**6}-megapixel limit"
        )
    if min(width, height) < 1:
        raise BadInputError(path, f"{width}x{height} pixels: an empty picture")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise BadInputError(path, f"{width}x{height} pixels is too elongated, beyond {MAX_ASPECT}:1")

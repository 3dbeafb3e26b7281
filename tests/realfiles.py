"""Real documents and images of a chosen size, as people upload them: photo-like PNG and JPEG
images (a colour gradient with sensor-like noise, made by ImageMagick), PDFs of text pages and
such photos (made by fpdf2), a Word document and a ZIP archive holding photos, and random bytes
behind a PDF header. Sizes are near the one asked for (images are whole images); `exactly`
pads a PDF after its end marker, as some PDF writers do, to hit a size to the byte."""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import zipfile
from pathlib import Path

from fpdf import FPDF

from tests.conftest import unavailable

KB = 1024
MB = 1024 * 1024
# Bytes per pixel of the images below, measured (gradient + random noise, 8 bits a channel).
BYTES_PER_PIXEL = {"png": 2.7, "jpg": 1.1}


def photo(folder: Path, kind: str, size: int, seed: int = 1) -> bytes:
    """A photo-like image of about `size` bytes; kind is "png" or "jpg"."""
    pixels = max(size / BYTES_PER_PIXEL[kind], 64 * 48)
    width = int((pixels * 4 / 3) ** 0.5)
    height = max(int(pixels / width), 1)
    colours = random.Random(seed).choice(
        ["steelblue-khaki", "darkolivegreen-wheat", "slategray-peachpuff", "navy-lightcyan"]
    )
    target = folder / f"photo-{seed}-{width}x{height}.{kind}"
    if shutil.which("convert") is None:
        unavailable("ImageMagick's convert is not installed (make test installs it)")
    if not target.exists():
        subprocess.run(
            [
                "convert",
                "-size",
                f"{width}x{height}",
                "-seed",
                str(seed),
                f"gradient:{colours}",
                "-attenuate",
                "0.4",
                "+noise",
                "Random",
                "-depth",
                "8",
                "-quality",
                "90",
                str(target),
            ],
            check=True,
            capture_output=True,
        )
    return target.read_bytes()


def pdf(folder: Path, size: int, seed: int = 1) -> bytes:
    """A lab report: a page of text, then pages of photos, about `size` bytes in all."""
    document = FPDF()
    document.set_title(f"Lab report {seed}")
    document.add_page()
    document.set_font("Helvetica", size=11)
    text = random.Random(seed)
    words = [
        "titration",
        "sample",
        "error",
        "mean",
        "measured",
        "burette",
        "volume",
        "acid",
        "solution",
        "result",
    ]
    for _ in range(12):
        document.multi_cell(
            0, 6, " ".join(text.choice(words) for _ in range(60)), new_x="LMARGIN", new_y="NEXT"
        )
    remaining = size - 6 * KB  # the text page and the structure around the photos
    photo_number = 0
    while remaining > 8 * KB:
        part = min(remaining, 2 * MB)
        image = photo(folder, "jpg", part, seed=seed * 100 + photo_number)
        document.add_page()
        document.image(io.BytesIO(image), x=10, y=10, w=190)
        remaining -= len(image)
        photo_number += 1
    return bytes(document.output())


def exactly(data: bytes, size: int) -> bytes:
    """A PDF padded to `size` bytes with a comment line after its end marker."""
    assert len(data) + 2 <= size, (len(data), size)
    return data + b"%" + b"x" * (size - len(data) - 2) + b"\n"


def docx(folder: Path, size: int, seed: int = 1) -> bytes:
    """A Word document with a paragraph and photos (stored, as Word stores JPEGs)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats'
            '.org/package/2006/content-types"><Default Extension="jpeg" ContentType="image/jpeg"'
            '/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlform'
            'ats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        archive.writestr(
            "word/document.xml",
            '<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlf'
            'ormats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Lab report: results'
            " and photos of the apparatus.</w:t></w:r></w:p></w:body></w:document>",
        )
        remaining, number = size, 0
        while remaining > 8 * KB:
            image = photo(folder, "jpg", min(remaining, 2 * MB), seed=seed * 100 + number)
            archive.writestr(
                f"word/media/image{number + 1}.jpeg", image, compress_type=zipfile.ZIP_STORED
            )
            remaining -= len(image)
            number += 1
    return buffer.getvalue()


def zip_of_photos(folder: Path, size: int, seed: int = 1) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        remaining, number = size, 0
        while remaining > 8 * KB:
            image = photo(folder, "png", min(remaining, 3 * MB), seed=seed * 100 + number)
            archive.writestr(f"photos/bench-{number + 1}.png", image)
            remaining -= len(image)
            number += 1
    return buffer.getvalue()


def random_pdf(size: int) -> bytes:
    """Random bytes behind a PDF header (as compressed streams look to a parser)."""
    return b"%PDF-1.7\n" + os.urandom(size - 9)


def make(folder: Path, kind: str, size: int, seed: int = 1) -> tuple[str, bytes]:
    """(file name, content) of one kind: pdf, png, jpg, docx, zip or random."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind in ("png", "jpg"):
        return f"bench photo {seed}.{kind}", photo(folder, kind, size, seed)
    if kind == "pdf":
        return f"Lab report {seed}.pdf", pdf(folder, size, seed)
    if kind == "docx":
        return f"Lab report {seed}.docx", docx(folder, size, seed)
    if kind == "zip":
        return f"photos {seed}.zip", zip_of_photos(folder, size, seed)
    if kind == "random":
        return f"scan {seed}.pdf", random_pdf(size)
    raise ValueError(kind)

"""A GGUF file's layout, read with the kernel's GGUF reader (hartonomous/gguf.py); long arrays
(the vocabulary) are summarised in the metadata the manifest keeps (the header atom holds them
whole)."""

from __future__ import annotations

from hartonomous import gguf
from hartonomous.gguf import MAGIC, Read
from services.ingest.domain.errors import InvalidArgument
from services.ingest.domain.models.layout import FileLayout, unique_names
from services.ingest.domain.models.tensors import TensorSpan

__all__ = ["MAGIC", "read_layout"]

LONG_ARRAY = 16


def read_layout(read: Read, size: int) -> FileLayout:
    try:
        header = gguf.read_header(read, size, long_array=LONG_ARRAY)
        tensors = []
        for info in header.tensors:
            encoding, nbytes = gguf.ggml_nbytes(info.name, info.type_id, info.shape)
            offset = header.data_start + info.offset
            tensors.append(TensorSpan(info.name, encoding, info.shape, offset, nbytes))
    except gguf.GgufError as exc:
        raise InvalidArgument(str(exc)) from None
    header_length = min(header.data_start, size)
    return FileLayout("gguf", size, header_length, unique_names(tensors), header.metadata)

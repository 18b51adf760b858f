"""A fitted model as bytes and back, so it can be shipped to any worker (no I/O here).

    data = dumps(model)            # b"NLMODEL" + format version + pickle (protocol 5)
    model = loads(data)            # same recommendations as before the round trip
    dump(model, file); load(file)  # the same bytes, streamed (a large model is never whole)

Pickle keeps every generator exactly (numpy arrays bit for bit, sparse matrices, configs), so a
shard loading the artifact ranks exactly as the process that fitted it. Loading a pickle runs
code named in it: load artifacts only from a store you trust as much as the code (here the
run's own database). ``FORMAT`` goes up whenever a stored model could no longer be read the
same way; :func:`loads` refuses other versions instead of guessing.
"""

from __future__ import annotations

import pickle
from typing import IO, Any

MAGIC = b"NLMODEL"
FORMAT = 2  # 2: the fresh-item generator keeps declared topics as two factors


class ArtifactError(ValueError):
    """The bytes are not a model artifact of this format; the message says what to do."""


def dumps(model: Any) -> bytes:
    """Serialize a fitted model (or any bundle of them) with a magic and version header."""
    return MAGIC + bytes([FORMAT]) + pickle.dumps(model, protocol=5)


def dump(model: Any, file: IO[bytes]) -> None:
    """Write exactly what :func:`dumps` returns to `file`, without building it in memory."""
    file.write(MAGIC + bytes([FORMAT]))
    pickle.dump(model, file, protocol=5)


def load(file: IO[bytes]) -> Any:
    """The model :func:`dump` wrote to `file` (read as it goes); refuses other formats."""
    head = file.read(len(MAGIC) + 1)
    _check(head)
    return pickle.load(file)


def _check(head: bytes) -> None:
    if not head.startswith(MAGIC) or len(head) <= len(MAGIC):
        raise ArtifactError("not a newsletter model artifact (missing the NLMODEL header)")
    version = head[len(MAGIC)]
    if version != FORMAT:
        raise ArtifactError(
            f"model artifact format {version}, this version reads format {FORMAT}: "
            "prepare the run again with this version"
        )


def loads(data: bytes) -> Any:
    """The model serialized by :func:`dumps`; refuses other formats with a clear message."""
    _check(data[: len(MAGIC) + 1])
    return pickle.loads(data[len(MAGIC) + 1 :])

"""The built-in codecs (DataJoint 2.3.5's set and semantics), one submodule each.

- ``<blob>`` (:mod:`.blob`): Python objects serialized in the row; ``<blob@store>``: the
  same bytes stored through ``<hash@store>``.
- ``<attach>`` (:mod:`.attach`): a file's name and bytes in the row; ``<attach@store>``:
  through ``<hash@store>``. Fetch writes the file into ``config['download_path']`` (default:
  the working directory) and returns its local path.
- ``<hash@store>`` (:mod:`.hash`): raw bytes, content-addressed (one object per content
  and schema).
- ``<object@store>`` (:mod:`.object`): bytes, ``(ext, bytes or binary stream)`` or a
  local file or folder at a schema-addressed path; fetch returns an
  :class:`~dj_dagster.objectref.ObjectRef`.
- ``<npy@store>`` (:mod:`.npy`): a numpy array as a ``.npy`` file; fetch returns an
  :class:`NpyRef`.
- ``<filepath@store>`` (:mod:`.filepath`): a file already in the store.

:class:`SchemaCodec` (:mod:`.schema`) is the base of schema-addressed codecs, for users'
own. Paths, metadata and garbage collection: :mod:`dj_dagster.external`.
"""

from .attach import AttachCodec
from .blob import BlobCodec
from .filepath import FilepathCodec
from .hash import HashCodec
from .npy import NpyCodec, NpyRef
from .object import ObjectCodec
from .schema import SchemaCodec

__all__ = ["BlobCodec", "HashCodec", "SchemaCodec", "ObjectCodec", "AttachCodec", "FilepathCodec", "NpyCodec",
           "NpyRef"]

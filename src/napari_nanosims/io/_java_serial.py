"""Plain data out of Java serialization streams, without deserializing anything.

OpenMIMS keeps an ROI zip's groups as Java objects (``ObjectOutputStream``): ``group``
an ``ArrayList`` of group names (``String`` or ``com.nrims.ROIgroup``) and ``group_map``
a ``HashMap`` of ROI name -> group. This module walks the stream grammar of the Java
Object Serialization Specification (chapter 6) and builds only Python strings, bytes,
lists and dicts; no class is looked up, nothing is executed. Anything unexpected ends
the walk with :class:`JavaStreamError`; the caller then does without the groups.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["JavaStreamError", "read_stream", "group_map"]

_PRIMITIVE = {"B": ">b", "C": ">H", "D": ">d", "F": ">f", "I": ">i", "J": ">q", "S": ">h",
              "Z": ">?"}
_MAX_DEPTH = 64
_MAX_ITEMS = 1_000_000


class JavaStreamError(ValueError):
    """A stream that is not the simple serialized data this module reads."""


class _Desc:
    def __init__(self, name: str, flags: int, fields: list, parent):
        self.name, self.flags, self.fields, self.parent = name, flags, fields, parent


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.at, self.items = data, 0, 0
        self.handles: list[Any] = []

    def take(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.data):
            raise JavaStreamError("truncated stream")
        chunk = self.data[self.at:self.at + n]
        self.at += n
        return chunk

    def unpack(self, form: str):
        return struct.unpack(form, self.take(struct.calcsize(form)))[0]

    def utf(self, long: bool = False) -> str:
        return self.take(self.unpack(">q" if long else ">H")).decode("utf-8", "replace")

    def new_handle(self, value) -> int:
        self.items += 1
        if self.items > _MAX_ITEMS:
            raise JavaStreamError("too many objects")
        self.handles.append(value)
        return len(self.handles) - 1

    def content(self, depth: int = 0):
        """One content item: a string, bytes (block data), a list (array), a dict
        (object: ``{'class': name, 'fields': {...}, 'data': [...]}``), a _Desc or None.
        Returns the marker ``_END`` for an end of block data."""
        if depth > _MAX_DEPTH:
            raise JavaStreamError("nested too deeply")
        code = self.unpack(">B")
        if code == 0x70:  # TC_NULL
            return None
        if code == 0x71:  # TC_REFERENCE
            index = self.unpack(">i") - 0x7E0000
            if not 0 <= index < len(self.handles):
                raise JavaStreamError("reference to an unknown object")
            return self.handles[index]
        if code in (0x74, 0x7C):  # TC_STRING, TC_LONGSTRING
            slot = self.new_handle(None)
            self.handles[slot] = self.utf(long=code == 0x7C)
            return self.handles[slot]
        if code in (0x77, 0x7A):  # TC_BLOCKDATA, TC_BLOCKDATALONG
            return self.take(self.unpack(">B" if code == 0x77 else ">i"))
        if code == 0x78:  # TC_ENDBLOCKDATA
            return _END
        if code == 0x72:  # TC_CLASSDESC
            return self.class_desc_body(depth)
        if code == 0x73:  # TC_OBJECT
            return self.new_object(depth)
        if code == 0x75:  # TC_ARRAY
            return self.new_array(depth)
        if code == 0x7E:  # TC_ENUM
            desc = self.desc(depth)
            slot = self.new_handle(None)
            self.handles[slot] = {"class": desc.name if desc else None,
                                  "name": self.content(depth + 1)}
            return self.handles[slot]
        if code == 0x76:  # TC_CLASS
            desc = self.desc(depth)
            self.new_handle(desc)
            return desc
        raise JavaStreamError(f"unsupported item 0x{code:02x}")

    def desc(self, depth: int):
        value = self.content(depth + 1)
        if value is not None and not isinstance(value, _Desc):
            raise JavaStreamError("a class description was expected")
        return value

    def class_desc_body(self, depth: int) -> _Desc:
        name = self.utf()
        self.take(8)  # serialVersionUID
        desc = _Desc(name, 0, [], None)
        self.new_handle(desc)
        desc.flags = self.unpack(">B")
        for _ in range(self.unpack(">H")):
            kind = chr(self.unpack(">B"))
            field = self.utf()
            if kind in "L[":
                self.content(depth + 1)  # the field's type name, a string
            elif kind not in _PRIMITIVE:
                raise JavaStreamError(f"unknown field type {kind!r}")
            desc.fields.append((kind, field))
        self.until_end(depth)  # class annotation
        desc.parent = self.desc(depth)
        return desc

    def until_end(self, depth: int) -> list:
        items = []
        while (item := self.content(depth + 1)) is not _END:
            items.append(item)
        return items

    def new_object(self, depth: int) -> dict:
        desc = self.desc(depth)
        if desc is None:
            raise JavaStreamError("an object without a class")
        result = {"class": desc.name, "fields": {}, "data": []}
        self.new_handle(result)
        chain = []
        while desc is not None:
            chain.append(desc)
            desc = desc.parent
        for cls in reversed(chain):  # the topmost superclass's data first
            if cls.flags & 0x04:  # Externalizable
                if not cls.flags & 0x08:
                    raise JavaStreamError("externalizable data without block mode")
                result["data"] += self.until_end(depth)
                continue
            for kind, field in cls.fields:
                result["fields"][field] = (self.unpack(_PRIMITIVE[kind]) if kind in _PRIMITIVE
                                           else self.content(depth + 1))
            if cls.flags & 0x01:  # SC_WRITE_METHOD: custom data up to the end marker
                result["data"] += self.until_end(depth)
        return result

    def new_array(self, depth: int) -> list:
        desc = self.desc(depth)
        if desc is None or not desc.name.startswith("["):
            raise JavaStreamError("an array without an array class")
        result: list = []
        self.new_handle(result)
        size = self.unpack(">i")
        if size < 0 or size > len(self.data) - self.at:  # every element takes >= 1 byte
            raise JavaStreamError("impossible array size")
        kind = desc.name[1]
        for _ in range(size):
            result.append(self.unpack(_PRIMITIVE[kind]) if kind in _PRIMITIVE
                          else self.content(depth + 1))
        return result


_END = object()


def read_stream(data: bytes) -> list:
    """Every top-level item of a Java serialization stream, as plain Python values."""
    reader = _Reader(bytes(data))
    if reader.take(4) != b"\xac\xed\x00\x05":
        raise JavaStreamError("not a Java serialization stream")
    items = []
    while reader.at < len(reader.data):
        item = reader.content()
        if item is not _END:
            items.append(item)
    return items


def _group_name(value):
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value["fields"].get("groupName"), str):
        return value["fields"]["groupName"]
    return None


def group_map(data: bytes) -> dict[str, str]:
    """OpenMIMS's ``group_map``: ROI name -> group name (strings only; entries of any
    other form are left out)."""
    items = read_stream(data)
    if not items or not isinstance(items[0], dict):
        raise JavaStreamError("no map in the stream")
    values = [item for item in items[0]["data"] if not isinstance(item, bytes)]
    found = {}
    for key, value in zip(values[0::2], values[1::2], strict=False):
        name = _group_name(value)
        if isinstance(key, str) and name and name.strip():
            found[key] = name.strip()
    return found

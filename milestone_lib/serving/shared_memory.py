"""System shared memory: the Open Inference Protocol's `system_shared_memory` extension.

A client on the same host puts a tensor in a POSIX shared-memory object (`/dev/shm/<key>`),
registers it once (`SystemSharedMemoryRegister`: name, key, offset, byte_size), then names the
region in a request's input parameters (`shared_memory_region`, `shared_memory_byte_size`,
`shared_memory_offset`) instead of sending the bytes; a requested output with the same
parameters is written into a region instead of the response. A 1x3x224x224 FP32 tensor is
602 KB, and moving it over loopback gRPC costs more than running a small classifier on it, so
this takes the copy off the round trip. The parameters are Triton's, so
`tritonclient.utils.shared_memory` + `InferInput.set_shared_memory` work unchanged.
"""

from __future__ import annotations

import mmap
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RegionExistsError, SharedMemoryError

__all__ = ["SHM_DIR", "SharedMemoryRegion", "SharedMemoryRegions", "region_reference"]

SHM_DIR = Path("/dev/shm")
# A POSIX shm name: one path component, so a key can never reach a file outside /dev/shm.
_KEY = re.compile(r"^/?(?!\.{1,2}$)[A-Za-z0-9_.\-]{1,255}$")


@dataclass
class SharedMemoryRegion:
    """A registered window [offset, offset + byte_size) of one shared-memory object, mapped in."""

    name: str
    key: str
    offset: int
    byte_size: int
    writable: bool
    _map: mmap.mmap = field(repr=False)
    _base: int = field(repr=False)  # where `offset` lies inside the (page-aligned) mapping

    def view(self, offset: int, byte_size: int) -> memoryview:
        """`byte_size` bytes at `offset` inside the region, without a copy."""
        if offset < 0 or byte_size < 0 or offset + byte_size > self.byte_size:
            raise SharedMemoryError(
                f"shared-memory region '{self.name}' holds {self.byte_size} bytes; offset {offset} + byte_size "
                f"{byte_size} runs past its end; register a larger region or fix the offset"
            )
        start = self._base + offset
        return memoryview(self._map)[start:start + byte_size]


class SharedMemoryRegions:
    """The regions one server has registered, by name. Thread-safe; views stay valid after unregister."""

    def __init__(self, *, root: Path = SHM_DIR, max_regions: int = 256) -> None:
        self.root = root
        self.max_regions = max_regions
        self._regions: dict[str, SharedMemoryRegion] = {}
        self._lock = threading.Lock()

    def register(self, name: str, key: str, offset: int, byte_size: int) -> SharedMemoryRegion:
        if not name:
            raise SharedMemoryError("a shared-memory region needs a name; pass the name requests will refer to")
        if not _KEY.match(key):
            raise SharedMemoryError(
                f"shared-memory key '{key}' is not a POSIX shared-memory name; use one component such as "
                "'/my_input' (the object /dev/shm/my_input)"
            )
        if offset < 0 or byte_size <= 0:
            raise SharedMemoryError(
                f"shared-memory region '{name}': offset {offset} and byte_size {byte_size} must be >= 0 and > 0"
            )
        with self._lock:
            if name in self._regions:
                raise RegionExistsError(
                    f"shared-memory region '{name}' is already registered; unregister it first or pick another name"
                )
            if len(self._regions) >= self.max_regions:
                raise SharedMemoryError(
                    f"this server holds {self.max_regions} shared-memory regions already; unregister some first"
                )
            region = self._open(name, key, offset, byte_size)
            self._regions[name] = region
            return region

    def _open(self, name: str, key: str, offset: int, byte_size: int) -> SharedMemoryRegion:
        path = self.root / key.lstrip("/")
        writable = True
        try:
            fd = os.open(path, os.O_RDWR)
        except PermissionError:
            writable = False
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise SharedMemoryError(
                f"shared-memory key '{key}' does not exist on this host ({path}); create the object before "
                "registering it, on the same machine as the server"
            ) from None
        try:
            size = os.fstat(fd).st_size
            if offset + byte_size > size:
                raise SharedMemoryError(
                    f"shared-memory key '{key}' holds {size} bytes, less than offset {offset} + byte_size "
                    f"{byte_size}; register a window that fits"
                )
            aligned = offset - offset % mmap.ALLOCATIONGRANULARITY
            access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
            mapping = mmap.mmap(fd, offset - aligned + byte_size, offset=aligned, access=access)
        finally:
            os.close(fd)  # the mapping keeps its own reference
        return SharedMemoryRegion(name, key, offset, byte_size, writable, mapping, offset - aligned)

    def unregister(self, name: str = "") -> None:
        """Forget one region, or all of them when `name` is empty (as the protocol says)."""
        with self._lock:
            if not name:
                self._regions.clear()
            elif self._regions.pop(name, None) is None:
                raise SharedMemoryError(f"shared-memory region '{name}' is not registered; nothing to unregister")
        # The mapping closes when the last tensor view of it is gone (closing it under a live view would fail).

    def status(self, name: str = "") -> list[SharedMemoryRegion]:
        with self._lock:
            if not name:
                return list(self._regions.values())
            return [self.get(name)]

    def get(self, name: str) -> SharedMemoryRegion:
        region = self._regions.get(name)
        if region is None:
            raise SharedMemoryError(
                f"shared-memory region '{name}' is not registered on this server; call "
                "SystemSharedMemoryRegister first"
            )
        return region

    def read(self, reference: dict[str, Any]) -> memoryview:
        """The bytes a tensor's `shared_memory_*` parameters point at."""
        name, offset, byte_size = _unpack(reference)
        return self.get(name).view(offset, byte_size)

    def write(self, reference: dict[str, Any], data: memoryview | bytes) -> int:
        """Copy `data` into the region a requested output names; returns the bytes written."""
        name, offset, byte_size = _unpack(reference)
        region = self.get(name)
        if not region.writable:
            raise SharedMemoryError(f"shared-memory region '{name}' is read-only for this server; grant write access")
        size = memoryview(data).nbytes
        if size > byte_size:
            raise SharedMemoryError(
                f"output needs {size} bytes but shared-memory region '{name}' offers shared_memory_byte_size "
                f"{byte_size}; register a larger region"
            )
        region.view(offset, size)[:] = memoryview(data).cast("B")
        return size


def region_reference(parameters: dict[str, Any]) -> dict[str, Any] | None:
    """The `shared_memory_*` parameters of a tensor, or None when its bytes travel in the message."""
    if "shared_memory_region" not in parameters:
        return None
    return {key: parameters.get(key) for key in
            ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")}


def _unpack(reference: dict[str, Any]) -> tuple[str, int, int]:
    name = reference.get("shared_memory_region")
    byte_size = reference.get("shared_memory_byte_size")
    offset = reference.get("shared_memory_offset") or 0
    if not isinstance(name, str) or not isinstance(byte_size, int) or not isinstance(offset, int):
        raise SharedMemoryError(
            f"a shared-memory tensor needs shared_memory_region (string) and shared_memory_byte_size (int64), "
            f"optionally shared_memory_offset (int64); got {reference}"
        )
    return name, offset, byte_size

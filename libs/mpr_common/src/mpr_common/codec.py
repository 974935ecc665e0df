"""Encoders and decoders, built once."""

from __future__ import annotations

import functools
from collections.abc import Hashable
from typing import Any, TypeVar, cast

import msgspec

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


@functools.cache
def _decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(type_)


def decoder(type_: type[T]) -> msgspec.json.Decoder[T]:
    """One decoder per type, built on first use."""
    return _decoder(cast(Hashable, type_))


def decode(data: bytes | str, type_: type[T]) -> T:
    return decoder(type_).decode(data)


DecodeError = msgspec.DecodeError
ValidationError = msgspec.ValidationError

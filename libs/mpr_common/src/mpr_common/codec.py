"""Encoders and decoders, built once."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


@functools.cache
def decoder(type_: type[T]) -> msgspec.json.Decoder[T]:
    return msgspec.json.Decoder(type_)


def decode(data: bytes | str, type_: type[T]) -> T:
    return decoder(type_).decode(data)


DecodeError = msgspec.DecodeError
ValidationError = msgspec.ValidationError

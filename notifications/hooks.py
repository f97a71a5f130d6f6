"""What notifications reads from the layer that owns channels, without importing it.

A notification names its channel in the tenant's language. Channels — their names and
units in each language — belong to metering, which notifications must not know
(docs/ARCHITECTURE.md, "Apps and layers"): policies registers metering's reader here when
Django starts (``PoliciesConfig.ready``), and ``notifications_create`` stores the labels
in each new payload through ``channel_labels()``. Without a reader the payloads keep what
their producer wrote, and messages name the channel by its ``channel_name``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

# Per language code: {"name": …, "unit": …}.
ChannelLabels = Mapping[str, Mapping[str, str]]


class ChannelLabelsReader(Protocol):
    def __call__(self, codes: Collection[str]) -> Mapping[str, ChannelLabels]:
        """The labels of the channels with these codes, by code, in one query."""
        ...


_reader: ChannelLabelsReader | None = None


def channel_labels_reader_register(reader: ChannelLabelsReader) -> None:
    global _reader  # one registration at start-up (PoliciesConfig.ready), read after
    _reader = reader


def channel_labels(codes: Collection[str]) -> Mapping[str, ChannelLabels]:
    if _reader is None or not codes:
        return {}
    return _reader(codes)

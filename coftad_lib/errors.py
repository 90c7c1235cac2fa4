"""Exceptions raised for bad input, so that users see what is wrong and where."""

from __future__ import annotations


class COFTADInputError(ValueError):
    """Bad input given to the library (images, names, sizes); the message says what and where."""


class ImageReadError(COFTADInputError):
    """An image file is missing, unreadable or truncated."""


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are not on disk and could not be downloaded."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder is missing or incomplete; the message says how to get it."""

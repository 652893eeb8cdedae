"""The registry-backed catalog's failure modes, without a registry: an outage must never look
like bad input."""

from __future__ import annotations

import socket

import pytest

from tests.scenarios import NOW_MS, event, wire
from udfs.validation import ValidationRules, validate
from vigil.registry.catalog import RegistrySchemaCatalog
from vigil.registry.client import RegistryUnavailable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_an_unreachable_registry_fails_loudly_instead_of_rejecting_the_event():
    catalog = RegistrySchemaCatalog(f"http://127.0.0.1:{_closed_port()}")
    catalog.client.attempts = 2
    key, value = wire(event())
    with pytest.raises(RegistryUnavailable):
        validate(value, key, NOW_MS, ValidationRules(), catalog)


def test_encoding_needs_the_id_registered_for_the_subject():
    catalog = RegistrySchemaCatalog(f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(LookupError):
        catalog.id_of_reader()

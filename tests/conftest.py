import pytest


@pytest.fixture(autouse=True)
def _durable_settings(settings):
    # Tests drive invocations themselves unless a test opts into a dispatcher.
    settings.DURABLE = {**getattr(settings, "DURABLE", {}), "DISPATCHER": None}

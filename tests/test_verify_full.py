"""The full verify table at paper scale: every closed form meets its twin (slow; run with -m slow)."""
import pytest

from simulations.checks import run_checks


@pytest.mark.slow
def test_every_check_passes_at_full_scale():
    failed = [(c.name, c.theory, c.simulation, c.tolerance) for c in run_checks(1.0) if not c.passed]
    assert not failed, failed

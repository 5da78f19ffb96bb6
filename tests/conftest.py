"""Suite-wide settings."""

from hypothesis import HealthCheck, settings

# The suite shares two cores with sandboxes, renders and subprocesses: a property test that is
# slow because the machine is busy is not a failing property. Examples stay bounded per test.
settings.register_profile("reconciler", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("reconciler")

"""The compile tests reuse fixtures of the engine tests: the example plan, generated data,
and a hand-made wide table."""

from tests.segments.conftest import wide  # noqa: F401  (fixture)
from tests.tags.conftest import generated, plan  # noqa: F401  (fixtures)

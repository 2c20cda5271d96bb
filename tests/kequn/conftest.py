"""The migration runner is tested on the serving databases too: their fixtures."""

from tests.pg import postgres_base_url, postgres_url  # noqa: F401  (fixtures)
from tests.serving.conftest import db, serving_url  # noqa: F401  (fixtures)

"""Property-based fuzzing of every parser that reads outside input.

Each test feeds generated (often hostile) input to one reader and requires that it either
succeeds or raises a CairnError: never another exception, never a hang. CI runs a short
budget; `make fuzz` runs a long one (CAIRN_FUZZ_EXAMPLES). A crash found becomes a
regression test beside the reader's own tests.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "cairn-fuzz",
    max_examples=int(os.environ.get("CAIRN_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
    derandomize="CAIRN_FUZZ_EXAMPLES" not in os.environ,
)  # fmt: skip
settings.load_profile("cairn-fuzz")

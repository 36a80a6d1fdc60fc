"""What ``kopf run`` loads in the schedule tests: the real operator, whose clock the test moves.

The same as ``operator_entry.py``, but the runtime reads the time from
:data:`tests.operator.fakeclock.CLOCK`, and began watching at that clock's time.
"""

import kopf
from floxide_operator import handlers
from floxide_operator.settings import OperatorSettings

from tests.operator.fakeclock import CLOCK

RUNTIME = handlers.register(kopf.get_default_registry(), OperatorSettings.from_environment())
RUNTIME.clock = CLOCK
RUNTIME.started_at = CLOCK()

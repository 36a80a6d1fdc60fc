"""What ``kopf run`` loads in the operator tests: the real handlers on the runner's fresh registry.

kopf executes this file anew for each run, after the test has set the environment, so the
settings are read here, once, as ``floxide operator`` reads them at its start.
"""

import kopf
from floxide_operator import handlers
from floxide_operator.settings import OperatorSettings

RUNTIME = handlers.register(kopf.get_default_registry(), OperatorSettings.from_environment())

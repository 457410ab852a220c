"""Type stubs of the compiled core (private; see the pgfast package for the public API).

One submodule per topic, each filled by cpp/bindings/bind_<topic>.cpp and typed by the stub of
the same name next to this one.
"""

from . import estimators as estimators
from . import exact as exact
from . import info as info
from . import lqr as lqr
from . import lqr_exact as lqr_exact
from . import mdp as mdp
from . import mlp as mlp
from . import off_policy as off_policy
from . import policy as policy
from . import returns as returns
from . import sampling as sampling

"""Python's cyclic garbage collector in reglab's own processes: the `reglab` command and a worker process.

Importing Keras and JAX leaves ~275,000 objects that live as long as the process, and every full collection
walks them again — tracing a population's programs makes many objects, so many collections: about 9 % of
`reglab demo`'s CPU time. `settle()`, once the libraries are imported, collects once and moves everything
alive to the collector's permanent generation (`gc.freeze`), which it no longer walks. Reference counting
still frees those objects; only a reference cycle among them would outlive its use — for the modules'
own objects, which live as long as the process, it cannot matter.

Not called by `Sweep.run` in a user's process (a notebook, a script): the collector there is the user's.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect once, then keep what is alive out of the cyclic collector's walks (`gc.freeze`).

    >>> import gc
    >>> settle()
    >>> gc.get_freeze_count() > 0
    True
    """
    gc.collect()
    gc.freeze()

"""Ray, the engine of ``bs4nn sweep`` and ``bs4nn report``: started on this machine or joined
on a cluster, imported only by the commands that use it.

Ray is an optional dependency (the ``ray`` extra: ``pip install 'bs4nn[ray]'``; ``make env``
installs it). Started here, it gets a small object store (the tasks pass networks and
figures, not datasets) and no dashboard.
"""

import contextlib
import logging
import os

from .errors import UserError

__all__ = ["import_ray", "ray_session", "get"]

#: Bytes of shared memory the local Ray keeps for objects passed between tasks.
OBJECT_STORE_BYTES = 200 * 2**20
#: Environment variables a worker needs as the driver has them (where the datasets are).
PASSED_ENVIRONMENT = ("BS4NN_DATA_DIR",)


def import_ray(command):
    """The ``ray`` module, or a :class:`UserError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(f"{command} runs on Ray, which is not installed: pip install "
                        f"'bs4nn[ray]' (make env installs it)") from None
    return ray


@contextlib.contextmanager
def ray_session(command, address=None, num_cpus=None):
    """Ray for the duration of the ``with`` block: a new local instance with ``num_cpus``
    logical CPUs (default: this machine's), or the running cluster at ``address`` (``auto``
    or ``HOST:PORT``). Yields the ``ray`` module; shuts Ray down (disconnects from a cluster)
    on the way out.
    """
    ray = import_ray(command)
    env_vars = {name: os.environ[name] for name in PASSED_ENVIRONMENT if name in os.environ}
    options = {"include_dashboard": False, "logging_level": logging.WARNING,
               "runtime_env": {"env_vars": env_vars} if env_vars else None}
    if address is None:
        options |= {"num_cpus": num_cpus, "object_store_memory": OBJECT_STORE_BYTES}
    try:
        ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise UserError(f"{command}: could not start {where} ({error})") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def get(ray, ref):
    """``ray.get(ref)``, re-raising a task's own exception (a :class:`UserError` stays one
    line) instead of Ray's wrapper with the remote traceback."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        raise error.cause from None

"""Ray, the engine of ``bs4nn sweep`` and ``bs4nn report``: started on this machine or joined
on a cluster, imported only by the commands that use it.

Ray is an optional dependency (the ``ray`` extra: ``pip install 'bs4nn[ray]'``; ``make env``
installs it). Started here, it gets a small object store (the tasks pass networks and
figures, not datasets) and no dashboard.
"""

import contextlib
import logging
import os
import socket

from .errors import UserError

__all__ = ["import_ray", "ray_session", "get"]

#: Bytes of shared memory the local Ray keeps for objects passed between tasks.
OBJECT_STORE_BYTES = 200 * 2**20
#: Environment variables a worker needs as the driver has them (where the datasets are).
PASSED_ENVIRONMENT = ("BS4NN_DATA_DIR",)
#: Seconds to wait for a cluster's address to answer (Ray itself retries for many minutes).
CONNECT_TIMEOUT_S = 10


def import_ray():
    """The ``ray`` module, or a :class:`UserError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError("Ray is not installed (bs4nn sweep and bs4nn report run on it): pip "
                        "install 'bs4nn[ray]' (make env installs it)") from None
    return ray


def _check_reachable(address):
    """A ``HOST:PORT`` (or ``ray://HOST:PORT``) that does not answer is refused at once."""
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise UserError(f"--address {address}: no Ray cluster answers there "
                        f"({error.strerror or error})") from None


@contextlib.contextmanager
def ray_session(address=None, num_cpus=None):
    """Ray for the duration of the ``with`` block: a new local instance with ``num_cpus``
    logical CPUs (default: this machine's), or the running cluster at ``address`` (``auto``
    or ``HOST:PORT``). Yields the ``ray`` module; shuts Ray down (disconnects from a cluster)
    on the way out.
    """
    ray = import_ray()
    if address is not None:
        _check_reachable(address)
    env_vars = {name: os.environ[name] for name in PASSED_ENVIRONMENT if name in os.environ}
    options = {"include_dashboard": False, "logging_level": logging.WARNING,
               "runtime_env": {"env_vars": env_vars} if env_vars else None}
    if address is None:
        options |= {"num_cpus": num_cpus, "object_store_memory": OBJECT_STORE_BYTES}
    try:
        # "local": a new instance even where another Ray runs (Ray would join that one).
        ray.init(address=address or "local", **options)
    except Exception as error:  # Ray fails in many ways (its own errors, and bugs)
        raise UserError(f"--address {address}: could not join the Ray cluster ({error})"
                        if address else f"could not start Ray on this machine ({error})") \
            from None
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

"""Which managers the cluster has, and where they answer.

Each manager keeps a Lease ``kube-system/shoal-manager-<name>`` renewed while its API serves,
with its URL in an annotation, as kube-apiservers keep their identity Leases. Agents read the
list (``GET /shoal/v1/managers``) to fail over to another manager when theirs stops answering;
``shoal node ls`` reads it to show managers, their reachability and which one leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from shoal.api import Object
from shoal.api.errors import AlreadyExists, ApiError, Conflict, NotFound
from shoal.api.kinds import LEASE
from shoal.client._interface import Client
from shoal.client.leaderelection import micro_time

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
PREFIX = "shoal-manager-"
URL_ANNOTATION = "shoal.io/manager-url"
ROLE_LABEL = "shoal.io/role"
RENEW_SECONDS = 5.0
LEASE_SECONDS = 15  # a manager whose lease is older than this is shown Unreachable

# The leader-elected components: one Lease each in kube-system, held by "<manager>_<run id>".
COMPONENT_LEASES = {
    "controllers": "shoal-controllers",
    "scheduler": "shoal-scheduler",
    "compactor": "shoal-store-compactor",
}


@dataclass(frozen=True)
class Manager:
    name: str
    url: str
    renewed: datetime | None

    def reachable(self, now: datetime | None = None) -> bool:
        if self.renewed is None:
            return False
        age = ((now or datetime.now(UTC)) - self.renewed).total_seconds()
        return age <= LEASE_SECONDS


def _lease_body(name: str, url: str) -> Object:
    assert LEASE is not None
    now = micro_time()
    return {
        "apiVersion": LEASE.api_version,
        "kind": LEASE.kind,
        "metadata": {
            "name": PREFIX + name,
            "namespace": NAMESPACE,
            "labels": {ROLE_LABEL: "manager"},
            "annotations": {URL_ANNOTATION: url},
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "acquireTime": now,
            "renewTime": now,
        },
    }


async def announce(client: Client, name: str, url: str) -> None:
    """Write this manager's Lease now and every few seconds until cancelled. A store that does
    not answer (no quorum) is waited out: the lease then simply ages."""
    assert LEASE is not None
    while True:
        with contextlib.suppress(Conflict, AlreadyExists):
            try:
                await _renew(client, name, url)
            except ApiError as err:
                log.warning("manager %s: cannot renew its lease: %s", name, err.message)
        await asyncio.sleep(RENEW_SECONDS)  # a heartbeat: the period is the point


async def _renew(client: Client, name: str, url: str) -> None:
    assert LEASE is not None
    body = _lease_body(name, url)
    try:
        current = await client.get(LEASE, PREFIX + name, NAMESPACE)
    except NotFound:
        await client.create(LEASE, body)
        return
    spec = {**(current.get("spec") or {}), "renewTime": body["spec"]["renewTime"], "holderIdentity": name}
    metadata = {**current["metadata"], "annotations": {**(current["metadata"].get("annotations") or {})}}
    metadata["annotations"][URL_ANNOTATION] = url
    await client.update(LEASE, {**current, "metadata": metadata, "spec": spec})


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return None


def managers_of(leases: list[Object]) -> list[Manager]:
    """The managers recorded in ``leases`` (any list of Leases; others are ignored), by name."""
    found = []
    for lease in leases:
        metadata = lease.get("metadata") or {}
        name = str(metadata.get("name") or "")
        url = (metadata.get("annotations") or {}).get(URL_ANNOTATION)
        if not name.startswith(PREFIX) or not isinstance(url, str):
            continue
        found.append(
            Manager(name.removeprefix(PREFIX), url, _parse_time((lease.get("spec") or {}).get("renewTime")))
        )
    return sorted(found, key=lambda m: m.name)


async def managers(client: Client) -> list[Manager]:
    assert LEASE is not None
    listed = await client.list(LEASE, NAMESPACE, label_selector=f"{ROLE_LABEL}=manager")
    return managers_of(listed.get("items") or [])


async def leaders(client: Client) -> dict[str, str]:
    """Component → the name of the manager holding its Lease (absent when none holds it)."""
    assert LEASE is not None
    held: dict[str, str] = {}
    for component, lease_name in COMPONENT_LEASES.items():
        try:
            lease = await client.get(LEASE, lease_name, NAMESPACE)
        except NotFound:
            continue
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        renewed = _parse_time(spec.get("renewTime"))
        # For display only, so the wall clock will do: a lease its holder stopped renewing is
        # nobody's, even before another manager takes it over.
        fresh = renewed is not None and (
            (datetime.now(UTC) - renewed).total_seconds() <= float(spec.get("leaseDurationSeconds") or 0)
        )
        if holder and fresh:
            held[component] = manager_of_identity(holder)
    return held


def election_identity(manager: str, run_id: str) -> str:
    """A candidate's identity: the manager's name, then this run (a restarted manager is a new
    candidate, so it cannot mistake its predecessor's lease for its own)."""
    return f"{manager}_{run_id}"


def manager_of_identity(identity: str) -> str:
    # Node names are DNS subdomains and cannot hold "_": the first part is the manager's name.
    return identity.split("_", 1)[0]

"""Lease (coordination.k8s.io/v1): a named lock with a holder and an expiry, used for leader
election between controller replicas and for node heartbeats.

No defaults. ``leaseDurationSeconds`` must be positive, ``leaseTransitions`` non-negative,
``acquireTime``/``renewTime`` RFC 3339 times (MicroTime: microsecond precision).
"""

from __future__ import annotations

from datetime import datetime

from shoal.api.errors import FieldError, forbidden, invalid, unsupported
from shoal.api.kind import Column, Kind, Object
from shoal.api.kinds.columns import AGE, NAME, dig
from shoal.api.kinds.meta import top_level
from shoal.api.schema import Int, Obj, Str
from shoal.api.validation import check, non_negative, qualified_name

MICRO_TIME = Str(format="date-time")
STRATEGIES = ("OldestEmulationVersion",)

LEASE_SPEC = Obj(
    "io.k8s.api.coordination.v1.LeaseSpec",
    {
        "acquireTime": MICRO_TIME,
        "holderIdentity": Str(),
        "leaseDurationSeconds": Int(),
        "leaseTransitions": Int(),
        "preferredHolder": Str(),
        "renewTime": MICRO_TIME,
        "strategy": Str(),
    },
)


def _is_time(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value


def validate(obj: Object) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        errors.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    errors += non_negative("spec.leaseTransitions", spec.get("leaseTransitions"))
    for field in ("acquireTime", "renewTime"):
        if field in spec and not _is_time(spec[field]):
            errors.append(invalid(f"spec.{field}", spec[field], "must be an RFC 3339 date-time"))
    strategy = spec.get("strategy")
    if strategy is not None:
        if "/" in strategy:
            errors += check("spec.strategy", strategy, qualified_name)
        elif strategy not in STRATEGIES:
            errors.append(unsupported("spec.strategy", strategy, list(STRATEGIES)))
    if spec.get("preferredHolder") and not strategy:
        errors.append(forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined"))
    return errors


LEASE = Kind(
    group="coordination.k8s.io",
    version="v1",
    kind="Lease",
    plural="leases",
    singular="lease",
    namespaced=True,
    has_status=False,
    schema=top_level("io.k8s.api.coordination.v1.Lease", spec=LEASE_SPEC),
    columns=(
        NAME,
        Column("Holder", lambda o: dig(o, "spec", "holderIdentity", default="")),
        AGE,
    ),
    validate=validate,
)

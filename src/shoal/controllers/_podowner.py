"""What the controllers whose objects own pods share (ReplicaSet, DaemonSet, Job): the event
handlers, the expectations bookkeeping, and claiming pods (adopting matching orphans)."""

from __future__ import annotations

import asyncio
import logging

from shoal.api import REGISTRY, Kind, Object
from shoal.api.errors import ApiError, NotFound
from shoal.api.selectors import LabelSelector
from shoal.client import MERGE_PATCH, Client
from shoal.client.informer import Informers, object_key
from shoal.controllers._controller import Controller
from shoal.controllers._expectations import Expectations
from shoal.controllers._owners import controller_of, is_active, is_controlled_by, owner_reference

log = logging.getLogger(__name__)

POD = REGISTRY.by_resource("", "v1", "pods")


class PodOwner(Controller):
    # Whether pods that match an owner's selector and have no controller are adopted
    # (Jobs select by their own uid, so they never meet an orphan worth adopting).
    adopts_orphans = True

    def __init__(self, client: Client, informers: Informers, kind: Kind) -> None:
        super().__init__()
        assert POD is not None
        self.client = client
        self.kind = kind
        self.owners = informers.of(kind)
        self.pods = informers.of(POD)
        self.expectations = Expectations()
        self.owners.add_handler(self._on_owner)
        self.pods.add_handler(self._on_pod)

    # -- events: only enqueue keys ----------------------------------------------------------

    def _on_owner(self, old: Object | None, new: Object | None) -> None:
        obj = new or old
        assert obj is not None
        if new is None:
            self.expectations.forget(object_key(obj))
        self.queue.add(object_key(obj))

    def _on_pod(self, old: Object | None, new: Object | None) -> None:
        pod = new or old
        assert pod is not None
        ref = controller_of(pod)
        if ref is None:
            if new is not None and self.adopts_orphans:  # any owner whose selector matches may adopt it
                for key in self._matching_owners(new):
                    self.queue.add(key)
            return
        if ref.get("kind") != self.kind.kind:
            return
        key = f"{pod['metadata'].get('namespace')}/{ref.get('name')}"
        if old is None:
            self.expectations.observed_add(key)
        elif new is None:
            self.expectations.observed_delete(key)
        self.queue.add(key)

    def _matching_owners(self, pod: Object) -> list[str]:
        namespace, labels = pod["metadata"].get("namespace"), pod["metadata"].get("labels")
        return [
            object_key(owner)
            for owner in self.owners.list()
            if owner["metadata"].get("namespace") == namespace
            and LabelSelector.from_object(owner["spec"].get("selector")).matches(labels)
        ]

    # -- claiming --------------------------------------------------------------------------------

    async def claim_pods(self, owner: Object) -> list[Object]:
        """The owner's pods: those it controls, plus matching orphans it adopts."""
        assert POD is not None
        namespace = owner["metadata"].get("namespace")
        selector = LabelSelector.from_object(owner["spec"].get("selector"))
        owned: list[Object] = []
        for pod in self.pods.list():
            if pod["metadata"].get("namespace") != namespace:
                continue
            if is_controlled_by(pod, owner):
                owned.append(pod)
            elif (
                self.adopts_orphans
                and controller_of(pod) is None
                and is_active(pod)
                and selector.matches(pod["metadata"].get("labels"))
            ):
                refs = [*(pod["metadata"].get("ownerReferences") or []), owner_reference(self.kind, owner)]
                patch = {
                    "metadata": {
                        "ownerReferences": refs,
                        "resourceVersion": pod["metadata"]["resourceVersion"],
                    }
                }
                try:
                    owned.append(
                        await self.client.patch(
                            POD, pod["metadata"]["name"], patch, namespace, patch_type=MERGE_PATCH
                        )
                    )
                except ApiError as err:  # gone, or changed meanwhile: the next event retries
                    log.info("%s: could not adopt pod %s: %s", self.name, pod["metadata"]["name"], err)
        return owned

    async def delete_pods(self, key: str, victims: list[Object]) -> None:
        """Delete ``victims`` at once; a delete that failed is counted as observed, since no
        event will come for it (the caller set the expectation). NotFound is success."""
        assert POD is not None
        results = await asyncio.gather(
            *(
                self.client.delete(POD, p["metadata"]["name"], p["metadata"].get("namespace"))
                for p in victims
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                self.expectations.observed_delete(key)
                if not isinstance(result, NotFound):
                    raise result

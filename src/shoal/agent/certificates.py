"""The node certificate, renewed before it expires (Swarm's and the kubelet's certificate
rotation): once less than a third of its lifetime is left, the agent makes a new key, asks the
manager to sign a CSR for it over the connection its current certificate authenticates
(``POST /shoal/v1/renew``), keeps the answer (``NodeCredentials``) and switches its client to it
(``HttpClient.reload``). The agent never stops, so pods and heartbeats go on throughout.

A failed attempt (the manager away) is retried every ``RETRY`` seconds while the current
certificate lasts; an expired one leaves the agent refused until it joins again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from shoal.api.errors import ApiError
from shoal.client.http import HttpClient
from shoal.client.kubeconfig import Credentials
from shoal.security import pki
from shoal.security.authz import RENEW_PATH
from shoal.security.join import NodeCredentials

log = logging.getLogger(__name__)

RETRY = 10.0  # seconds between failed attempts


def credentials_of(node: NodeCredentials) -> Credentials:
    return Credentials(
        ca_pem=node.ca_path.read_bytes(),
        cert_pem=node.cert_path.read_bytes(),
        key_pem=node.key_path.read_bytes(),
    )


async def renew_once(client: HttpClient, node: NodeCredentials, node_name: str) -> pki.Issued:
    """One renewal: a new key and certificate, kept and in use. Raises ApiError."""
    key_pem, body = node.renewal_request(node_name)
    answer = await client.post(RENEW_PATH, body)
    issued = node.accept_renewal(node_name, key_pem, answer)
    await client.reload(credentials_of(node))
    return issued


async def keep_renewed(
    client: HttpClient,
    node: NodeCredentials,
    node_name: str,
    *,
    now: Callable[[], float] | None = None,
) -> None:
    """Renew the node certificate whenever it is due, until cancelled."""
    clock = now or (lambda: pki.utcnow().timestamp())
    while True:
        due = pki.renewal_time(node.certificate().certificate).timestamp()
        # A timer, not a stand-in for a condition: renewal is due at a known time.
        await asyncio.sleep(max(due - clock(), 0.0))
        try:
            issued = await renew_once(client, node, node_name)
        except (ApiError, pki.CertificateError, OSError) as err:
            log.warning("renewing the certificate of node %s failed (retrying): %s", node_name, err)
            await asyncio.sleep(RETRY)
            continue
        expiry = issued.certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        log.info("node %s certificate renewed (serial %x), valid until %s", node_name, issued.serial, expiry)

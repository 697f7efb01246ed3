"""Join tokens and the join exchange in process: token format, rotation, secret checks, the
manager's answer, the joining side's CA digest check, node removal revoking the certificate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from shoal.api.errors import BadRequest, Forbidden, ServiceUnavailable, Unauthorized
from shoal.api.kinds import CONFIG_MAP, NODE
from shoal.client.local import LocalClient
from shoal.security import join, pki, tokens
from shoal.server.resources import Resources
from shoal.store.memory import MemoryStore


@pytest.fixture
async def manager(tmp_path: Path) -> tuple[Resources, join.Authority]:
    resources = Resources(MemoryStore())
    await resources.bootstrap()
    authority = join.manager_authority(tmp_path / "manager", ["127.0.0.1"], dt.timedelta(minutes=5))
    await join.serve_joins(resources, authority)
    return resources, authority


def request(secret: str, node: str = "node-2", csr: bytes | None = None) -> dict[str, str]:
    csr = csr if csr is not None else pki.make_csr(pki.new_key(), node)
    return {"secret": secret, "nodeName": node, "csr": csr.decode()}


def test_token_format_and_parse() -> None:
    token = tokens.new_token("a" * 64)
    text = str(token)
    assert text.startswith("SHOAL-1-" + "a" * 64 + "-") and len(token.secret) == 32
    assert tokens.parse(text) == token
    with pytest.raises(ValueError, match="starts with SHOAL-1-"):
        tokens.parse("SWMTKN-1-abc")
    with pytest.raises(ValueError, match="64 hex digits of CA digest"):
        tokens.parse("SHOAL-1-" + "a" * 63 + "-" + "b" * 32)


async def test_tokens_carry_the_ca_digest_and_rotate(manager: tuple[Resources, join.Authority]) -> None:
    resources, authority = manager
    client = LocalClient(resources)
    current = await tokens.tokens(client)
    assert set(current) == {"worker", "manager"}
    assert {tokens.parse(t).digest for t in current.values()} == {authority.ca.digest}
    assert await tokens.role_of(client, tokens.parse(current["manager"]).secret) == "manager"

    fresh = await tokens.rotate(client, "worker")
    assert fresh != current["worker"] and tokens.parse(fresh).digest == authority.ca.digest
    with pytest.raises(Unauthorized, match="the join token was refused"):
        await tokens.role_of(client, tokens.parse(current["worker"]).secret)
    assert (await tokens.tokens(client))["manager"] == current["manager"]

    # a new CA (data dir lost, store kept): the tokens keep their secrets, get the new digest
    again = await tokens.ensure(client, "f" * 64)
    assert tokens.parse(again["worker"]).secret == tokens.parse(fresh).secret
    assert tokens.parse(again["worker"]).digest == "f" * 64


async def test_tokens_without_a_manager_are_unavailable() -> None:
    resources = Resources(MemoryStore())
    await resources.bootstrap()
    with pytest.raises(ServiceUnavailable, match="no join tokens yet"):
        await tokens.tokens(LocalClient(resources))


async def test_answer_signs_and_records_the_serial(manager: tuple[Resources, join.Authority]) -> None:
    resources, authority = manager
    client = LocalClient(resources)
    secret = tokens.parse((await tokens.tokens(client))["worker"]).secret
    answer = await join.answer(resources, request(secret))
    assert answer["role"] == "worker" and answer["caCertificate"] == authority.ca.certificate_pem.decode()
    cert = pki.load_certificate(answer["certificate"])
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(minutes=5) <= lifetime <= dt.timedelta(minutes=6)
    assert await join.node_serial(client, "node-2") == cert.serial_number

    # a rejoin once the Node exists also annotates it
    await client.create(NODE, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-2"}})  # type: ignore[arg-type]
    again = pki.load_certificate((await join.answer(resources, request(secret)))["certificate"])
    node = await client.get(NODE, "node-2")  # type: ignore[arg-type]
    assert node["metadata"]["annotations"][pki.SERIAL_ANNOTATION] == pki.serial_hex(again.serial_number)

    # node rm: the current certificate is revoked
    assert await join.node_serial(client, "node-2") == again.serial_number
    assert await join.revoke_node(client, "node-2") == [again.serial_number, cert.serial_number]
    revoked = await pki.revoked_serials(client)
    assert {again.serial_number, cert.serial_number} <= revoked  # the older one may still be valid
    assert await join.revoke_node(client, "never-joined") == []
    assert await client.get(CONFIG_MAP, join.NODE_CERTS_NAME, join.NODE_CERTS_NAMESPACE)  # type: ignore[arg-type]


async def test_answer_refusals(manager: tuple[Resources, join.Authority]) -> None:
    resources, _ = manager
    secret = tokens.parse((await tokens.tokens(LocalClient(resources)))["worker"]).secret
    with pytest.raises(Unauthorized, match="its secret is not that of this cluster's current"):
        await join.answer(resources, request("0" * 32))
    with pytest.raises(Forbidden, match="CSR subject CN: 'node-3' is not this node's name 'node-2'"):
        await join.answer(resources, request(secret, csr=pki.make_csr(pki.new_key(), "node-3")))
    masters = pki.make_csr(pki.new_key(), "node-2", ("system:masters",))
    with pytest.raises(Forbidden, match="'system:masters' refused"):
        await join.answer(resources, request(secret, csr=masters))
    with pytest.raises(BadRequest, match="CSR: not a PEM"):
        await join.answer(resources, request(secret, csr=b"garbage"))
    with pytest.raises(BadRequest, match="JSON object"):
        await join.answer(resources, ["not", "an", "object"])


async def test_a_server_without_a_ca_cannot_sign() -> None:
    resources = Resources(MemoryStore())
    with pytest.raises(ServiceUnavailable, match="no cluster CA"):
        await join.answer(resources, request("0" * 32))


async def test_joining_side_checks_the_ca_digest(
    manager: tuple[Resources, join.Authority],
) -> None:
    resources, _ = manager
    token = tokens.parse((await tokens.tokens(LocalClient(resources)))["worker"])
    key = pki.new_key()
    answer = await join.answer(resources, request(token.secret, csr=pki.make_csr(key, "node-2")))
    joined = join.check_answer("http://m:6443", token, "node-2", pki.key_pem(key), answer)
    assert joined.role == "worker" and joined.certificate.certificate.public_key() == key.public_key()

    wrong = tokens.JoinToken("0" * 64, token.secret)
    with pytest.raises(
        Forbidden,
        match="the manager at http://m:6443 is not the cluster this token belongs to: CA digest mismatch",
    ):
        join.check_answer("http://m:6443", wrong, "node-2", pki.key_pem(key), answer)
    with pytest.raises(Forbidden, match="not for this node's key and name"):
        join.check_answer("http://m:6443", token, "node-2", pki.key_pem(pki.new_key()), answer)


async def test_local_agent_gets_its_certificate_from_the_ca(
    manager: tuple[Resources, join.Authority], tmp_path: Path
) -> None:
    resources, authority = manager
    credentials = await join.issue_local_node_credentials(resources, "node-1", tmp_path / "agent")
    assert credentials is not None and credentials.exists()
    first = credentials.certificate()
    assert pki.verify_client_certificate(authority.ca, first.certificate).name == "node-1"
    again = await join.issue_local_node_credentials(resources, "node-1", tmp_path / "agent")
    assert again is not None and again.certificate().serial == first.serial  # kept while valid


async def test_renewal_round_trip(manager: tuple[Resources, join.Authority], tmp_path: Path) -> None:
    resources, authority = manager
    credentials = await join.issue_local_node_credentials(resources, "node-1", tmp_path / "agent")
    assert credentials is not None
    old = credentials.certificate()
    # five-minute certificates: due for renewal after 3m20s
    assert not credentials.needs_renewal(old.certificate.not_valid_before_utc + dt.timedelta(minutes=3))
    assert credentials.needs_renewal(old.certificate.not_valid_before_utc + dt.timedelta(minutes=4))

    identity = pki.verify_client_certificate(authority.ca, old.certificate)
    key_pem, body = credentials.renewal_request("node-1")
    answer = await join.answer_renewal(resources, identity, body)
    renewed = credentials.accept_renewal("node-1", key_pem, answer)
    assert renewed.serial != old.serial and credentials.certificate().serial == renewed.serial
    assert await join.node_serials(LocalClient(resources), "node-1") == [renewed.serial, old.serial]

    # a node asks only for itself; a user is no node
    _, other = join.NodeCredentials.under(tmp_path / "x").renewal_request("node-9")
    with pytest.raises(Forbidden, match="CSR subject CN: 'node-9' is not this node's name 'node-1'"):
        await join.answer_renewal(resources, identity, other)
    with pytest.raises(Forbidden, match="is not a node"):
        await join.answer_renewal(resources, pki.Identity("john", ("dev",)), body)
    with pytest.raises(Forbidden, match="not for this node's new key"):
        credentials.accept_renewal("node-1", pki.key_pem(pki.new_key()), answer)

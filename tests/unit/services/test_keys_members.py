"""Members manage only their own keys; system keys change only on their own path (over fakes)."""

import pytest

from keyrack.backends.passwords import Argon2PasswordHasher
from keyrack.backends.sealing import AesGcmSealer
from keyrack.domain.people import TenantRole
from keyrack.domain.permissions import Principal, PrincipalKind
from keyrack.errors import KeyNotFound, PermissionDenied, SystemKeyManaged
from keyrack.services.authz import OPERATOR
from keyrack.services.keys import KeyChanges, NewKey
from keyrack.services.people import PeopleService
from keyrack.services.ports import KeyFilter
from keyrack.services.systemkeys import SystemKeyService

pytestmark = pytest.mark.anyio


@pytest.fixture
def people(svc):
    return PeopleService(
        uow=svc.uow,
        clock=svc.clock,
        entropy=svc.entropy,
        peppers=svc.peppers,
        hasher=Argon2PasswordHasher.for_tests(),
    )


@pytest.fixture
async def member(people, tenant):
    """A user who is a plain member of ``tenant``, as its principal."""
    user = await people.create_user(OPERATOR, email="m@example.com", name="M")
    await people.add_member(OPERATOR, tenant.id, user_id=user.id, role="member")
    return Principal(
        kind=PrincipalKind.USER,
        id=user.id,
        tenant_id=None,
        permissions=frozenset(),
        memberships=((tenant.id, TenantRole.MEMBER),),
    )


@pytest.fixture
async def system_key(svc, tenant, member):
    """A system key of the member (created on its own path)."""
    system_keys = SystemKeyService(
        uow=svc.uow,
        peppers=svc.peppers,
        clock=svc.clock,
        entropy=svc.entropy,
        sealer=AesGcmSealer({1: bytes(range(32))}),
        cache=svc.key_cache,
    )
    result = await system_keys.put(OPERATOR, tenant.id, member.id, "ci")
    return result.key


class TestMemberCreate:
    async def test_a_members_key_is_its_own(self, svc, tenant, member):
        key, _ = await svc.keys.create(member, tenant.id, NewKey(name="mine"))

        assert member.id == key.owner_id
        assert member.id == svc.db.keys[key.id].owner_id

    async def test_a_member_may_name_itself_as_the_owner(self, svc, tenant, member):
        key, _ = await svc.keys.create(member, tenant.id, NewKey(name="k", owner_id=member.id))

        assert member.id == key.owner_id

    async def test_a_member_cannot_create_a_key_for_someone_else(self, svc, tenant, member):
        before = svc.db.snapshot()

        with pytest.raises(PermissionDenied):
            await svc.keys.create(member, tenant.id, NewKey(name="k", owner_id="usr_other"))

        assert before == svc.db.snapshot()


class TestMemberReadAndList:
    async def test_a_member_lists_only_its_own_keys_whatever_it_asks(
        self, svc, tenant, member, system_key
    ):
        mine, _ = await svc.keys.create(member, tenant.id, NewKey(name="mine"))
        await svc.keys.create(OPERATOR, tenant.id, NewKey(name="other", owner_id="usr_other"))
        await svc.keys.create(OPERATOR, tenant.id, NewKey(name="nobodys"))

        page = await svc.keys.list(
            member, tenant.id, where=KeyFilter(owner_id="usr_other", include_system=True)
        )

        assert [mine.id] == [k.id for k in page.items]

    async def test_another_owners_key_is_not_found_for_a_member(self, svc, tenant, member):
        other, _ = await svc.keys.create(
            OPERATOR, tenant.id, NewKey(name="other", owner_id="usr_other")
        )

        with pytest.raises(KeyNotFound):
            await svc.keys.get(member, tenant.id, other.id)

    async def test_a_members_own_system_key_is_not_found_for_it(
        self, svc, tenant, member, system_key
    ):
        with pytest.raises(KeyNotFound):
            await svc.keys.get(member, tenant.id, system_key.id)


class TestMemberUpdate:
    async def test_a_member_updates_its_own_key(self, svc, tenant, member):
        key, _ = await svc.keys.create(member, tenant.id, NewKey(name="mine"))

        updated = await svc.keys.update(
            member, tenant.id, key.id, KeyChanges(name="renamed", owner_id=member.id)
        )

        assert ("renamed", member.id) == (updated.name, updated.owner_id)

    async def test_a_member_cannot_give_its_key_to_someone_else(self, svc, tenant, member):
        key, _ = await svc.keys.create(member, tenant.id, NewKey(name="mine"))
        before = svc.db.snapshot()

        for owner in ("usr_other", None):
            with pytest.raises(PermissionDenied):
                await svc.keys.update(member, tenant.id, key.id, KeyChanges(owner_id=owner))

        assert before == svc.db.snapshot()


class TestSystemKeys:
    async def test_a_system_key_is_not_rotated_on_the_key_path(self, svc, tenant, system_key):
        before = svc.db.snapshot()

        with pytest.raises(SystemKeyManaged):
            await svc.keys.rotate(OPERATOR, tenant.id, system_key.id, grace_seconds=0)

        assert before == svc.db.snapshot()

    async def test_a_system_key_is_not_deleted_on_the_key_path(self, svc, tenant, system_key):
        before = svc.db.snapshot()

        with pytest.raises(SystemKeyManaged):
            await svc.keys.delete(OPERATOR, tenant.id, system_key.id)

        assert before == svc.db.snapshot()
        assert system_key.id in svc.db.keys

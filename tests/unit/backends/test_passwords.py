import logging
import statistics
import time

import anyio
import argon2
import pytest

from keyrack.backends.passwords import Argon2PasswordHasher
from keyrack.services.ports import PasswordHasher

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery staple"

# A hasher costly enough (a few milliseconds) for timing to be measurable on a busy machine.
MEASURABLE = {"time_cost": 1, "memory_cost": 4096, "parallelism": 1}


@pytest.fixture
def hasher() -> Argon2PasswordHasher:
    return Argon2PasswordHasher.for_tests()


class TestDefaults:
    async def test_works_through_the_port(self):
        port: PasswordHasher = Argon2PasswordHasher.for_tests()  # mypy checks the Protocol

        stored = await port.hash(PASSWORD)

        assert [True, False] == [await port.verify(stored, PASSWORD), port.needs_rehash(stored)]

    @pytest.mark.parametrize("count", [0, -1])
    def test_max_concurrency_must_be_positive(self, count):
        with pytest.raises(ValueError, match="at least 1"):
            Argon2PasswordHasher(max_concurrency=count)

    def test_production_defaults_are_rfc_9106_low_memory(self):
        profile = argon2.profiles.RFC_9106_LOW_MEMORY

        assert (
            f"Argon2PasswordHasher(time_cost={profile.time_cost}, "
            f"memory_cost={profile.memory_cost}, parallelism={profile.parallelism})"
        ) == repr(Argon2PasswordHasher())

    async def test_test_profile_hashes_argon2id_with_its_parameters(self, hasher):
        stored = await hasher.hash(PASSWORD)

        assert argon2.extract_parameters(stored) == argon2.Parameters(
            type=argon2.Type.ID,
            version=19,
            salt_len=16,
            hash_len=32,
            time_cost=1,
            memory_cost=8,
            parallelism=1,
        )


class TestHashAndVerify:
    async def test_round_trips(self, hasher):
        stored = await hasher.hash(PASSWORD)

        assert await hasher.verify(stored, PASSWORD) is True

    async def test_rejects_another_password(self, hasher):
        stored = await hasher.hash(PASSWORD)

        assert await hasher.verify(stored, PASSWORD + " ") is False

    async def test_salts_every_hash(self, hasher):
        first = await hasher.hash(PASSWORD)
        second = await hasher.hash(PASSWORD)

        assert first != second
        assert await hasher.verify(first, PASSWORD)
        assert await hasher.verify(second, PASSWORD)

    @pytest.mark.parametrize(
        "password",
        ["", "pässwörd 🔑", "nul\x00inside", "lone \ud800 surrogate"],
        ids=["empty", "non-ascii", "nul", "lone-surrogate"],
    )
    async def test_round_trips_any_string(self, hasher, password):
        stored = await hasher.hash(password)

        assert await hasher.verify(stored, password) is True
        assert await hasher.verify(stored, password + "x") is False

    async def test_lone_surrogates_are_not_confused_with_replacement(self, hasher):
        stored = await hasher.hash("a\ud800")

        assert await hasher.verify(stored, "a\ufffd") is False
        assert await hasher.verify(stored, "a?") is False

    async def test_hashes_are_plain_argon2_cffi_hashes(self, hasher):
        """A hash made here verifies with argon2-cffi alone, and the reverse."""
        ours = await hasher.hash(PASSWORD)
        theirs = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)

        assert argon2.PasswordHasher().verify(ours, PASSWORD)
        assert await hasher.verify(theirs, PASSWORD) is True

    async def test_verifies_with_the_stored_hash_parameters(self, hasher):
        """A hash made with older parameters still verifies (then ``needs_rehash`` says so)."""
        stronger = Argon2PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
        stored = await stronger.hash(PASSWORD)

        assert await hasher.verify(stored, PASSWORD) is True


class TestMissingOrBadHashes:
    async def test_none_answers_false(self, hasher):
        assert await hasher.verify(None, PASSWORD) is False

    async def test_none_answers_false_for_every_password(self, hasher):
        assert [False, False] == [
            await hasher.verify(None, ""),
            await hasher.verify(None, "\ud800"),
        ]

    @pytest.mark.parametrize(
        "stored",
        [
            "",
            "garbage",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "pbkdf2_sha256$600000$salt$aGFzaA==",
            "$argon2id$v=19$m=8,t=1,p=1$",
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$",
            "$argon2id$v=19$m=0,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA$extra",
            "$argon2id$v=19$m=8,t=1,p=1$sälted$hash",
            "\ud800",
        ],
        ids=[
            "empty",
            "garbage",
            "bcrypt",
            "django-pbkdf2",
            "argon2-prefix-only",
            "argon2-without-hash",
            "argon2-zero-memory",
            "argon2-trailing-field",
            "non-ascii",
            "lone-surrogate",
        ],
    )
    async def test_answers_false_and_never_raises(self, hasher, stored):
        assert await hasher.verify(stored, PASSWORD) is False

    async def test_tampered_hash_answers_false(self, hasher):
        stored = await hasher.hash(PASSWORD)
        tampered = stored[:-2] + ("AA" if stored[-2:] != "AA" else "BB")

        assert await hasher.verify(tampered, PASSWORD) is False


class TestNeedsRehash:
    async def test_same_parameters_need_no_rehash(self, hasher):
        stored = await hasher.hash(PASSWORD)

        assert hasher.needs_rehash(stored) is False

    @pytest.mark.parametrize(
        "grown",
        [
            {"time_cost": 2, "memory_cost": 8, "parallelism": 1},
            {"time_cost": 1, "memory_cost": 16, "parallelism": 1},
            {"time_cost": 1, "memory_cost": 16, "parallelism": 2},
        ],
        ids=["time", "memory", "parallelism"],
    )
    async def test_grown_parameters_need_a_rehash(self, hasher, grown):
        stored = await hasher.hash(PASSWORD)

        assert Argon2PasswordHasher(**grown).needs_rehash(stored) is True

    async def test_other_argon2_variant_needs_a_rehash(self, hasher):
        argon2i = argon2.PasswordHasher(
            time_cost=1, memory_cost=8, parallelism=1, type=argon2.Type.I
        ).hash(PASSWORD)

        assert await hasher.verify(argon2i, PASSWORD) is True
        assert hasher.needs_rehash(argon2i) is True

    @pytest.mark.parametrize(
        "stored", ["", "garbage", "$2b$12$abc"], ids=["empty", "garbage", "bcrypt"]
    )
    def test_a_foreign_value_needs_a_rehash(self, hasher, stored):
        assert hasher.needs_rehash(stored) is True


class TestOffTheLoopAndTiming:
    async def test_the_event_loop_keeps_serving_while_hashing(self):
        hasher = Argon2PasswordHasher(time_cost=2, memory_cost=16384, parallelism=1)
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await anyio.sleep(0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            await hasher.hash(PASSWORD)
            done = True

        assert ticks >= 3

    async def test_none_takes_about_as_long_as_a_mismatch(self):
        """``verify(None, …)`` burns a real argon2 verify, so timing does not reveal accounts."""
        hasher = Argon2PasswordHasher(**MEASURABLE)
        stored = await hasher.hash(PASSWORD)
        await hasher.verify(None, PASSWORD)  # the first call also makes the dummy hash

        async def median(stored_value: str | None) -> float:
            times = []
            for _ in range(7):
                start = time.perf_counter()
                assert await hasher.verify(stored_value, "wrong") is False
                times.append(time.perf_counter() - start)
            return statistics.median(times)

        mismatch = await median(stored)
        missing = await median(None)
        malformed = await median("garbage")

        # Without the dummy verify these paths take microseconds, three orders of magnitude less.
        assert missing > 0.3 * mismatch
        assert malformed > 0.3 * mismatch


class TestSecrecy:
    async def test_password_never_in_hash_repr_or_logs(self, hasher, caplog):
        caplog.set_level(logging.DEBUG)
        password = "s3cret-Passw0rd-xyzzy"

        stored = await hasher.hash(password)
        await hasher.verify(stored, password)
        await hasher.verify(stored, "other")
        await hasher.verify(None, password)
        await hasher.verify("garbage", password)
        hasher.needs_rehash(stored)

        assert password not in stored
        assert password not in repr(hasher)
        assert password not in str(hasher)
        logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
        assert password not in logged

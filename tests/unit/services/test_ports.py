from keyrack.services.ports import KeyFilter, Rehash


class TestRehash:
    def test_repr_omits_the_digest(self):
        digest = bytes.fromhex("cd" * 32)
        item = Rehash(tenant_id="ten_1", secret_id="sec_1", digest=digest, pepper_version=2)

        assert "Rehash(secret_id='sec_1', pepper_version=2)" == repr(item)
        assert digest.hex() not in repr(item)


class TestKeyFilter:
    def test_defaults_list_every_non_system_key(self):
        assert (None, None, False) == (
            KeyFilter().status,
            KeyFilter().owner_id,
            KeyFilter().include_system,
        )

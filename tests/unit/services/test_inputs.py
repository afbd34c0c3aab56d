import pytest

from keyrack.errors import InvalidInput
from keyrack.services import inputs


class TestInputs:
    def test_domain_value_errors_become_invalid_input_with_the_same_message(self):
        with pytest.raises(InvalidInput, match="owner_id must not be empty"):
            inputs.name("  ", field="owner_id")

    def test_too_many_permission_names(self):
        with pytest.raises(InvalidInput, match="at most 1000"):
            inputs.slugs([f"p{i}" for i in range(1001)], field="permissions")

    def test_meta_with_non_json_values_is_refused(self):
        with pytest.raises(InvalidInput, match="only JSON values"):
            inputs.meta({"when": object()})

    def test_description_none_passes(self):
        assert inputs.description(None) is None

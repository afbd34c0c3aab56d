import time
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from keyrack.services.clock import SystemClock, system_entropy, to_datetime, to_epoch


class TestSystemClock:
    def test_reads_wall_clock_seconds(self):
        before = time.time()

        now = SystemClock().now()

        assert before <= now <= time.time()


class TestSystemEntropy:
    def test_returns_the_asked_number_of_bytes(self):
        assert [0, 10, 24] == [len(system_entropy(n)) for n in (0, 10, 24)]

    def test_calls_differ(self):
        assert system_entropy(24) != system_entropy(24)


class TestConversions:
    def test_to_datetime_is_aware_utc(self):
        assert datetime(2027, 1, 15, 8, tzinfo=UTC) == to_datetime(1_800_000_000.0)

    @given(epoch=st.floats(min_value=0, max_value=4e9, allow_nan=False))
    def test_round_trip(self, epoch):
        assert abs(epoch - to_epoch(to_datetime(epoch))) < 1e-6

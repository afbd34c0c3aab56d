import pytest

from keyrack.domain import ids
from keyrack.errors import InvalidInput
from keyrack.services.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, check_page_args, paginate

pytestmark = pytest.mark.anyio


class _Row:
    def __init__(self, n: int) -> None:
        self.id = ids.new_id("key", now_ms=n, entropy=bytes(ids.ENTROPY_BYTES))

    def __repr__(self) -> str:
        return f"_Row({self.id})"


ROWS = [_Row(n) for n in range(7)]


async def _fetch(limit: int, after: str | None) -> list[_Row]:
    return [r for r in ROWS if after is None or r.id > after][:limit]


class TestCheckPageArgs:
    @pytest.mark.parametrize("limit", [1, DEFAULT_LIMIT, MAX_LIMIT])
    def test_limits_within_bounds_pass(self, limit):
        check_page_args(limit, None, id_prefix="key")

    @pytest.mark.parametrize("limit", [0, MAX_LIMIT + 1, -5])
    def test_limits_out_of_bounds_are_invalid(self, limit):
        with pytest.raises(InvalidInput, match="limit must be between 1 and 100"):
            check_page_args(limit, None, id_prefix="key")

    def test_cursor_we_issued_passes(self):
        check_page_args(10, ROWS[0].id, id_prefix="key")

    @pytest.mark.parametrize("cursor", ["", "x", ROWS[0].id.replace("key_", "ten_")])
    def test_foreign_cursor_is_invalid(self, cursor):
        with pytest.raises(InvalidInput, match="cursor"):
            check_page_args(10, cursor, id_prefix="key")


class TestPaginate:
    async def test_walks_every_row_once(self):
        seen: list[_Row] = []
        cursor = None
        pages = 0
        while True:
            page = await paginate(_fetch, limit=3, cursor=cursor, id_prefix="key")
            seen.extend(page.items)
            pages += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor

        assert (ROWS, 3) == (seen, pages)

    async def test_asks_for_one_row_more_than_the_limit(self):
        calls: list[tuple[int, str | None]] = []

        async def fetch(limit, after):
            calls.append((limit, after))
            return await _fetch(limit, after)

        page = await paginate(fetch, limit=2, cursor=ROWS[0].id, id_prefix="key")

        assert [(3, ROWS[0].id)] == calls
        assert Page(items=ROWS[1:3], next_cursor=ROWS[2].id) == page

    async def test_last_full_page_has_no_cursor(self):
        page = await paginate(_fetch, limit=7, cursor=None, id_prefix="key")

        assert Page(items=ROWS, next_cursor=None) == page
